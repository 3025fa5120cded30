"""The poster's six claims beside our measurements, judged by fixed rules.

Each claim is judged from `results["summary"]` of one notebook's results file (see `CLAIMS`).
`VERDICT_RULES` is the one table of thresholds. For each kind of claim it lists two verdicts,
each with the conditions on the summary's measures that give it; they are tried in order and
the first that holds wins; when neither holds the verdict is "mixed". A claim whose results file
is missing, or whose measures are undefined (NaN, saved as null), is "not measured".

- robust (distorted images, distorted prompts). The poster: slight distortions barely change
  the prediction. Confirmed when the severity-1 prediction overlaps the clean one at IoU >= 0.8,
  the IoU with the ground truth drops by at most 0.05, and the clean IoU is at least 0.5 (a
  model that does not segment the clean image shows no robustness, only indifference). Not
  confirmed when the overlap with the clean prediction is < 0.5 or the ground-truth IoU drops
  by more than 0.15.
- fails (a specific word, facial expressions). The poster: CLIPSeg cannot pick the asked one.
  Confirmed when mIoU < 0.5 or the asked object ranks first (highest mean probability) no more
  often than chance + 0.1. Not confirmed when mIoU > 0.75.
- negation. The poster: "not X" is not told apart from "X". Confirmed when "not X" matches its
  own ground truth at mIoU < 0.5 or its mask still overlaps the mask of "X" at IoU > 0.5. Not
  confirmed when "not X" reaches mIoU > 0.75 against its ground truth.
- absent. The poster: CLIPSeg struggles when the object is not in the image. Confirmed when the
  presence score separates absent from present prompts at AUROC < 0.9 or absent prompts paint
  more than 1% of the image (mean false-positive area > 0.01). Not confirmed when AUROC >= 0.95
  and the false-positive area is at most 0.005.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from clipseg_lib.analysis.plotting import show_table

VERDICTS = ("confirmed", "not confirmed", "mixed", "not measured")
CONCLUSION_NAME = "conclusion"
SHA_PREFIX = 12

#: (measure, operator, threshold); a measure is a summary key or one of `DERIVED_MEASURES`.
Condition = tuple[str, str, float]

VERDICT_RULES: dict[str, tuple[tuple[str, str, tuple[Condition, ...]], ...]] = {
    "robust": (
        ("confirmed", "all", (
            ("iou_vs_clean_severity1", ">=", 0.8),
            ("gt_drop_severity1", "<=", 0.05),
            ("iou_gt_clean", ">=", 0.5),
        )),
        ("not confirmed", "any", (
            ("iou_vs_clean_severity1", "<", 0.5),
            ("gt_drop_severity1", ">", 0.15),
        )),
    ),
    "fails": (
        ("confirmed", "any", (("miou", "<", 0.5), ("hit_rate_above_chance", "<=", 0.1))),
        ("not confirmed", "all", (("miou", ">", 0.75),)),
    ),
    "negation": (
        ("confirmed", "any", (("miou_negation_gt", "<", 0.5), ("iou_not_x_vs_x", ">", 0.5))),
        ("not confirmed", "all", (("miou_negation_gt", ">", 0.75),)),
    ),
    "absent": (
        ("confirmed", "any", (("presence_auroc", "<", 0.9), ("false_positive_area", ">", 0.01))),
        ("not confirmed", "all", (
            ("presence_auroc", ">=", 0.95),
            ("false_positive_area", "<=", 0.005),
        )),
    ),
}
DERIVED_MEASURES: dict[str, Callable[[Mapping[str, float]], float]] = {
    "gt_drop_severity1": lambda summary: summary["iou_gt_clean"] - summary["iou_gt_severity1"],
    "hit_rate_above_chance": lambda summary: summary["hit_rate"] - summary["chance"],
}
#: Summary keys each kind of claim needs (rules and evidence text).
REQUIRED_KEYS = {
    "robust": ("iou_gt_clean", "iou_gt_severity1", "iou_gt_severity5", "iou_vs_clean_severity1",
               "iou_vs_clean_severity5"),
    "fails": ("miou", "hit_rate", "chance"),
    "negation": ("miou_negation_gt", "iou_not_x_vs_x", "miou_x"),
    "absent": ("false_positive_area", "presence_auroc", "calibrated_threshold", "present_miou"),
}
_OPERATORS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Claim:
    """A claim of the poster, the results file (notebook name) measuring it, its rule kind."""

    claim: str
    notebook: str
    kind: str


CLAIMS = (
    Claim("Robust to slightly distorted input images", "02_distorted_images", "robust"),
    Claim("Robust to slightly distorted image prompts", "03_distorted_prompts", "robust"),
    Claim("Fails to segment a specific word in the image", "05_specific_word", "fails"),
    Claim("Fails on negated prompts (\"not X\")", "06_negation", "negation"),
    Claim("Fails on facial expressions", "07_facial_expressions", "fails"),
    Claim("Fails when the object is absent", "08_absent_objects", "absent"),
)


def judge(kind: str, summary: Mapping[str, Any]) -> tuple[str, str]:
    """(verdict, rule that decided it) for a summary dict under the rules of `kind`.

    Raises ValueError for an unknown kind or a summary that lacks a required key; a required
    value that is None or NaN gives "not measured".
    """
    if kind not in VERDICT_RULES:
        raise ValueError(f"claim kind {kind!r} is not one of {sorted(VERDICT_RULES)}")
    missing = [key for key in REQUIRED_KEYS[kind] if key not in summary]
    if missing:
        raise ValueError(f"summary for a {kind!r} claim lacks {missing}")
    undefined = [key for key in REQUIRED_KEYS[kind] if not _is_number(summary[key])]
    if undefined:
        return "not measured", f"undefined: {', '.join(undefined)}"
    for verdict, mode, conditions in VERDICT_RULES[kind]:
        held = [condition for condition in conditions if _holds(condition, summary)]
        if held and (mode == "any" or len(held) == len(conditions)):
            return verdict, " and ".join(_condition_text(c, summary) for c in held)
    return "mixed", "between the thresholds of both rules"


def evidence(kind: str, summary: Mapping[str, float]) -> str:
    """The measured numbers behind a claim as one sentence, 3 decimals."""
    values = {key: _number(value) for key, value in summary.items()}
    if kind == "robust":
        return (
            "IoU with the clean prediction {iou_vs_clean_severity1} at severity 1, "
            "{iou_vs_clean_severity5} at severity 5; IoU with the ground truth "
            "{iou_gt_clean} clean, {iou_gt_severity1} at severity 1, {iou_gt_severity5} at "
            "severity 5"
        ).format(**values)
    if kind == "fails":
        control = values.get("control_miou")
        control = f" (composite prompts: {control})" if control else ""
        return (
            f"mIoU {values['miou']}{control}; the asked object scores highest in "
            f"{values['hit_rate']} of the cases (chance {values['chance']})"
        )
    if kind == "negation":
        return (
            "\"not X\" vs its ground truth: mIoU {miou_negation_gt}; \"not X\" vs \"X\" masks: "
            "IoU {iou_not_x_vs_x}; plain \"X\": mIoU {miou_x}"
        ).format(**values)
    if kind == "absent":
        return (
            "false-positive area {false_positive_area} of the image; presence AUROC "
            "{presence_auroc} (calibrated threshold {calibrated_threshold}); mIoU when present "
            "{present_miou}"
        ).format(**values)
    raise ValueError(f"claim kind {kind!r} is not one of {sorted(VERDICT_RULES)}")


def build_claims(loaded: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """One row per claim of `CLAIMS`: claim, evidence, verdict, rule, source, model, weights.

    `loaded` is `results.load_results(output_dir)`: name -> {"name", "results", "provenance"}.
    """
    rows = []
    for claim in CLAIMS:
        row = {"claim": claim.claim, "source": claim.notebook}
        payload = loaded.get(claim.notebook)
        if payload is None:
            row.update(evidence=f"no {claim.notebook}.json in the output dir",
                       verdict="not measured", rule="", model="", weights="")
            rows.append(row)
            continue
        summary = payload.get("results", {}).get("summary")
        if not isinstance(summary, Mapping):
            raise ValueError(f"{claim.notebook}.json has no results['summary'] dict")
        try:
            verdict, rule = judge(claim.kind, summary)
        except ValueError as error:
            raise ValueError(f"{claim.notebook}.json: {error}") from error
        model, weights = _model_and_weights(payload)
        row.update(evidence=evidence(claim.kind, summary), verdict=verdict, rule=rule,
                   model=model, weights=weights)
        rows.append(row)
    return rows


def sources(loaded: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Which model, weights (sha256 prefix) and seed produced each results file."""
    rows = []
    for name, payload in loaded.items():
        if name == CONCLUSION_NAME:
            continue
        model, weights = _model_and_weights(payload)
        seed = payload.get("provenance", {}).get("seed")
        rows.append({"results": name, "model": model, "weights": weights, "seed": str(seed)})
    return rows


