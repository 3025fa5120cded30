"""The verdict rules: each claim's tests on one notebook's results, and the verdict they give.

A rule (`RULES`, one per kind of claim) reads a notebook's results into an `Assessment`: the
evidence and control as text, and the `VerdictTest`s a verdict may rest on (on which side of a
bound an effect lies). Which tests hold is decided later, on Holm-adjusted p-values over every
test read together (`clipseg_lib.analysis.significance`); `Assessment.decide` turns the tests
that hold, with their directions, into a verdict. A verdict rests only on tests that hold:
when none decides, it is "inconclusive". The rules, per kind of claim:

- robust (02 distorted images, 03 distorted prompts; the poster: slight distortions barely
  change the prediction). An equivalence rule on the change of the IoU with the ground truth
  from the clean input to severity 1, per distortion (paired bootstrap over the per-case
  values, the prompts of one image together, when the rows keep them; else the difference of
  the two estimates): *reproduced* (robust) when every change lies above
  -`MARGIN`, *not reproduced* when a change lies below -`MARGIN`, else inconclusive.
- choice (05 a specific word, 07 facial expressions; the poster: the model cannot pick the
  asked one). Control: composite prompts. The asked object's mIoU below the control's shows
  the failure, picking it above chance (binomial test) shows the model can tell: reproduced
  when only the first holds, not reproduced when only the second, mixed when both.
- negation (06; the poster: "not X" is not told apart from "X"). Control: "X" against X's
  truth. Reproduced when "not X" against its truth is below the control and its mask overlaps
  the "X" mask above IoU `OVERLAP_WITH_X`; mixed when it is below the control and overlaps "X"
  below that; not reproduced when it is within `MARGIN` of the control (or above).
- absent (08; the poster: the model marks objects that are absent). Reproduced when absent
  prompts (seen or unseen colour-shape pairs) mark something more often than present, seen
  objects get an empty mask (Fisher's test); not reproduced when each marks something in
  fewer than `FALSE_POSITIVE_MARGIN` of prompts (binomial test). Empty masks for present,
  unseen pairs are a separate finding (zero-shot recall), reported beside the verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from clipseg_lib.analysis import significance as sig
from clipseg_lib.analysis.stats import Estimate, HitRate, paired_difference_ci

MARGIN = 0.05
"""IoU a change may cost and still count as slight: the poster's "barely changes" taken as at
most one twentieth of the IoU scale, fixed before the results were read (the previous rule's
threshold). Robustness is shown only when the whole interval of a change lies above -MARGIN."""
OVERLAP_WITH_X = 0.5
"""A "not X" mask whose IoU with the "X" mask is above this is still mostly X."""
FALSE_POSITIVE_MARGIN = 0.2
"""A model that marks absent objects in fewer than one prompt in five does not "mark absent
objects"; chosen for 40 prompts per cell, which can show a rate below 20% when they hold at
most one or two marks (0/40: p = 0.0002; 1/40: p = 0.0025; two-sided exact binomial), where
15% could not survive the correction (1/40: p = 0.024)."""


class NotMeasured(ValueError):
    """A claim's numbers are missing or undefined; the message says which."""


@dataclass(frozen=True)
class VerdictTest:
    """A test a verdict may rest on: on which side of `bound` `effect` lies (95% interval
    [ci_low, ci_high], over `n` cases; `p_value` two-sided, see `significance`); `rule` says
    in words what each side means, `margin` is the declared margin in the bound (None when the
    bound is not a margin)."""

    name: str
    effect: float
    ci_low: float
    ci_high: float
    n: int
    bound: float
    margin: float | None
    rule: str
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        """Every field under its name, and the direction, for ``conclusion.json``."""
        return asdict(self) | {"direction": self.direction}

    @property
    def direction(self) -> str:
        """"above" or "below": the side of the bound the effect lies on ("at" on it)."""
        return ("above" if self.effect > self.bound else "below" if self.effect < self.bound
                else "at")


def _test(name: str, estimate: Estimate, bound: float, rule: str, p_value: float | None = None,
          *, margin: float | None = None) -> VerdictTest:
    """A test of ``estimate`` against ``bound``; p-value `directional_p` unless given."""
    p_value = sig.directional_p(estimate, bound) if p_value is None else p_value
    return VerdictTest(name, estimate.mean, estimate.ci_low, estimate.ci_high, estimate.n,
                       bound, margin, rule, p_value)


@dataclass(frozen=True)
class Assessment:
    """A claim's evidence and control (text), its tests and the rule that decides from the
    tests that hold (name -> direction) a verdict and its reason."""

    evidence: str
    control: str
    n: int
    tests: tuple[VerdictTest, ...]
    decide: Callable[[Mapping[str, str]], tuple[str, str]]
    finding: str = ""


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


def _per_case(row: Mapping[str, Any]) -> list[float] | None:
    values = (row.get("per_case") or {}).get("iou_gt")
    return values if isinstance(values, list) and values and None not in values else None


