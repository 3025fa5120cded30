"""How a model's probability maps depend on the threshold, and whether they are calibrated.

- `threshold_sweep`: mean IoU of ``probability > t`` with the truth for each t of
  `SWEEP_THRESHOLDS`, with its 95% interval over cases: how much a verdict could move with the
  mask threshold (CLIPSeg's authors use 0.3 on PhraseCut; this study's `mini` uses 0.5).
- `best_threshold`: the t of the sweep with the highest mean IoU, with a 95% interval (the best
  t of each bootstrap resample of whole cases).
- `reliability`: pixel probabilities pooled over cases, in `N_BINS` equal-width bins; per bin
  the mean probability and the share of foreground pixels, and the expected calibration error
  ECE = sum over bins of (pixels in bin / all pixels) x |foreground share - mean probability|.
  0 is perfectly calibrated. Its 95% interval resamples whole cases (pixels of one image are
  not independent).
- `calibration_figure`: both, one column per condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from clipseg_lib.analysis.metrics import iou
from clipseg_lib.analysis.stats import N_RESAMPLES, Estimate, mean_ci, percentile_interval

SWEEP_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
N_BINS = 10


def threshold_sweep(
    maps: Sequence[np.ndarray], targets: Sequence[np.ndarray], *,
    thresholds: Sequence[float] = SWEEP_THRESHOLDS, seed: int = 0,
) -> dict[float, Estimate]:
    """{t: mean IoU of ``map > t`` with its target, with interval and n} over the cases."""
    if len(maps) != len(targets) or not maps:
        raise ValueError(f"threshold_sweep needs one target per map, got {len(maps)} maps and "
                         f"{len(targets)} targets")
    return {
        float(t): mean_ci([iou(m > t, target) for m, target in zip(maps, targets, strict=True)],
                          seed=seed)
        for t in thresholds
    }


def best_threshold(
    maps: Sequence[np.ndarray], targets: Sequence[np.ndarray], *,
    thresholds: Sequence[float] = SWEEP_THRESHOLDS, seed: int = 0,
) -> Estimate:
    """The threshold of `thresholds` with the highest mean IoU over the cases, its 95% interval
    the percentile interval of the best threshold of `N_RESAMPLES` resamples of whole cases."""
    if len(maps) != len(targets) or not maps:
        raise ValueError(f"best_threshold needs one target per map, got {len(maps)} maps and "
                         f"{len(targets)} targets")
    grid = np.asarray(thresholds, dtype=float)
    scores = np.array([[iou(m > t, target) for t in grid]
                       for m, target in zip(maps, targets, strict=True)])
    draws = np.random.default_rng(seed).integers(0, len(scores), (N_RESAMPLES, len(scores)))
    low, high = percentile_interval(grid[scores[draws].mean(axis=1).argmax(axis=1)])
    return Estimate(float(grid[scores.mean(axis=0).argmax()]), len(scores), low, high)


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's bins and the ECE with its 95% interval over `n` cases."""

    confidence: list[float | None]
    frequency: list[float | None]
    pixels: list[int]
    ece: Estimate

    def as_dict(self) -> dict:
        """The form a results JSON stores."""
        return {"confidence": self.confidence, "frequency": self.frequency,
                "pixels": self.pixels, "ece": self.ece.as_dict()}


