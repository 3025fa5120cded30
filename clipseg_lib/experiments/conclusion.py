"""The poster's six claims judged on our numbers: verdict rules on 95% intervals and controls.

A verdict is about the model that produced the numbers ("on mini: reproduced"), never about
CLIPSeg in general. Each claim is judged from one notebook's results (see `CLAIMS`) against
that experiment's control; "clearly below" means the upper end of one 95% interval lies under
the lower end of the other (`Estimate.clearly_below`). The rules, per kind of claim:

- robust (02 distorted images, 03 distorted prompts; the poster: slight distortions barely
  change the prediction). Judged per distortion on ``results["sweep"]``: a distortion falls
  when its severity-1 IoU with the ground truth is clearly below the clean input's (severity
  0) by more than `ROBUST_MARGIN`: the whole 95% interval of the change lies below
  -ROBUST_MARGIN (paired bootstrap over the per-case values when the rows keep them as
  ``"per_case"``, else the widest difference of the two intervals). No distortion falls:
  reproduced; every one: not reproduced; some: mixed.
- choice (05 a specific word, 07 facial expressions; the poster: the model cannot pick the asked
  one). Control: composite prompts on the same world. Reproduced when the asked object's mIoU
  is clearly below the control's and the asked object is not picked above chance (binomial
  test, `HitRate.above_chance`); not reproduced when it is picked above chance and its mIoU is
  not clearly below the control's; mixed otherwise.
- negation (06; the poster: "not X" is not told apart from "X"). Control: "X" on the same
  scenes against X's truth. Reproduced when "not X" against its own truth is clearly below the
  control and its mask still overlaps the "X" mask (interval above IoU 0.5); not reproduced when
  "not X" is not clearly below the control; mixed otherwise (the mask moves, but not to the
  negation's truth).
- absent (08; the poster: performance declines when the object is absent). Control: how often
  present, seen composites get an empty mask. False positives: absent prompts (seen or unseen
  colour-shape pairs, similar objects around) that mark any pixel. False negatives: present
  objects of unseen pairs (zero-shot) that get an empty mask. Reproduced when a false-positive
  rate is clearly above the control's error rate; mixed when none is but the zero-shot
  false-negative rate is (an empty mask then says "unseen", not "absent"); not reproduced
  when neither is.

A claim is "not measured" when its results file is missing, holds undefined numbers, or comes
from another run configuration than the rest (see `configuration_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from clipseg_lib.analysis.plotting import format_table
from clipseg_lib.analysis.stats import Estimate, HitRate, paired_difference_ci
from clipseg_lib.experiments.run_configuration import (
    configuration_problems,
    model_and_weights,
)

VERDICTS = ("reproduced", "not reproduced", "mixed", "not measured")
VERDICT_COLOURS = {
    "reproduced": "#3b6fb6", "not reproduced": "#e08a2c", "mixed": "#9d7fc2",
    "not measured": "#d9d9d9",
}
"""Blue / orange / purple / grey: what the colour says is whether the poster's claim held on
the model, not whether the model did well."""
ROBUST_MARGIN = 0.05
"""A severity-1 drop of the IoU with the ground truth up to this much counts as slight."""
OVERLAP_WITH_X = 0.5
"""A "not X" mask whose IoU with the "X" mask is above this is still mostly X."""


class NotMeasured(ValueError):
    """A claim's numbers are missing or undefined; the message says which."""


@dataclass(frozen=True)
class Judgement:
    """A verdict with the text behind it: evidence (with intervals), control, the reason."""

    verdict: str
    evidence: str
    control: str
    reason: str
    n: int


def _estimate(summary: Mapping[str, Any], key: str) -> Estimate:
    value = summary.get(key)
    if not isinstance(value, Mapping) or value.get("mean") is None:
        raise NotMeasured(f"{key} is undefined")
    return Estimate(**{field: value[field] for field in ("mean", "n", "ci_low", "ci_high")})


