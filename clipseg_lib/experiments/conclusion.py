"""The poster's six claims judged on our numbers: each claim's tests, corrected together.

A verdict is about the model that produced the numbers ("on mini: reproduced"), never about
CLIPSeg in general. Each claim is judged from one notebook's results (see `CLAIMS`) by its rule
in `clipseg_lib.experiments.verdicts` (its docstring states each rule: an equivalence rule
with a declared margin for robustness, a control for every failure claim). Every verdict
rests on tests of which side of a bound an effect lies, at `significance.LEVEL` (5%, as a 95%
interval decides), with Holm's correction over all the tests of the claims judged together
(`build_claims`; `judge`, for one notebook, corrects over that claim's tests), so that the
chance that any verdict rests on a test that holds by chance is at most 5%. A verdict that no
test decides is "inconclusive".

A claim is "not judged" when a cell it reads holds fewer than `MIN_CASES` cases (the number
after any budget, as in its intervals), and "not measured" when its results file is missing,
holds undefined numbers, or comes from another run configuration than the rest (see
`configuration_problems`). `clipseg_lib.experiments.threshold_flips` judges the same claims at
t = 0.3 and t = 0.5 from one run and says whether a verdict flips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from clipseg_lib.analysis.plotting import MIN_FONT_PT, format_table, text_colour_on
from clipseg_lib.analysis.significance import LEVEL, holm
from clipseg_lib.experiments.run_configuration import (
    configuration_problems,
    model_and_weights,
)
from clipseg_lib.experiments.verdicts import Assessment, NotMeasured, assess

VERDICTS = ("reproduced", "not reproduced", "mixed", "inconclusive", "not judged",
            "not measured")
VERDICT_COLOURS = {
    "reproduced": "#0072B2", "not reproduced": "#D55E00", "mixed": "#CC79A7",
    "inconclusive": "#E69F00", "not judged": "#999999", "not measured": "#BBBBBB",
}
"""Okabe-Ito's colour-blind-safe blue / vermillion / reddish purple / orange, then greys: what
the colour says is whether the poster's claim held on the model, not whether the model did
well."""
MIN_CASES = 40
"""Fewer cases than this in a cell a claim reads, and the claim is not judged."""


@dataclass(frozen=True)
class Judgement:
    """A verdict with the text behind it (evidence with intervals, control, the reason), the
    cases it rests on, its tests (`VerdictTest.as_dict` with ``p_holm`` and ``holds``) and a
    separate finding, if any."""

    verdict: str
    evidence: str
    control: str
    reason: str
    n: int
    tests: tuple[dict[str, Any], ...]
    finding: str = ""


def _judged(assessment: Assessment, adjusted: Sequence[float]) -> Judgement:
    """The verdict of an assessment given its tests' Holm-adjusted p-values."""
    tests = tuple(test.as_dict() | {"p_holm": p, "holds": p < LEVEL}
                  for test, p in zip(assessment.tests, adjusted, strict=True))
    if assessment.n < MIN_CASES:
        verdict, reason = "not judged", f"too few cases: n = {assessment.n} < {MIN_CASES}"
    else:
        verdict, reason = assessment.decide(
            {test["name"]: test["direction"] for test in tests if test["holds"]})
    return Judgement(verdict, assessment.evidence, assessment.control, reason, assessment.n,
                     tests, assessment.finding)


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
    """The `Judgement` of a claim of `kind` on one notebook's ``results`` dict, Holm's
    correction over this claim's tests alone (`build_claims` corrects over all claims').

    Raises ValueError for an unknown kind, `NotMeasured` when a number it needs is undefined.
    """
    assessment = assess(kind, results)
    return _judged(assessment, holm([test.p_value for test in assessment.tests]))


def verdict_sentence(kind: str, results: Mapping[str, Any], *, model: str) -> str:
    """"On <model>: <verdict> (<reason>)." for a notebook's own results, and its separate
    finding, if any, as a second sentence."""
    judgement = judge(kind, results)
    finding = judgement.finding and f" {judgement.finding[0].upper()}{judgement.finding[1:]}."
    return f"On {model}: {judgement.verdict} ({judgement.reason}).{finding}"


