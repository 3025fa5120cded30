"""Does any verdict depend on the mask threshold? The claims judged at t = 0.3 and t = 0.5 from
one run.

CLIPSeg's authors threshold its maps at 0.3 (PhraseCut, Pascal-5i), `mini`'s at 0.5; the study
judges at the model's own (`NotebookSession.mask_threshold`). Every notebook whose verdict reads
a thresholded mask thresholds the same probability maps at each of `compared_thresholds` (no
extra model work) and records, beside its results at the study's threshold, the same results at
the others under ``"at_threshold"`` (`recorded`): ``{"0.3": {"summary": ..., "cases": ...}}``,
in the layout of the results themselves. Which quantities depend on the threshold:

- 02, 03 (robust): the sweep's per-case IoUs with the ground truth (and with the clean mask);
- 05, 07 (choice): the mIoU of the asked object and of the composite control (the pick is the
  highest mean probability, the same at any threshold);
- 06 (negation): the IoUs of the "X", "not X" and "everything except X" masks;
- 08 (absent): "marks something", the map's maximum above the threshold, and the present
  objects' IoUs.

`results_at` gives a notebook's results as it would have recorded them at another threshold, so
the verdict rules (`verdicts`) and `conclusion.build_claims` read either unchanged.
`compare_verdicts` judges every claim at both thresholds (Holm's correction over each
threshold's tests, as a run at that threshold would) and `flip_sentence` says which verdicts
flip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from clipseg_lib.analysis.plotting import format_table
from clipseg_lib.experiments.conclusion import CLAIMS, build_claims

COMPARED = (0.3, 0.5)
"""The thresholds whose verdicts are compared: CLIPSeg's authors' and `mini`'s."""
AT_THRESHOLD = "at_threshold"
"""The results key holding the results at the other thresholds, by `threshold_key`."""
UNCOMPARED = ("not measured",)
"""A verdict that says nothing about the numbers: a claim with it at either threshold is not
compared."""


def threshold_key(threshold: float) -> str:
    """How a threshold names its results: ``"0.3"``, ``"0.5"``."""
    return f"{float(threshold):g}"


def compared_thresholds(threshold: float) -> tuple[float, ...]:
    """`threshold` (the study's) first, then each of `COMPARED` that differs from it."""
    return (threshold, *(t for t in COMPARED if threshold_key(t) != threshold_key(threshold)))


def recorded(by_threshold: Mapping[float, Mapping[str, Any]], threshold: float
             ) -> dict[str, Any]:
    """The results at `threshold` (the study's) with the results at every other threshold of
    `by_threshold` under `AT_THRESHOLD`, keyed by `threshold_key`."""
    if threshold not in by_threshold:
        raise ValueError(f"no results at the study's threshold {threshold} among "
                         f"{sorted(by_threshold)}")
    others = {threshold_key(t): dict(results) for t, results in by_threshold.items()
              if threshold_key(t) != threshold_key(threshold)}
    return {**by_threshold[threshold], **({AT_THRESHOLD: others} if others else {})}


def results_at(results: Mapping[str, Any], threshold: float, own_threshold: float
               ) -> dict[str, Any] | None:
    """A notebook's `results` (recorded at `own_threshold`) as at `threshold`: the keys recorded
    under ``results["at_threshold"][threshold_key(threshold)]`` replace their own; None when
    that threshold was not recorded."""
    if threshold_key(threshold) == threshold_key(own_threshold):
        other: Mapping[str, Any] | None = {}
    else:
        other = (results.get(AT_THRESHOLD) or {}).get(threshold_key(threshold))
    if other is None:
        return None
    return {key: value for key, value in {**results, **other}.items() if key != AT_THRESHOLD}


