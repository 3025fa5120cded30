"""Presence measured as SAM 3 measures it: image-level MCC, positive micro F1 and cgF1.

SAM 3 (Carion et al., 2025, "SAM 3: Segment Anything with Concepts") scores "is the concept in
the image?" apart from "how good is its mask?":

- IL_MCC: the Matthews correlation of the image-level decision (the model marks something: the
  map's maximum is above the mask threshold) with the truth (the prompt's object is there), over
  present and absent prompts together. 1: every decision right; 0: no better than a constant
  answer. It is undefined (None) when the truth or the decisions are all one class.
- pmF1 (positive micro F1): over the prompts whose object is present only, a micro F1 of the
  masks. SAM 3 matches instances; CLIPSeg predicts one semantic mask per prompt, so here a
  prompt's mask is a true positive when its IoU with the truth reaches tau, a false positive
  when it marks something below tau, and the truth then counts as a false negative; F1 =
  2 TP / (2 TP + FP + FN), averaged over tau = 0.50, 0.55, .., 0.95 as SAM 3 averages.
- cgF1 = 100 * pmF1 * IL_MCC.

Intervals are seeded 95% percentile bootstraps over prompts, present and absent ones resampled
apart, so every resample keeps both classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from clipseg_lib.analysis.stats import N_RESAMPLES, percentile_interval

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)
"""The IoU thresholds pmF1 is averaged over, as SAM 3's."""


def il_mcc(present: Sequence[bool] | np.ndarray, marked: Sequence[bool] | np.ndarray
           ) -> float | None:
    """Matthews correlation of `marked` (the model's image-level decisions) with `present`
    (the truth); None when either is constant (the correlation is undefined)."""
    truth, decision = np.asarray(present, bool), np.asarray(marked, bool)
    if truth.shape != decision.shape or truth.ndim != 1:
        raise ValueError(f"il_mcc needs two equal-length flags, got {truth.shape} and "
                         f"{decision.shape}")
    tp = float(np.sum(truth & decision))
    tn = float(np.sum(~truth & ~decision))
    fp = float(np.sum(~truth & decision))
    fn = float(np.sum(truth & ~decision))
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return None if denominator == 0 else (tp * tn - fp * fn) / float(np.sqrt(denominator))


def positive_micro_f1(ious: Sequence[float] | np.ndarray, marked: Sequence[bool] | np.ndarray
                      ) -> float:
    """pmF1 of the present prompts' masks: their IoUs with the truth and whether each marks
    anything, averaged over `IOU_THRESHOLDS`."""
    iou, decision = np.asarray(ious, float), np.asarray(marked, bool)
    if iou.size == 0 or iou.shape != decision.shape:
        raise ValueError("positive_micro_f1 needs one IoU and one decision per present prompt")
    scores = []
    for tau in IOU_THRESHOLDS:
        tp = np.sum(decision & (iou >= tau))
        fp = np.sum(decision & (iou < tau))
        fn = iou.size - tp
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


@dataclass(frozen=True)
class Presence:
    """IL_MCC, pmF1 and cgF1 with their 95% intervals; n_present and n_absent prompts.

    A value the data leave undefined is None, and so are its bounds."""

    il_mcc: float | None
    il_mcc_ci: tuple[float, float] | None
    pm_f1: float
    pm_f1_ci: tuple[float, float]
    cg_f1: float | None
    cg_f1_ci: tuple[float, float] | None
    n_present: int
    n_absent: int

    def as_dict(self) -> dict:
        """The form a results JSON stores (intervals as two-element lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    def __str__(self) -> str:
        return (f"IL_MCC {shown_score(self.il_mcc, self.il_mcc_ci, 2)}, "
                f"pmF1 {shown_score(self.pm_f1, self.pm_f1_ci, 2)}, "
                f"cgF1 {shown_score(self.cg_f1, self.cg_f1_ci, 1)} "
                f"(n = {self.n_present} present + {self.n_absent} absent)")


def shown_score(value: float | None, bounds: tuple[float, float] | None, digits: int) -> str:
    """"0.52 [0.35, 0.65]" at `digits` decimals, or "undefined" for None."""
    if value is None or bounds is None:
        return "undefined"
    return f"{value:.{digits}f} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"


def _interval(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    return percentile_interval(values)


def presence_scores(
    present_ious: Sequence[float],
    present_marked: Sequence[bool],
    absent_marked: Sequence[bool],
    *,
    seed: int = 0,
    n_resamples: int = N_RESAMPLES,
) -> Presence:
    """`Presence` of the present prompts (their mask IoUs, and whether each marks anything)
    and the absent prompts (whether each marks anything), with seeded bootstrap intervals.

    Resamples where IL_MCC is undefined (all decisions alike) are left out of its interval.
    """
    ious = np.asarray(present_ious, float)
    on_present = np.asarray(present_marked, bool)
    on_absent = np.asarray(absent_marked, bool)
    if ious.size == 0 or on_absent.size == 0:
        raise ValueError("presence_scores needs present and absent prompts")

    def scores(i: np.ndarray, p: np.ndarray, a: np.ndarray) -> tuple[float | None, float]:
        truth = np.r_[np.ones(p.size, bool), np.zeros(a.size, bool)]
        return il_mcc(truth, np.r_[p, a]), positive_micro_f1(i, p)

    mcc, f1 = scores(ious, on_present, on_absent)
    rng = np.random.default_rng(seed)
    resampled_mcc, resampled_f1, resampled_cg = [], [], []
    for _ in range(n_resamples):
        drawn = rng.integers(0, ious.size, ious.size)
        one_mcc, one_f1 = scores(ious[drawn], on_present[drawn],
                                 on_absent[rng.integers(0, on_absent.size, on_absent.size)])
        resampled_f1.append(one_f1)
        if one_mcc is not None:
            resampled_mcc.append(one_mcc)
            resampled_cg.append(100 * one_f1 * one_mcc)
    defined = mcc is not None
    return Presence(
        il_mcc=mcc, il_mcc_ci=_interval(resampled_mcc) if defined else None,
        pm_f1=f1, pm_f1_ci=_interval(resampled_f1),
        cg_f1=100 * f1 * mcc if defined else None,
        cg_f1_ci=_interval(resampled_cg) if defined else None,
        n_present=int(ious.size), n_absent=int(on_absent.size),
    )