def sources_table(loaded: Mapping[str, Mapping[str, Any]]) -> str:
    """`sources` as a table, or a line saying there are no results files."""
    rows = sources(loaded)
    return show_table(rows) if rows else "No results files in the output dir."


def markdown_table(claims: Sequence[Mapping[str, str]]) -> str:
    """The claims as a Markdown table (Claim, Evidence, Verdict, Model) for the README."""
    if not claims:
        raise ValueError("claims is empty: build them with build_claims")
    return show_table([
        {
            "Claim": claim["claim"],
            "Evidence": claim["evidence"],
            "Verdict": claim["verdict"] + (f" ({claim['rule']})" if claim["rule"] else ""),
            "Model": f"{claim['model']} ({claim['weights']})" if claim["model"] else "",
        }
        for claim in claims
    ])


def verdict_counts(claims: Sequence[Mapping[str, str]]) -> dict[str, int]:
    """How many claims got each of `VERDICTS`."""
    return {verdict: sum(claim["verdict"] == verdict for claim in claims) for verdict in VERDICTS}


def finding(claims: Sequence[Mapping[str, str]], *, model: str) -> str:
    """One sentence: how many claims each verdict got, and which model the numbers come from."""
    counts = verdict_counts(claims)
    tally = ", ".join(f"{count} {verdict}" for verdict, count in counts.items() if count)
    producers = sorted({f"{c['model']} ({c['weights']})" for c in claims if c["model"]})
    if not producers:
        return f"Of the poster's {len(claims)} claims: {tally}; no results were found."
    others = sorted({c["model"] for c in claims if c["model"] and c["model"] != model})
    warning = (
        f" Some results come from another model than {model!r} ({', '.join(others)}): rerun "
        "those notebooks before trusting the table." if others else ""
    )
    return (
        f"Of the poster's {len(claims)} claims: {tally}; measured with "
        f"{', '.join(producers)}.{warning}"
    )