def _hit_rate(summary: Mapping[str, Any], key: str) -> HitRate:
    value = summary.get(key)
    if not isinstance(value, Mapping) or value.get("rate") is None:
        raise NotMeasured(f"{key} is undefined")
    return HitRate(**value)


def _three_way(reproduced: bool, not_reproduced: bool) -> str:
    return "reproduced" if reproduced else "not reproduced" if not_reproduced else "mixed"


def _per_case(row: Mapping[str, Any]) -> list[float] | None:
    values = (row.get("per_case") or {}).get("iou_gt")
    return values if isinstance(values, list) and values and None not in values else None


def _change(row: Mapping[str, Any], clean_row: Mapping[str, Any]) -> Estimate:
    """Severity-1 minus clean IoU with the ground truth: the paired bootstrap interval of the
    per-case changes (the prompts of one image together, when the row keeps their "images"),
    or without them the widest difference of the two intervals."""
    distorted, clean = _per_case(row), _per_case(clean_row)
    if distorted is not None and clean is not None and len(distorted) == len(clean):
        images = (clean_row.get("images") or {}).get("iou_gt")
        return paired_difference_ci(distorted, clean, clusters=images)
    after, before = _estimate(row, "iou_gt"), _estimate(clean_row, "iou_gt")
    return Estimate(after.mean - before.mean, min(after.n, before.n),
                    after.ci_low - before.ci_high, after.ci_high - before.ci_low)


def _interval(estimate: Estimate) -> str:
    return f"{estimate.mean:.3f} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"


def judge_robust(results: Mapping[str, Any]) -> Judgement:
    """Verdict on a robustness claim from ``results["sweep"]`` (rows with distortion, severity,
    iou_gt, iou_vs_clean and optionally per_case), per distortion at severity 1 against the
    clean input (severity 0)."""
    sweep = results.get("sweep")
    if not isinstance(sweep, list) or not sweep:
        raise NotMeasured("no 'sweep' rows (results written before the sweep format)")
    clean_rows = [row for row in sweep if row["severity"] == 0]
    if not clean_rows:
        raise NotMeasured("the sweep has no clean (severity 0) row")
    held, fell, evidence, sizes = [], [], [], []
    for row in (row for row in sweep if row["severity"] == 1):
        own_clean = [r for r in clean_rows if r["distortion"] == row["distortion"]]
        change = _change(row, (own_clean or clean_rows)[0])
        (fell if change.ci_high < -ROBUST_MARGIN else held).append(row["distortion"])
        distorted = _estimate(row, "iou_gt")
        sizes.append(distorted.n)
        evidence.append(f"{row['distortion']} {_interval(distorted)}, change {_interval(change)}")
    if not evidence:
        raise NotMeasured("the sweep has no severity-1 rows")
    drop = f"clearly below clean by more than {ROBUST_MARGIN:.2f}"
    reason = f"{drop}: {', '.join(fell)}" if fell else f"no distortion {drop}"
    return Judgement(
        _three_way(not fell, not held),
        f"IoU with the ground truth at severity 1 and its change from clean (n={min(sizes)}): "
        + "; ".join(evidence),
        f"clean input: {_estimate(clean_rows[0], 'iou_gt')}",
        reason,
        min(sizes),
    )


def judge_choice(results: Mapping[str, Any]) -> Judgement:
    """Verdict on "cannot pick the asked word / face" from ``results["summary"]``: miou,
    control_miou (Estimate dicts) and hit_rate (a HitRate dict)."""
    summary = results.get("summary", {})
    asked, control = _estimate(summary, "miou"), _estimate(summary, "control_miou")
    picked = _hit_rate(summary, "hit_rate")
    below = asked.clearly_below(control)
    reason = (
        f"mIoU {'clearly below' if below else 'not clearly below'} the control; picked "
        f"{'above' if picked.above_chance else 'not above'} chance (p={picked.p_value:.3g})"
    )
    return Judgement(
        _three_way(below and not picked.above_chance, picked.above_chance and not below),
        f"asked object: mIoU {asked}; picked (highest mean probability) in {picked}",
        f"composite prompts: mIoU {control}",
        reason,
        asked.n,
    )


