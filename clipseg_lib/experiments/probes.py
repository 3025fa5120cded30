"""The poster's failure-mode probes on the synthetic world: a specific word, negation, facial
expressions and absent objects.

Every probe encodes each scene once and asks all of that scene's prompts from the encoding.
A probe returns a JSON-ready dict::

    {"summary": {headline name: float}, "rows": [table rows], "cases": [one record per query]}

A prediction becomes a mask where probability > `threshold` (default 0.5). "Which object did
the model pick" is the candidate (sign or face) with the highest mean probability over its
visible pixels; a tie at the top between k candidates counts 1/k for each, so a model that
answers nothing scores chance, not the luck of the object order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipseg_lib import world
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, auroc, iou, presence_score
from clipseg_lib.experiments.mitigations import balanced_accuracy, calibrate_presence_threshold
from clipseg_lib.mini.evaluation import predict_queries
from clipseg_lib.model.segmenter import Segmenter

#: Prompt forms of the negation probe, formatted with the excluded composite's colour and shape.
NEGATION_FORMS = {
    "X": "the {c} {s}",
    "not X": "not the {c} {s}",
    "everything except X": "everything except the {c} {s}",
}


def check_queries(queries: Sequence[world.Query], kind: str, name: str) -> list[world.Query]:
    """`queries` as a list, or ValueError naming `name` when it is empty or holds another kind."""
    queries = list(queries)
    if not queries:
        raise ValueError(f"{name} is empty: give at least one {kind!r} query")
    wrong = sorted({q.kind for q in queries if q.kind != kind})
    if wrong:
        raise ValueError(f"{name} must hold {kind!r} queries only, got kinds {wrong}")
    return queries


def check_threshold(threshold: float) -> None:
    """ValueError unless 0 <= threshold <= 1."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def candidate_choice(
    probs: np.ndarray, masks: Sequence[np.ndarray], target: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mean probability per candidate, share of the pick per candidate) for one map.

    `probs` (H, W) float in [0, 1]; `masks` the candidates' (H, W) bool masks; `target` the
    index of the asked candidate (only checked). The share is 1 for the unique top candidate,
    1/k for each of k tied at the top, 0 elsewhere; it sums to 1.
    """
    if not masks:
        raise ValueError("masks is empty: a choice needs at least one candidate")
    if not 0 <= target < len(masks):
        raise ValueError(f"target {target} is not a candidate index in 0..{len(masks) - 1}")
    means = np.array([float(probs[mask].mean()) if mask.any() else 0.0 for mask in masks])
    top = means == means.max()
    return means, top / top.sum()


def _choice_cases(
    segmenter: Segmenter, queries: list[world.Query], object_kind: str, threshold: float
) -> list[dict]:
    """One record per word/expression query: IoU, the pick among candidates and the IoU of the
    prediction with the union of all candidates (does it find signs/faces at all?)."""
    records = []
    for query, probs in zip(queries, predict_queries(segmenter, queries), strict=True):
        candidates = [i for i, o in enumerate(query.scene.objects) if o.kind == object_kind]
        asked = candidates.index(query.target_indices[0])
        masks = [query.scene.object_mask(i) for i in candidates]
        means, share = candidate_choice(probs, masks, asked)
        names = [query.scene.objects[i].name for i in candidates]
        records.append({
            "prompt": query.prompt,
            "asked": names[asked],
            "chosen": names[int(np.argmax(means))],
            "shares": dict(zip(names, share.tolist(), strict=True)),
            "n_candidates": len(candidates),
            "iou": iou(probs > threshold, query.target),
            "iou_all_candidates": iou(probs > threshold, query.scene.union_mask(candidates)),
            "hit": float(share[asked]),
        })
    return records


def _choice_summary(records: list[dict]) -> dict[str, float]:
    return {
        "miou": float(np.mean([r["iou"] for r in records])),
        "hit_rate": float(np.mean([r["hit"] for r in records])),
        "chance": float(np.mean([1.0 / r["n_candidates"] for r in records])),
        "miou_all_candidates": float(np.mean([r["iou_all_candidates"] for r in records])),
    }


def _control_miou(segmenter: Segmenter, queries: list[world.Query], threshold: float) -> float:
    probabilities = predict_queries(segmenter, queries)
    pairs = zip(probabilities, queries, strict=True)
    return float(np.mean([iou(p > threshold, q.target) for p, q in pairs]))


def word_probe(
    segmenter: Segmenter,
    queries: Sequence[world.Query],
    control_queries: Sequence[world.Query],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """Ask for one word among 2-4 signs ("the word CAT"); composite queries are the control.

    summary: miou (asked sign), hit_rate, chance, miou_all_signs (prediction vs every sign:
    text found in general), control_miou (composite queries).
    """
    queries = check_queries(queries, "word", "queries")
    control_queries = check_queries(control_queries, "composite", "control_queries")
    check_threshold(threshold)
    records = _choice_cases(segmenter, queries, "word", threshold)
    scores = _choice_summary(records)
    summary = {
        "miou": scores["miou"], "hit_rate": scores["hit_rate"], "chance": scores["chance"],
        "miou_all_signs": scores["miou_all_candidates"],
        "control_miou": _control_miou(segmenter, control_queries, threshold),
    }
    rows = [
        {"queries": "the word W (asked sign)", "n": len(queries), "mIoU": summary["miou"],
         "hit rate": summary["hit_rate"], "chance": summary["chance"]},
        {"queries": "the word W vs every sign", "n": len(queries),
         "mIoU": summary["miou_all_signs"]},
        {"queries": "composite (control)", "n": len(control_queries),
         "mIoU": summary["control_miou"]},
    ]
    return {"summary": summary, "rows": rows, "cases": records}


def expression_probe(
    segmenter: Segmenter, queries: Sequence[world.Query], *, threshold: float = DEFAULT_THRESHOLD
) -> dict:
    """Ask for one expression among 2-4 cartoon faces ("the smiling face").

    summary: miou, hit_rate, chance, miou_all_faces. rows: one per asked expression, then all.
    "confusion": {"labels": EXPRESSIONS, "counts": asked (rows) x chosen (columns)}, ties split.
    """
    queries = check_queries(queries, "expression", "queries")
    check_threshold(threshold)
    records = _choice_cases(segmenter, queries, "face", threshold)
    scores = _choice_summary(records)
    labels = list(world.EXPRESSIONS)
    counts = np.zeros((len(labels), len(labels)))
    for record in records:
        for name, share in record["shares"].items():
            counts[labels.index(record["asked"]), labels.index(name)] += share
    rows = []
    for expression in labels:
        asked = [r for r in records if r["asked"] == expression]
        if asked:
            rows.append({"expression": expression, "n": len(asked), **_choice_table(asked)})
    rows.append({"expression": "all", "n": len(records), **_choice_table(records)})
    summary = {
        "miou": scores["miou"], "hit_rate": scores["hit_rate"], "chance": scores["chance"],
        "miou_all_faces": scores["miou_all_candidates"],
    }
    return {
        "summary": summary, "rows": rows, "cases": records,
        "confusion": {"labels": labels, "counts": counts.tolist()},
    }


def _choice_table(records: list[dict]) -> dict[str, float]:
    scores = _choice_summary(records)
    return {"mIoU": scores["miou"], "hit rate": scores["hit_rate"], "chance": scores["chance"]}


def excluded_objects(query: world.Query) -> list[int]:
    """Indices of the objects a negation query excludes (X's objects): those not in its target."""
    if query.kind != "negation":
        raise ValueError(f"query {query.prompt!r} is a {query.kind!r} query, not a negation")
    return [i for i in range(len(query.scene.objects)) if i not in set(query.target_indices)]


def excluded_composite(query: world.Query) -> tuple[str, str]:
    """(colour, shape) of the composite X that a negation query excludes."""
    excluded = query.scene.objects[excluded_objects(query)[0]]
    return excluded.colour, excluded.name


def negation_probe(
    segmenter: Segmenter, queries: Sequence[world.Query], *, threshold: float = DEFAULT_THRESHOLD
) -> dict:
    """Ask "X", "not X" and "everything except X" of each negation scene (X a composite).

    Ground truths: X's objects for "X"; every other object (never background) for both
    negations. summary: miou_negation_gt ("not X"), miou_except_gt ("everything except X"),
    iou_not_x_vs_x and iou_except_vs_x (IoU of the thresholded masks), miou_x.
    """
    queries = check_queries(queries, "negation", "queries")
    check_threshold(threshold)
    records = []
    for query in queries:
        colour, shape = excluded_composite(query)
        prompts = [form.format(c=colour, s=shape) for form in NEGATION_FORMS.values()]
        masks = segmenter.predict(query.scene.image, prompts) > threshold
        x_mask, not_mask, except_mask = masks
        x_target = query.scene.union_mask(excluded_objects(query))
        records.append({
            "x": prompts[0],
            "iou_x": iou(x_mask, x_target),
            "iou_x_vs_negation_gt": iou(x_mask, query.target),
            "iou_not_x": iou(not_mask, query.target),
            "iou_except_x": iou(except_mask, query.target),
            "iou_not_x_vs_x": iou(not_mask, x_mask),
            "iou_except_vs_x": iou(except_mask, x_mask),
        })
    mean = {key: float(np.mean([r[key] for r in records])) for key in records[0] if key != "x"}
    summary = {
        "miou_negation_gt": mean["iou_not_x"], "miou_except_gt": mean["iou_except_x"],
        "iou_not_x_vs_x": mean["iou_not_x_vs_x"], "iou_except_vs_x": mean["iou_except_vs_x"],
        "miou_x": mean["iou_x"],
    }
    rows = [
        {"prompt": "X", "IoU vs X truth": mean["iou_x"],
         "IoU vs negation truth": mean["iou_x_vs_negation_gt"], "IoU vs X mask": 1.0},
        {"prompt": "not X", "IoU vs negation truth": mean["iou_not_x"],
         "IoU vs X mask": mean["iou_not_x_vs_x"]},
        {"prompt": "everything except X", "IoU vs negation truth": mean["iou_except_x"],
         "IoU vs X mask": mean["iou_except_vs_x"]},
    ]
    return {"summary": summary, "rows": rows, "cases": records}


def split_halves(count: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, evaluation) indices of `count` cases: even positions, odd positions."""
    if count < 2:
        raise ValueError(f"a calibration split needs at least 2 cases, got {count}")
    indices = np.arange(count)
    return indices[0::2], indices[1::2]


def absent_probe(
    segmenter: Segmenter,
    absent_queries: Sequence[world.Query],
    present_queries: Sequence[world.Query],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """Prompts for objects the scene lacks (empty truth) against composites that are there.

    summary: false_positive_area (mean fraction of pixels > threshold on absent prompts),
    presence_auroc (presence score = max probability, present = positive), calibrated_threshold
    (maximises balanced accuracy on the calibration halves of both sets, see `split_halves`),
    presence_accuracy (balanced accuracy of that threshold on the evaluation halves),
    present_miou. "cases" holds each query's presence score and area or IoU.
    """
    absent_queries = check_queries(absent_queries, "absent", "absent_queries")
    present_queries = check_queries(present_queries, "composite", "present_queries")
    check_threshold(threshold)
    absent_maps = predict_queries(segmenter, absent_queries)
    present_maps = predict_queries(segmenter, present_queries)
    absent_cases = [
        {"prompt": q.prompt, "present": False, "presence": presence_score(p),
         "area": float(np.mean(p > threshold))}
        for q, p in zip(absent_queries, absent_maps, strict=True)
    ]
    present_cases = [
        {"prompt": q.prompt, "present": True, "presence": presence_score(p),
         "iou": iou(p > threshold, q.target)}
        for q, p in zip(present_queries, present_maps, strict=True)
    ]
    calibration = _presence_split(absent_cases, present_cases, 0)
    evaluation = _presence_split(absent_cases, present_cases, 1)
    calibrated = calibrate_presence_threshold(*calibration)
    everything = _presence_split(absent_cases, present_cases, None)
    summary = {
        "false_positive_area": float(np.mean([c["area"] for c in absent_cases])),
        "presence_auroc": auroc(*everything),
        "calibrated_threshold": calibrated,
        "presence_accuracy": balanced_accuracy(*evaluation, calibrated),
        "present_miou": float(np.mean([c["iou"] for c in present_cases])),
    }
    rows = [
        {"prompts": "absent objects", "n": len(absent_cases),
         "area > 0.5": summary["false_positive_area"],
         "mean presence": float(np.mean([c["presence"] for c in absent_cases]))},
        {"prompts": "present composites", "n": len(present_cases), "mIoU": summary["present_miou"],
         "mean presence": float(np.mean([c["presence"] for c in present_cases]))},
    ]
    return {"summary": summary, "rows": rows, "cases": absent_cases + present_cases}


def _presence_split(
    absent_cases: list[dict], present_cases: list[dict], half: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of both sets, restricted to one half of `split_halves` unless None."""
    scores, labels = [], []
    for cases in (absent_cases, present_cases):
        chosen = range(len(cases)) if half is None else split_halves(len(cases))[half]
        scores += [cases[i]["presence"] for i in chosen]
        labels += [cases[i]["present"] for i in chosen]
    return np.array(scores), np.array(labels)


def word_finding(results: dict) -> str:
    """One sentence on the word probe, from `word_probe`'s results."""
    s = results["summary"]
    verdict = (
        "picks the asked word better than chance" if s["hit_rate"] > s["chance"] + 0.1
        else "does not pick the asked word better than chance"
    )
    return (
        f"Asked for one word among several signs, the model {verdict}: hit rate "
        f"{s['hit_rate']:.3f} vs chance {s['chance']:.3f}; mIoU {s['miou']:.3f} on the asked "
        f"sign, {s['miou_all_signs']:.3f} against all signs, and {s['control_miou']:.3f} on "
        f"composite prompts (control)."
    )


def expression_finding(results: dict) -> str:
    """One sentence on the facial-expression probe, from `expression_probe`'s results."""
    s = results["summary"]
    verdict = (
        "tells the asked expression apart better than chance"
        if s["hit_rate"] > s["chance"] + 0.1 else "does not tell expressions apart"
    )
    return (
        f"Among 2-4 faces, the model {verdict}: hit rate {s['hit_rate']:.3f} vs chance "
        f"{s['chance']:.3f}; mIoU {s['miou']:.3f} on the asked face, {s['miou_all_faces']:.3f} "
        f"against all faces."
    )


def negation_finding(results: dict) -> str:
    """One sentence on the negation probe, from `negation_probe`'s results."""
    s = results["summary"]
    verdict = (
        "mostly segments X itself" if s["iou_not_x_vs_x"] > 0.5
        else "changes the mask away from X"
    )
    return (
        f"Given \"not X\", the model {verdict}: IoU with the \"X\" mask {s['iou_not_x_vs_x']:.3f}, "
        f"mIoU against the negation's truth {s['miou_negation_gt']:.3f} (\"everything except "
        f"X\": {s['miou_except_gt']:.3f}), while \"X\" itself reaches {s['miou_x']:.3f}."
    )


def absent_finding(results: dict) -> str:
    """One sentence on the absent-object probe, from `absent_probe`'s results."""
    s = results["summary"]
    return (
        f"For absent objects the model marks {s['false_positive_area']:.3f} of the image on "
        f"average; the presence score separates absent from present prompts with AUROC "
        f"{s['presence_auroc']:.3f}, and a threshold of {s['calibrated_threshold']:.3f} "
        f"calibrated on half the cases reaches balanced accuracy {s['presence_accuracy']:.3f} "
        f"on the other half (present mIoU {s['present_miou']:.3f})."
    )