def plot_verdicts(claims: Sequence[Mapping[str, str]]) -> Figure:
    """A coloured cell per claim, labelled with its verdict: the table at a glance."""
    colours = {"confirmed": "#4c9f70", "not confirmed": "#d1495b", "mixed": "#edae49",
               "not measured": "#cccccc"}
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(claims) + 0.8))
    for row, claim in enumerate(claims):
        ax.barh(row, 1.0, color=colours[claim["verdict"]], edgecolor="white")
        ax.text(0.5, row, claim["verdict"], ha="center", va="center", fontsize=9)
    ax.set_yticks(range(len(claims)), [claim["claim"] for claim in claims], fontsize=9)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_xlim(0.0, 1.0)
    ax.set_title("The poster's claims, judged on our numbers")
    figure.tight_layout()
    return figure


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: Any) -> str:
    return f"{value:.3f}" if _is_number(value) else "undefined"


def _measure(name: str, summary: Mapping[str, float]) -> float:
    """The measure's value, rounded to 9 decimals so that 0.4 - 0.3 compares as 0.1."""
    value = DERIVED_MEASURES[name](summary) if name in DERIVED_MEASURES else summary[name]
    return round(value, 9)


def _holds(condition: Condition, summary: Mapping[str, float]) -> bool:
    name, symbol, threshold = condition
    return _OPERATORS[symbol](_measure(name, summary), threshold)


def _condition_text(condition: Condition, summary: Mapping[str, float]) -> str:
    name, symbol, threshold = condition
    return f"{name} {_measure(name, summary):.3f} {symbol} {threshold:.3f}"


def _model_and_weights(payload: Mapping[str, Any]) -> tuple[str, str]:
    provenance = payload.get("provenance", {})
    digest = provenance.get("weights_sha256") or "unknown"
    return str(provenance.get("model", "unknown")), digest[:SHA_PREFIX]