def _bin_sums(probability: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N_BINS, 3): pixel count, probability sum and foreground count per bin of one case."""
    p = np.asarray(probability, float).ravel()
    t = np.asarray(target, bool).ravel()
    if p.shape != t.shape:
        raise ValueError(f"a map of {np.shape(probability)} has a target of {np.shape(target)}")
    bins = np.minimum((p * N_BINS).astype(int), N_BINS - 1)
    return np.stack([np.bincount(bins, minlength=N_BINS),
                     np.bincount(bins, weights=p, minlength=N_BINS),
                     np.bincount(bins, weights=t, minlength=N_BINS)], axis=1)


def _ece(sums: np.ndarray) -> float:
    count, probability, foreground = sums[:, 0], sums[:, 1], sums[:, 2]
    filled = count > 0
    gaps = np.abs(foreground[filled] - probability[filled])  # count x |frequency - confidence|
    return float(gaps.sum() / count.sum())


def reliability(maps: Sequence[np.ndarray], targets: Sequence[np.ndarray], *, seed: int = 0,
                n_resamples: int = N_RESAMPLES) -> Reliability:
    """The pooled `Reliability` of the cases' probability maps against their targets."""
    if len(maps) != len(targets) or not maps:
        raise ValueError(f"reliability needs one target per map, got {len(maps)} maps and "
                         f"{len(targets)} targets")
    per_case = np.stack([_bin_sums(m, t) for m, t in zip(maps, targets, strict=True)])
    total = per_case.sum(axis=0)
    rng = np.random.default_rng(seed)
    resampled = [_ece(per_case[rng.integers(0, len(per_case), len(per_case))].sum(axis=0))
                 for _ in range(n_resamples)]
    low, high = percentile_interval(resampled)
    count = total[:, 0]
    return Reliability(
        confidence=[float(s / c) if c else None for s, c in zip(total[:, 1], count, strict=True)],
        frequency=[float(f / c) if c else None for f, c in zip(total[:, 2], count, strict=True)],
        pixels=[int(c) for c in count],
        ece=Estimate(_ece(total), len(per_case), float(low), float(high)),
    )


def calibration_figure(sweeps: Mapping[str, Mapping[float, Estimate]],
                       diagrams: Mapping[str, Reliability], *, threshold: float) -> plt.Figure:
    """Top row: IoU against threshold with 95% bands, `threshold` marked; bottom row:
    reliability diagrams (foreground share against mean probability; the diagonal is
    calibrated). One column per condition (the keys of `sweeps`)."""
    names = list(sweeps)
    figure, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 6.2), squeeze=False)
    for column, name in enumerate(names):
        top, bottom = axes[0, column], axes[1, column]
        ts = list(sweeps[name])
        estimates = [sweeps[name][t] for t in ts]
        top.plot(ts, [e.mean for e in estimates], marker="o", color="#0072B2")
        top.fill_between(ts, [e.ci_low for e in estimates], [e.ci_high for e in estimates],
                         color="#0072B2", alpha=0.2)
        top.axvline(threshold, color="#D55E00", linestyle="--", label=f"t = {threshold}")
        top.set(title=name, xlabel="threshold t", ylabel="mean IoU", ylim=(0, 1))
        top.legend(loc="lower center", fontsize=8)
        diagram = diagrams[name]
        shown = [(c, f) for c, f in zip(diagram.confidence, diagram.frequency, strict=True)
                 if c is not None]
        bottom.plot([0, 1], [0, 1], color="grey", linestyle=":")
        bottom.plot(*zip(*shown, strict=True), marker="o", color="#009E73")
        bottom.set(xlabel="mean probability in bin", ylabel="foreground share",
                   xlim=(0, 1), ylim=(0, 1),
                   title=f"ECE {diagram.ece.mean:.3f} [{diagram.ece.ci_low:.3f}, "
                         f"{diagram.ece.ci_high:.3f}]")
    figure.tight_layout()
    return figure


def calibration_rows(sweeps: Mapping[str, Mapping[float, Estimate]],
                     best: Mapping[str, Estimate], diagrams: Mapping[str, Reliability], *,
                     threshold: float) -> list[dict]:
    """A table row per condition: mean IoU at the paper's 0.3 and at `threshold`, the
    threshold with the highest mean IoU (`best_threshold`) and the ECE, each with its interval
    and n."""
    return [{"condition": name, "IoU at t = 0.3": sweep[0.3],
             f"IoU at t = {threshold}": sweep[threshold],
             "best t": f"{best[name].mean:.1f} [{best[name].ci_low:.1f}, {best[name].ci_high:.1f}]"
                       f" n={best[name].n}",
             "ECE": diagrams[name].ece} for name, sweep in sweeps.items()]