def judge_negation(results: Mapping[str, Any]) -> Judgement:
    """Verdict on "not X is not told apart from X" from ``results["summary"]``: miou_not_x
    (against the negation's truth), miou_x (the control) and iou_not_x_vs_x."""
    summary = results.get("summary", {})
    negated, control = _estimate(summary, "miou_not_x"), _estimate(summary, "miou_x")
    overlap = _estimate(summary, "iou_not_x_vs_x")
    below = negated.clearly_below(control)
    still_x = overlap.ci_low > OVERLAP_WITH_X
    reason = (
        f"\"not X\" {'clearly below' if below else 'not clearly below'} the control; its mask "
        f"{'still' if still_x else 'no longer clearly'} overlaps \"X\" above IoU "
        f"{OVERLAP_WITH_X:.1f}"
    )
    return Judgement(
        _three_way(below and still_x, not below),
        f"\"not X\" vs its truth: mIoU {negated}; \"not X\" vs \"X\" masks: IoU {overlap}",
        f"\"X\" vs X's truth on the same scenes: mIoU {control}",
        reason,
        negated.n,
    )


ABSENT_FALSE_POSITIVES = {
    "false_positive_absent": "absent, seen pair", "false_positive_absent_unseen":
    "absent, unseen pair",
}


def judge_absent(results: Mapping[str, Any]) -> Judgement:
    """Verdict on "declines when the object is absent" from ``results["summary"]``: the rates
    (Estimate dicts of 0/1 outcomes) false_positive_absent, false_positive_absent_unseen,
    false_negative_zero_shot and the control false_negative_seen."""
    summary = results.get("summary", {})
    control = _estimate(summary, "false_negative_seen")
    positives = {label: _estimate(summary, key) for key, label in ABSENT_FALSE_POSITIVES.items()}
    negatives = _estimate(summary, "false_negative_zero_shot")
    painted = [label for label, rate in positives.items() if control.clearly_below(rate)]
    missed = control.clearly_below(negatives)
    reason = (
        f"false positives clearly above the control: {', '.join(painted) or 'none'}; zero-shot "
        f"false negatives {'clearly above' if missed else 'not clearly above'} it"
    )
    evidence = "; ".join(
        [f"marks an absent object ({label}) in {rate}" for label, rate in positives.items()]
        + [f"empty mask for a present unseen pair in {negatives}"]
    )
    return Judgement(
        _three_way(bool(painted), not painted and not missed),
        evidence,
        f"empty mask for a present seen pair in {control}",
        reason,
        min(rate.n for rate in [control, negatives, *positives.values()]),
    )


JUDGES: dict[str, Callable[[Mapping[str, Any]], Judgement]] = {
    "robust": judge_robust, "choice": judge_choice, "negation": judge_negation,
    "absent": judge_absent,
}


@dataclass(frozen=True)
class Claim:
    """A claim of the poster, the results file (notebook name) measuring it, its rule kind."""

    claim: str
    notebook: str
    kind: str


CLAIMS = (
    Claim("Robust to slightly distorted input images", "02_distorted_images", "robust"),
    Claim("Robust to slightly distorted image prompts", "03_distorted_prompts", "robust"),
    Claim("Fails to segment a specific word in the image", "05_specific_word", "choice"),
    Claim("Fails on negated prompts (\"not X\")", "06_negation", "negation"),
    Claim("Fails on facial expressions", "07_facial_expressions", "choice"),
    Claim("Fails when the object is absent", "08_absent_objects", "absent"),
)


def judge(kind: str, results: Mapping[str, Any]) -> Judgement:
    """The `Judgement` of a claim of `kind` on one notebook's ``results`` dict.

    Raises ValueError for an unknown kind, `NotMeasured` when a number it needs is undefined.
    """
    if kind not in JUDGES:
        raise ValueError(f"claim kind {kind!r} is not one of {sorted(JUDGES)}")
    return JUDGES[kind](results)