def loaded_at(loaded: Mapping[str, Mapping[str, Any]], threshold: float
              ) -> tuple[dict[str, Mapping[str, Any]], list[str]]:
    """(`loaded` with every claim's results as at `threshold`, the claims' notebooks that
    recorded nothing at it). Other results files are kept as they are: they only take part in
    the configuration check."""
    claim_notebooks = {claim.notebook for claim in CLAIMS}
    at_threshold, missing = {}, []
    for name, payload in loaded.items():
        parameters = payload.get("parameters")
        if name not in claim_notebooks or not isinstance(parameters, Mapping):
            at_threshold[name] = payload  # not a claim's, or refused by the configuration check
            continue
        own = parameters.get("threshold")
        results = None if own is None else results_at(payload.get("results") or {}, threshold,
                                                      own)
        if results is None:
            missing.append(name)
        else:
            at_threshold[name] = {**payload, "results": results}
    return at_threshold, missing


def compare_verdicts(loaded: Mapping[str, Mapping[str, Any]], *, model: str | None = None,
                     thresholds: Sequence[float] = COMPARED) -> list[dict[str, Any]]:
    """Per claim of `CLAIMS`: ``{"claim", "notebook", "verdicts": {"0.3": ..., "0.5": ...},
    "reasons": {...}, "flips"}``, each claim judged by `conclusion.build_claims` on the results
    as at each threshold (`loaded` is `results.load_results(output_dir)`, as for
    `build_claims`). ``flips`` is True when the verdicts differ and none is `UNCOMPARED`."""
    by_threshold = {}
    for threshold in thresholds:
        at_threshold, missing = loaded_at(loaded, threshold)
        claims = build_claims(at_threshold, model=model)
        for claim in claims:
            if claim["notebook"] in missing:
                claim["reason"] = (f"{claim['notebook']}.json records no results at "
                                   f"t = {threshold_key(threshold)}")
        by_threshold[threshold_key(threshold)] = claims
    rows = []
    for index, claim in enumerate(CLAIMS):
        verdicts = {key: claims[index]["verdict"] for key, claims in by_threshold.items()}
        rows.append({
            "claim": claim.claim, "notebook": claim.notebook, "verdicts": verdicts,
            "reasons": {key: claims[index]["reason"] for key, claims in by_threshold.items()},
            "flips": len(set(verdicts.values())) > 1
            and not set(verdicts.values()) & set(UNCOMPARED),
        })
    return rows


def flip_sentence(comparison: Sequence[Mapping[str, Any]]) -> str:
    """"Verdicts at t = 0.3 and t = 0.5: no verdict flips." or the claims that flip, with
    their verdict at each threshold; the claims not compared (not measured at a threshold)
    are named after."""
    if not comparison:
        raise ValueError("comparison is empty: build it with compare_verdicts")
    keys = list(comparison[0]["verdicts"])
    head = f"Verdicts at {' and '.join(f't = {key}' for key in keys)}"
    flipped = [row for row in comparison if row["flips"]]
    uncompared = [row["claim"] for row in comparison
                  if set(row["verdicts"].values()) & set(UNCOMPARED)]
    compared = len(comparison) - len(uncompared)
    if flipped:
        listed = "; ".join(
            f"{row['claim']} ({', '.join(f'{k}: {v}' for k, v in row['verdicts'].items())})"
            for row in flipped)
        sentence = f"{head}: {len(flipped)} of {compared} compared claims flip: {listed}."
    elif compared:
        sentence = f"{head}: no verdict flips ({compared} claims compared)."
    else:
        sentence = f"{head}: no claim was measured at both."
    if uncompared and compared:
        sentence += (f" Not compared (not measured at both thresholds): "
                     f"{', '.join(uncompared)}.")
    return sentence


def comparison_table(comparison: Sequence[Mapping[str, Any]]) -> str:
    """A row per claim: its verdict at each threshold, and whether it flips."""
    if not comparison:
        raise ValueError("comparison is empty: build it with compare_verdicts")
    return format_table([
        {"Claim": row["claim"], **{f"t = {key}": verdict for key, verdict in
                                   row["verdicts"].items()},
         "Flips": "yes" if row["flips"] else "no"}
        for row in comparison
    ])