def _change(row: Mapping[str, Any], clean_row: Mapping[str, Any]) -> Estimate:
    """Severity-1 minus clean IoU with the ground truth: the paired bootstrap interval of the
    per-case changes (the prompts of one image together, when the row keeps their "images"),
    or without them `significance.difference` of the two estimates."""
    distorted, clean = _per_case(row), _per_case(clean_row)
    if distorted is not None and clean is not None and len(distorted) == len(clean):
        images = (clean_row.get("images") or {}).get("iou_gt")
        return paired_difference_ci(distorted, clean, clusters=images)
    return sig.difference(_estimate(row, "iou_gt"), _estimate(clean_row, "iou_gt"))


def _interval(estimate: Estimate) -> str:
    return f"{estimate.mean:.3f} [{estimate.ci_low:.3f}, {estimate.ci_high:.3f}]"


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names) or "none"


def assess_robust(results: Mapping[str, Any]) -> Assessment:
    """Tests of a robustness claim from ``results["sweep"]`` (rows with distortion, severity,
    iou_gt, iou_vs_clean and optionally per_case and images): per distortion at severity 1,
    its change from the clean input (severity 0) above and below -`MARGIN`."""
    sweep = results.get("sweep")
    if not isinstance(sweep, list) or not sweep:
        raise NotMeasured("no 'sweep' rows (results written before the sweep format)")
    clean_rows = [row for row in sweep if row["severity"] == 0]
    if not clean_rows:
        raise NotMeasured("the sweep has no clean (severity 0) row")
    tests, evidence, sizes = [], [], []
    for row in (row for row in sweep if row["severity"] == 1):
        own_clean = [r for r in clean_rows if r["distortion"] == row["distortion"]]
        change = _change(row, (own_clean or clean_rows)[0])
        tests.append(_test(row["distortion"], change, -MARGIN,
                           "change from clean: above -margin slight, below not", margin=MARGIN))
        distorted = _estimate(row, "iou_gt")
        sizes.append(min(distorted.n, change.n))
        evidence.append(f"{row['distortion']} {_interval(distorted)}, "
                        f"change {_interval(change)}")
    if not evidence:
        raise NotMeasured("the sweep has no severity-1 rows")
    names = [test.name for test in tests]

    def decide(holding: Mapping[str, str]) -> tuple[str, str]:
        fell = [name for name in names if holding.get(name) == "below"]
        undecided = [name for name in names if name not in holding]
        if fell:
            return "not reproduced", f"change below -{MARGIN:.2f}: {_listed(fell)}"
        if not undecided:
            return "reproduced", f"every change above -{MARGIN:.2f}"
        return "inconclusive", (f"change not shown above or below -{MARGIN:.2f} after the Holm "
                                f"correction: {_listed(undecided)}")

    return Assessment(
        f"IoU with the ground truth at severity 1 and its change from clean (n={min(sizes)}): "
        + "; ".join(evidence),
        f"clean input: {_estimate(clean_rows[0], 'iou_gt')}",
        min(sizes), tuple(tests), decide,
    )


def assess_choice(results: Mapping[str, Any]) -> Assessment:
    """Tests of "cannot pick the asked word / face" from ``results["summary"]``: miou,
    control_miou (Estimate dicts) and hit_rate (a HitRate dict)."""
    summary = results.get("summary", {})
    asked, control = _estimate(summary, "miou"), _estimate(summary, "control_miou")
    picked = _hit_rate(summary, "hit_rate")
    gap = sig.difference(asked, control)
    rate = Estimate(picked.rate, picked.n, picked.ci_low, picked.ci_high)
    tests = (
        _test("mIoU against the control", gap, 0.0, "asked mIoU - control mIoU: below 0 fails"),
        _test("picked against chance", rate, picked.chance,
              "pick rate: above chance picks (exact binomial)", sig.p_rate(rate, picked.chance)),
    )

    def decide(holding: Mapping[str, str]) -> tuple[str, str]:
        below = holding.get("mIoU against the control") == "below"
        above = holding.get("picked against chance") == "above"
        reason = (f"mIoU {'below' if below else 'not shown below'} the control; picked "
                  f"{'above' if above else 'not shown above'} chance "
                  f"(two-sided p={tests[1].p_value:.3g})")
        if below and above:
            return "mixed", reason
        if below or above:
            return ("reproduced" if below else "not reproduced"), reason
        return "inconclusive", reason + ": no test decides"

    return Assessment(f"asked object: mIoU {asked}; picked (highest mean probability) in {picked}",
                      f"composite prompts: mIoU {control}", min(asked.n, control.n, picked.n),
                      tests, decide)