def verdict_sentence(kind: str, results: Mapping[str, Any], *, model: str) -> str:
    """"On <model>: <verdict> (<reason>)." for a notebook's own results."""
    judgement = judge(kind, results)
    return f"On {model}: {judgement.verdict} ({judgement.reason})."


def build_claims(
    loaded: Mapping[str, Mapping[str, Any]], *, model: str | None = None
) -> list[dict[str, Any]]:
    """One row per claim of `CLAIMS`: claim, notebook, evidence, control, verdict, reason,
    model, weights, n. Results from another configuration are refused ("not measured").

    `loaded` is `results.load_results(output_dir)`: name -> {"name", "results", ...}.
    """
    problems = configuration_problems(loaded, model=model)
    rows = []
    for claim in CLAIMS:
        row: dict[str, Any] = {
            "claim": claim.claim, "notebook": claim.notebook, "evidence": "", "control": "",
            "verdict": "not measured", "reason": "", "model": "", "weights": "", "n": 0,
        }
        payload = loaded.get(claim.notebook)
        if payload is None:
            row["reason"] = f"no {claim.notebook}.json in the output dir"
        elif claim.notebook in problems:
            row["reason"] = problems[claim.notebook]
        else:
            row["model"], row["weights"] = model_and_weights(payload)
            try:
                judgement = judge(claim.kind, payload.get("results", {}))
            except NotMeasured as error:
                row["reason"] = f"{claim.notebook}.json: {error}"
            else:
                row.update(evidence=judgement.evidence, control=judgement.control,
                           verdict=judgement.verdict, reason=judgement.reason, n=judgement.n)
        rows.append(row)
    return rows


def verdict_on_model(claim: Mapping[str, Any]) -> str:
    """"on <model>: <verdict>", or "not measured"."""
    if claim["verdict"] == "not measured":
        return "not measured"
    return f"on {claim['model']}: {claim['verdict']}"


def markdown_table(claims: Sequence[Mapping[str, Any]]) -> str:
    """The claims as a Markdown table (Claim, Evidence, Control, Verdict): the README's table.

    A claim that is not measured says why in its Evidence cell."""
    if not claims:
        raise ValueError("claims is empty: build them with build_claims")
    return format_table([
        {
            "Claim": claim["claim"],
            "Evidence (mean [95% interval] (n))": claim["evidence"] or f"({claim['reason']})",
            "Control": claim["control"],
            "Verdict": verdict_on_model(claim),
        }
        for claim in claims
    ])


def verdict_counts(claims: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """How many claims got each of `VERDICTS`."""
    return {verdict: sum(claim["verdict"] == verdict for claim in claims) for verdict in VERDICTS}


def finding(claims: Sequence[Mapping[str, Any]]) -> str:
    """One sentence: how many claims got each verdict, on which model."""
    counts = verdict_counts(claims)
    tally = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    producers = sorted({f"{c['model']} ({c['weights']})" for c in claims if c["model"]})
    if not producers:
        return f"Of the poster's {len(claims)} claims: {tally}; no usable results were found."
    return f"On {', '.join(producers)}, of the poster's {len(claims)} claims: {tally}."


def plot_verdicts(claims: Sequence[Mapping[str, Any]]) -> Figure:
    """A cell per claim coloured by its verdict (`VERDICT_COLOURS`), with a legend."""
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(claims) + 1.2))
    for row, claim in enumerate(claims):
        ax.barh(row, 1.0, color=VERDICT_COLOURS[claim["verdict"]], edgecolor="white")
        ax.text(0.5, row, verdict_on_model(claim), ha="center", va="center", fontsize=9)
    ax.set_yticks(range(len(claims)), [claim["claim"] for claim in claims], fontsize=9)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_xlim(0.0, 1.0)
    ax.legend(
        handles=[Patch(color=colour, label=v) for v, colour in VERDICT_COLOURS.items()],
        loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=8, frameon=False,
    )
    ax.set_title("Did the poster's claim hold on this model?")
    figure.tight_layout()
    return figure
