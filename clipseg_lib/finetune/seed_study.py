"""Notebook 13's seeds and positive control: is one fine-tune's outcome a property of the
recipe, and would training an encoder too have fixed what the decoder alone did not?

The failure-study fine-tune (`failure_study`) is repeated over seeds; a seed draws the training
queries and the batch order (`FinetuneConfig.seed`). Every seed is run twice on the same
queries: the decoder alone (CLIP frozen, the paper's recipe) and the positive control with
CLIP's text tower trained too (`FinetuneConfig.train_text_encoder`, prompts embedded again
each step). Both are scored on the same test cases as the decoder's main run. A seed's number
is the mean over those cases; across seeds the spread is the mean with its Student-t 95%
interval (`stats.mean_ci`: n seeds < 40) and the range. The vision tower stays frozen in both,
so neither run says anything about it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from clipseg_lib.analysis.stats import Estimate, mean_ci
from clipseg_lib.finetune.failure_study import CONTROL_COST, FAILURES, FailureResult
from clipseg_lib.finetune.trainer import FinetuneConfig

#: Variant name by whether the text tower is trained too.
VARIANTS = {False: "decoder", True: "decoder + text encoder"}
#: Held-out mIoU a variant must reach in every seed to count as having fitted the failure
#: (and its composite control must not fall by more than `failure_study.CONTROL_COST`).
FITTED_MIOU = 0.5


@dataclass(frozen=True)
class SeedRun:
    """One fine-tune of the seed study: its seed, whether the text tower was trained, and the
    per-case IoUs before and after per group (`FailureResult`)."""

    seed: int
    text_encoder: bool
    result: FailureResult

    def per_seed(self) -> dict:
        """JSON-ready: seed, variant and per group the per-case IoUs after fine-tuning (those
        before are the main run's), the mean IoU before and after and the paired difference,
        each with its interval over the cases."""
        return {"failure": self.result.failure, "seed": self.seed,
                "variant": VARIANTS[self.text_encoder],
                "groups": {group: {"after_ious": after,
                                   **{name: e.as_dict() for name, e in
                                      self.result.estimates(group).items()}}
                           for group, (_, after) in self.result.ious.items()}}


def seed_config(config: FinetuneConfig, seed: int, steps: int, text_encoder: bool
                ) -> FinetuneConfig:
    """`config` for one run of the seed study."""
    return replace(config, seed=seed, steps=steps, train_text_encoder=text_encoder)


def run_directory(output_dir: str, failure: str, seed: int, text_encoder: bool) -> str:
    """Where one run's fine-tuned model is saved."""
    variant = "text" if text_encoder else "decoder"
    return f"{output_dir}/13_finetuning_models/seeds/{FAILURES[failure][0]}_{variant}_seed{seed}"


def _runs(runs: list[SeedRun], failure: str, text_encoder: bool) -> list[SeedRun]:
    chosen = [r for r in runs if r.result.failure == failure and r.text_encoder == text_encoder]
    return sorted(chosen, key=lambda r: r.seed)


def across_seeds(runs: list[SeedRun], failure: str, text_encoder: bool, group: str,
                 quantity: str) -> Estimate:
    """Mean over seeds of one per-seed number (`quantity`: "before", "after" or
    "difference", of `group`), with its Student-t 95% interval; n is the number of seeds."""
    chosen = _runs(runs, failure, text_encoder)
    if not chosen:
        raise ValueError(f"no {VARIANTS[text_encoder]!r} runs of {failure!r}")
    return mean_ci([r.result.estimates(group)[quantity].mean for r in chosen])


def control_gain(runs: list[SeedRun], failure: str, group: str = "held-out") -> Estimate:
    """What training the text tower too adds: per seed, the mean over cases of (control's IoU -
    decoder-alone IoU) after fine-tuning on the same queries; across seeds, its mean with the
    Student-t 95% interval (n = seeds run both ways)."""
    frozen = {r.seed: r for r in _runs(runs, failure, False)}
    trained = {r.seed: r for r in _runs(runs, failure, True)}
    seeds = sorted(frozen.keys() & trained.keys())
    if not seeds:
        raise ValueError(f"no seed of {failure!r} ran both with and without the text encoder")
    return mean_ci([float(np.mean(np.subtract(trained[s].result.ious[group][1],
                                              frozen[s].result.ious[group][1])))
                    for s in seeds])


def _range(runs: list[SeedRun], group: str, quantity: str) -> str:
    values = [r.result.estimates(group)[quantity].mean for r in runs]
    return f"{min(values):.3f} to {max(values):.3f}"


def seed_rows(runs: list[SeedRun]) -> list[dict[str, str]]:
    """Table rows: per failure and variant, one row per seed (its held-out mIoU after, the
    paired held-out gain and the control change, each over the cases) and a row "mean of n"
    (mean over seeds, Student-t 95% interval, n seeds) with the range over seeds."""
    rows = []
    for failure in dict.fromkeys(r.result.failure for r in runs):
        for text_encoder, variant in VARIANTS.items():
            chosen = _runs(runs, failure, text_encoder)
            for run in chosen:
                held, control = run.result.estimates("held-out"), run.result.estimates("control")
                rows.append({"failure": failure, "trained": variant, "seed": str(run.seed),
                             "held-out mIoU after": str(held["after"]),
                             "held-out gain": str(held["difference"]),
                             "control change": str(control["difference"])})
            if chosen:
                rows.append({
                    "failure": failure, "trained": variant, "seed": f"mean of {len(chosen)}",
                    **{column: f"{across_seeds(runs, failure, text_encoder, group, what)} "
                               f"range {_range(chosen, group, what)}"
                       for column, group, what in (
                           ("held-out mIoU after", "held-out", "after"),
                           ("held-out gain", "held-out", "difference"),
                           ("control change", "control", "difference"))},
                })
    return rows


def _fitted(runs: list[SeedRun]) -> int:
    return sum(r.result.estimates("held-out")["after"].mean >= FITTED_MIOU for r in runs)


def _variant_numbers(runs: list[SeedRun], failure: str, text_encoder: bool) -> str:
    chosen = _runs(runs, failure, text_encoder)
    gain = across_seeds(runs, failure, text_encoder, "held-out", "difference")
    after = across_seeds(runs, failure, text_encoder, "held-out", "after")
    control = across_seeds(runs, failure, text_encoder, "control", "difference")
    return (f"held-out mIoU changed by {gain} (range {_range(chosen, 'held-out', 'difference')})"
            f" to {after}, at or above {FITTED_MIOU} in {_fitted(chosen)} of {len(chosen)} "
            f"seeds; the composite control changed by {control}")


def _unlearns(runs: list[SeedRun], failure: str, text_encoder: bool) -> bool:
    """The composite control fell by more than `CONTROL_COST` (its interval over seeds)."""
    return across_seeds(runs, failure, text_encoder, "control", "difference").ci_high < (
        -CONTROL_COST)


def seed_finding(runs: list[SeedRun], failure: str, model: str, steps: int) -> str:
    """The sentences the seed study supports about one failure on `model`: the decoder's gain
    and its spread over n seeds, whether training the text encoder too let it fit (compared
    with the decoder alone on the same seeds and cases), and what stays untested. A variant
    fits when its held-out mIoU reaches `FITTED_MIOU` in every seed and its composite control
    does not fall by more than `CONTROL_COST` (interval over seeds)."""
    frozen, trained = _runs(runs, failure, False), _runs(runs, failure, True)
    before = across_seeds(runs, failure, False, "held-out", "before").mean
    text = (f"{failure.capitalize()} ({model}, n = {len(frozen)} seeds of {steps} steps, "
            f"held-out mIoU {before:.3f} before): with the decoder alone, "
            f"{_variant_numbers(runs, failure, False)}.")
    if not trained:
        return text + (" No run trained the text encoder, so whether an encoder must learn is "
                       "not measured.")
    extra = control_gain(runs, failure)
    comparison = ("above" if extra.ci_low > 0 else "below" if extra.ci_high < 0 else
                  "not shown to differ from")
    text += (f" With the text encoder trained too (n = {len(trained)} seeds), "
             f"{_variant_numbers(runs, failure, True)}; its held-out mIoU is {comparison} the "
             f"decoder alone's by {extra}.")
    reached = {t: _fitted(chosen) == len(chosen) for t, chosen in ((False, frozen),
                                                                   (True, trained))}
    fits = {t: reached[t] and not _unlearns(runs, failure, t) for t in reached}
    if fits[False]:
        return text + (" The decoder alone fits it in every seed without unlearning plain "
                       "prompts: nothing here says an encoder must learn.")
    if fits[True]:
        return text + (" Training the text encoder too let it fit where the decoder alone did "
                       "not: in these runs the frozen text encoder held it back.")
    if extra.ci_low > 0:
        return text + (" Training the text encoder helped but did not make it fit; the vision "
                       "encoder, frozen in both, is not tested.")
    how = (" without unlearning plain prompts" if reached[False] or reached[True] else "")
    return text + (f" Neither variant fits it{how}: training the text encoder too is not shown "
                   "to help, so the frozen text encoder is not shown to be what is missing; the "
                   "vision encoder (frozen in both) and longer training are not tested.")


def seed_study_dict(runs: list[SeedRun], steps: int) -> dict:
    """JSON-ready: the steps, every run's per-seed numbers, and per failure and variant the
    across-seed estimates (n = seeds) and the control's gain over the decoder alone."""
    summary = {}
    for failure in dict.fromkeys(r.result.failure for r in runs):
        summary[failure] = {
            VARIANTS[text_encoder]: {
                f"{group}_{what}": across_seeds(runs, failure, text_encoder, group, what).as_dict()
                for group in ("held-out", "seen", "control")
                for what in ("before", "after", "difference")
            }
            for text_encoder in VARIANTS if _runs(runs, failure, text_encoder)
        }
        if all(_runs(runs, failure, t) for t in VARIANTS):
            summary[failure]["text_encoder_minus_decoder_held_out"] = (
                control_gain(runs, failure).as_dict())
    return {"steps": steps, "runs": [r.per_seed() for r in runs], "across_seeds": summary}