def build_claims(
    loaded: Mapping[str, Mapping[str, Any]], *, model: str | None = None
) -> list[dict[str, Any]]:
    """One row per claim of `CLAIMS`: claim, notebook, evidence, control, verdict, reason,
    model, weights, n, tests (each `VerdictTest` under its field names with ``p_holm`` and
    ``holds``) and finding (a separate finding, or ""). Holm's correction runs over the tests
    of every claim with enough cases. Results from another configuration are refused ("not
    measured").

    `loaded` is `results.load_results(output_dir)`: name -> {"name", "results", ...}.
    """
    problems = configuration_problems(loaded, model=model)
    rows, assessments = [], {}
    for claim in CLAIMS:
        row: dict[str, Any] = {
            "claim": claim.claim, "notebook": claim.notebook, "evidence": "", "control": "",
            "verdict": "not measured", "reason": "", "model": "", "weights": "", "n": 0,
            "tests": [], "finding": "",
        }
        payload = loaded.get(claim.notebook)
        if payload is None:
            row["reason"] = f"no {claim.notebook}.json in the output dir"
        elif claim.notebook in problems:
            row["reason"] = problems[claim.notebook]
        else:
            row["model"], row["weights"] = model_and_weights(payload)
            try:
                assessments[claim.claim] = assess(claim.kind, payload.get("results", {}))
            except NotMeasured as error:
                row["reason"] = f"{claim.notebook}.json: {error}"
        rows.append(row)
    family = [(name, test) for name, assessment in assessments.items()
              if assessment.n >= MIN_CASES for test in assessment.tests]
    adjusted = dict(zip([(name, test.name) for name, test in family],
                        holm([test.p_value for _, test in family]), strict=True))
    for row in rows:
        assessment = assessments.get(row["claim"])
        if assessment is not None:
            judgement = _judged(assessment, [adjusted.get((row["claim"], test.name), 1.0)
                                             for test in assessment.tests])
            row.update(evidence=judgement.evidence, control=judgement.control,
                       verdict=judgement.verdict, reason=judgement.reason, n=judgement.n,
                       tests=list(judgement.tests), finding=judgement.finding)
    return rows


def correction_sentence(claims: Sequence[Mapping[str, Any]]) -> str:
    """How the verdict tests were corrected, with their numbers."""
    judged = [claim for claim in claims if claim["verdict"] not in ("not judged", "not measured")]
    tests = sum(len(claim["tests"]) for claim in judged)
    holding = sum(test["holds"] for claim in judged for test in claim["tests"])
    return (
        f"Each verdict rests on tests of which side of a bound an effect lies (two-sided at "
        f"{LEVEL:.0%}, as a 95% interval decides), Holm-corrected over the {tests} tests of "
        f"the {len(judged)} judged claims: {holding} hold, and the chance that any verdict "
        f"rests on a test that holds by chance is at most {LEVEL:.0%}. A claim with fewer "
        f"than {MIN_CASES} cases in a cell is not judged."
    )


def verdict_on_model(claim: Mapping[str, Any]) -> str:
    """"on <model>: <verdict>", or "not measured" / "not judged"."""
    if claim["verdict"] in ("not measured", "not judged"):
        return claim["verdict"]
    return f"on {claim['model']}: {claim['verdict']}"


def markdown_table(claims: Sequence[Mapping[str, Any]]) -> str:
    """The claims as a Markdown table (Claim, Evidence, Control, Verdict): the README's table.

    A claim that is not measured says why in its Evidence cell, one not judged in its Verdict
    cell; a separate finding follows the evidence."""
    if not claims:
        raise ValueError("claims is empty: build them with build_claims")
    return format_table([
        {
            "Claim": claim["claim"],
            "Evidence (mean [95% interval] (n))": "; ".join(
                filter(None, [claim["evidence"], claim.get("finding", "")])
            ) or f"({claim['reason']})",
            "Control": claim["control"],
            "Verdict": verdict_on_model(claim) + (
                f" ({claim['reason']})" if claim["verdict"] == "not judged" else ""),
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
    """A cell per claim coloured by its verdict (`VERDICT_COLOURS`), its text black or white,
    whichever reads better on that colour, with a legend."""
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(claims) + 1.2))
    for row, claim in enumerate(claims):
        colour = VERDICT_COLOURS[claim["verdict"]]
        ax.barh(row, 1.0, color=colour, edgecolor="white")
        ax.text(0.5, row, verdict_on_model(claim), ha="center", va="center",
                fontsize=MIN_FONT_PT, color=text_colour_on(colour))
    ax.set_yticks(range(len(claims)), [claim["claim"] for claim in claims], fontsize=9)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_xlim(0.0, 1.0)
    ax.legend(
        handles=[Patch(color=colour, label=v) for v, colour in VERDICT_COLOURS.items()],
        loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=MIN_FONT_PT,
        frameon=False,
    )
    ax.set_title("Did the poster's claim hold on this model?")
    figure.tight_layout()
    return figure