def assess_negation(results: Mapping[str, Any]) -> Assessment:
    """Tests of "not X is not told apart from X" from ``results["summary"]``: miou_not_x
    (against the negation's truth), miou_x (the control) and iou_not_x_vs_x."""
    summary = results.get("summary", {})
    negated, control = _estimate(summary, "miou_not_x"), _estimate(summary, "miou_x")
    overlap = _estimate(summary, "iou_not_x_vs_x")
    gap = sig.difference(negated, control)
    tests = (
        _test("against the control", gap, 0.0, "not-X mIoU - X mIoU: below 0 fails"),
        _test("against the margin", gap, -MARGIN,
              "not-X mIoU - X mIoU: above -margin is as good as the control", margin=MARGIN),
        _test("overlap with X", overlap, OVERLAP_WITH_X,
              "IoU of the not-X and X masks: above 0.5 still X"),
    )

    def decide(holding: Mapping[str, str]) -> tuple[str, str]:
        below = holding.get("against the control") == "below"
        overlap_side = holding.get("overlap with X")
        if below and overlap_side == "above":
            return "reproduced", (f"\"not X\" below the control; its mask still overlaps \"X\" "
                                  f"above IoU {OVERLAP_WITH_X:.1f}")
        if below and overlap_side == "below":
            return "mixed", (f"\"not X\" below the control, but its mask overlaps \"X\" below "
                             f"IoU {OVERLAP_WITH_X:.1f} (it moves, not to the negation's truth)")
        if holding.get("against the margin") == "above":
            return "not reproduced", f"\"not X\" within {MARGIN:.2f} of the control or above"
        return "inconclusive", "no test decides how \"not X\" stands to the control and to \"X\""

    return Assessment(
        f"\"not X\" vs its truth: mIoU {negated}; \"not X\" vs \"X\" masks: IoU {overlap}",
        f"\"X\" vs X's truth on the same scenes: mIoU {control}",
        min(negated.n, control.n, overlap.n), tests, decide,
    )


ABSENT_FALSE_POSITIVES = {
    "false_positive_absent": "absent, seen pair", "false_positive_absent_unseen":
    "absent, unseen pair",
}


def assess_absent(results: Mapping[str, Any]) -> Assessment:
    """Tests of "marks objects that are absent" from ``results["summary"]``: the rates
    (Estimate dicts of 0/1 outcomes) false_positive_absent, false_positive_absent_unseen and
    the control false_negative_seen; false_negative_zero_shot is a separate finding."""
    summary = results.get("summary", {})
    control = _estimate(summary, "false_negative_seen")
    positives = {label: _estimate(summary, key) for key, label in ABSENT_FALSE_POSITIVES.items()}
    zero_shot = _estimate(summary, "false_negative_zero_shot")
    tests = []
    for label, rate in positives.items():
        tests += [
            _test(f"{label} against the control", rate, control.mean,
                  "false-positive rate - the control's error rate: above marks absent objects "
                  "(Fisher)", sig.p_rates(rate, control)),
            _test(f"{label} against the margin", rate, FALSE_POSITIVE_MARGIN,
                  "false-positive rate: below the margin rarely marks (exact binomial)",
                  sig.p_rate(rate, FALSE_POSITIVE_MARGIN), margin=FALSE_POSITIVE_MARGIN),
        ]

    def decide(holding: Mapping[str, str]) -> tuple[str, str]:
        marked = [label for label in positives
                  if holding.get(f"{label} against the control") == "above"]
        rare = [label for label in positives
                if holding.get(f"{label} against the margin") == "below"]
        if marked:
            return "reproduced", ("marks absent objects more often than the control errs: "
                                  f"{_listed(marked)}")
        if len(rare) == len(positives):
            return "not reproduced", (f"marks absent objects in fewer than "
                                      f"{FALSE_POSITIVE_MARGIN:.0%} of prompts, seen and unseen")
        return "inconclusive", ("absent prompts neither shown to mark more than the control "
                                f"errs nor shown below {FALSE_POSITIVE_MARGIN:.0%}")

    return Assessment(
        "; ".join(f"marks an absent object ({label}) in {rate}"
                  for label, rate in positives.items()),
        f"empty mask for a present seen pair in {control}",
        min(rate.n for rate in [control, *positives.values()]), tuple(tests), decide,
        finding=f"separate finding (zero-shot recall, not absence): empty mask for a present "
                f"unseen pair in {zero_shot}",
    )


RULES: dict[str, Callable[[Mapping[str, Any]], Assessment]] = {
    "robust": assess_robust, "choice": assess_choice, "negation": assess_negation,
    "absent": assess_absent,
}


def assess(kind: str, results: Mapping[str, Any]) -> Assessment:
    """The `Assessment` of a claim of ``kind`` on one notebook's ``results`` dict.

    Raises ValueError for an unknown kind, `NotMeasured` when a number it needs is undefined.
    """
    if kind not in RULES:
        raise ValueError(f"claim kind {kind!r} is not one of {sorted(RULES)}")
    return RULES[kind](results)
