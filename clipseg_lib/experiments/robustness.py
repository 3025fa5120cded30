"""The poster's robustness experiments: distorted input images, distorted image prompts, and
masks read from other extract layers.

Cases are world queries (exact ground truth) and, for a full-size CLIPSeg, real-photo
`cases.Case`s (ground truth where the cases file gives a mask). Each image is encoded once
and all its prompts are decoded from that encoding; a distorted image is a new image,
encoded once for all its prompts. A probability map becomes a mask where it exceeds
`threshold` (0.5). "iou_vs_clean" compares a mask with the one predicted from the
undistorted input (what the poster measured) and "iou_gt" with the ground truth; for a
geometric distortion both references are moved with the image (`distortions.distort_mask`),
so the numbers measure change, not misalignment. Figures: `robustness_figures`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipseg_lib import world
from clipseg_lib.analysis.distortions import DISTORTIONS, MAX_SEVERITY, distort, distort_mask
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.experiments import cases
from clipseg_lib.model.prompts import DEFAULT_ENGINEERING, ImagePrompt
from clipseg_lib.model.segmenter import Segmenter

Question = world.Query | cases.Case

DEFAULT_SEVERITIES = (0, 1, 2, 3, 5)
WORLD_KINDS = ("composite", "referring")
#: Kinds of the extract-layer table's prompt columns: four different questions.
LAYER_PROMPT_KINDS = ("composite", "referring", "category", "attribute")
POSTER_TRIPLES = ((3, 5, 8), (2, 4, 7), (4, 5, 6), (3, 6, 9), (5, 7, 8))
#: The extract layers of the paper; transformers' CLIPSeg config defaults to (3, 6, 9).
PAPER_REFERENCE = (3, 7, 9)
_CANDIDATES_PER_CASE = 6


def world_queries(
    n_cases: int, *, seed: int, kinds: Sequence[str] = WORLD_KINDS, size: int = 96
) -> list[world.Query]:
    """`n_cases` test-split world queries; query i is of kind `kinds[i % len(kinds)]`."""
    if n_cases < 1 or not kinds:
        raise ValueError(f"n_cases ({n_cases}) must be at least 1 and kinds ({kinds}) non-empty")
    count = -(-n_cases // len(kinds))
    per_kind = {kind: world.make_queries(kind, count, seed=seed, size=size) for kind in kinds}
    return [per_kind[kinds[i % len(kinds)]][i // len(kinds)] for i in range(n_cases)]


def one_shot_queries(
    n_cases: int,
    *,
    seed: int,
    distortions: Sequence[str] = DISTORTIONS,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    size: int = 96,
) -> list[world.Query]:
    """`n_cases` world image-prompt queries whose support object stays in view (a non-empty
    `distort_mask`) under every distortion and severity asked for."""
    severities = _check_sweep(distortions, severities)
    if n_cases < 1:
        raise ValueError(f"n_cases ({n_cases}) must be at least 1")
    candidates = world.make_queries("image", _CANDIDATES_PER_CASE * n_cases, seed=seed, size=size)
    kept = [query for query in candidates if all(
        distort_mask(query.support_mask, name, level).any()
        for name in distortions for level in severities
    )][:n_cases]
    if len(kept) < n_cases:
        raise ValueError(f"only {len(kept)} of {len(candidates)} one-shot queries keep their "
                         f"support object in view; ask for fewer than n_cases={n_cases}")
    return kept


def question_image(question: Question) -> np.ndarray:
    """The (H, W, 3) uint8 image a world query or photo case asks about."""
    return question.scene.image if isinstance(question, world.Query) else question.image


def question_target(question: Question) -> np.ndarray | None:
    """The (H, W) bool ground truth, or None for a photo case without a mask."""
    return question.target if isinstance(question, world.Query) else question.mask


def question_support(question: Question) -> tuple[np.ndarray, np.ndarray]:
    """(support image (h, w, 3) uint8, support mask (h, w) bool) of a one-shot question: a
    world image query's support, or a masked photo case showing its own object."""
    if isinstance(question, world.Query):
        support = question.support_image, question.support_mask
    else:
        support = question.image, question.mask
    if support[1] is None:
        raise ValueError(f"{question.prompt!r} has no support image and mask for a one-shot prompt")
    return support


def distortion_sweep(
    segmenter: Segmenter,
    questions: Sequence[Question],
    *,
    distortions: Sequence[str] = DISTORTIONS,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    seed: int = 0,
    threshold: float = 0.5,
) -> dict:
    """Distort each input image, predict its prompts again, and score the masks.

    Image g (numbered in order of first appearance) is distorted with seed `seed + g`.
    Severity 0 (always included) is the identity and reuses the clean prediction. Returns
    {"rows": a row per (distortion, severity) with mean "iou_gt" and "iou_vs_clean",
    "summary": the contract's headline numbers, "n_cases"}.
    """
    severities = _check_sweep(distortions, severities)
    scores = _empty_scores(distortions, severities)
    for group, (image, indices) in enumerate(_group_by_image(questions)):
        members = [questions[i] for i in indices]
        prompts = [question.prompt for question in members]
        clean = segmenter.predict(segmenter.encode_image(image), prompts) > threshold
        for name in distortions:
            for level in severities:
                masks = clean if level == 0 else segmenter.predict(
                    segmenter.encode_image(distort(image, name, level, seed=seed + group)), prompts
                ) > threshold
                for question, mask, clean_mask in zip(members, masks, clean, strict=True):
                    target = question_target(question)
                    moved = None if target is None else distort_mask(target, name, level)
                    _record(scores[name, level], mask, distort_mask(clean_mask, name, level), moved)
    return _sweep_results(scores, len(questions))


def prompt_distortion_sweep(
    segmenter: Segmenter,
    questions: Sequence[Question],
    *,
    distortions: Sequence[str] = DISTORTIONS,
    severities: Sequence[int] = DEFAULT_SEVERITIES,
    seed: int = 0,
    threshold: float = 0.5,
    engineering: str = DEFAULT_ENGINEERING,
) -> dict:
    """Keep each query image clean and distort its support image (and mask) instead.

    World queries use their support image; a photo case with a mask is its own support.
    Question i's support is distorted with seed `seed + i`; its image is encoded once and every
    prompt variant decoded from that encoding. Returns the shape of `distortion_sweep`.
    """
    severities = _check_sweep(distortions, severities)
    scores = _empty_scores(distortions, severities)
    variants = [(name, level) for name in distortions for level in severities if level > 0]
    for index, question in enumerate(questions):
        prompts = [distorted_prompt(question, name, level, seed=seed + index,
                                    engineering=engineering)
                   for name, level in [(distortions[0], 0), *variants]]
        encoding = segmenter.encode_image(question_image(question))
        masks = segmenter.predict(encoding, prompts) > threshold
        by_variant = dict(zip(variants, masks[1:], strict=True))
        for name in distortions:
            for level in severities:
                mask = masks[0] if level == 0 else by_variant[name, level]
                _record(scores[name, level], mask, masks[0], question_target(question))
    return _sweep_results(scores, len(questions))


def distorted_prompt(
    question: Question, name: str, level: int, *, seed: int, engineering: str = DEFAULT_ENGINEERING
) -> ImagePrompt:
    """The image prompt of a one-shot question with its support image and mask distorted."""
    support_image, support_mask = question_support(question)
    mask = distort_mask(support_mask, name, level, seed=seed)
    if not mask.any():
        raise ValueError(f"{question.prompt!r}: the support object leaves the image under {name} "
                         f"severity {level}; choose cases with one_shot_queries")
    return ImagePrompt(distort(support_image, name, level, seed=seed), mask, engineering)


def engineering_comparison(
    segmenter: Segmenter,
    questions: Sequence[Question],
    *,
    engineerings: Sequence[str] = ("none", DEFAULT_ENGINEERING),
    threshold: float = 0.5,
) -> dict:
    """mIoU of one-shot questions with clean supports under each visual prompt engineering.

    Returns {"rows": [{"engineering", "miou"}], "n_cases"}; questions without ground truth
    are left out.
    """
    scored = [question for question in questions if question_target(question) is not None]
    if not scored or not engineerings:
        raise ValueError("engineering_comparison needs engineerings and questions with a target")
    values: dict[str, list[float]] = {name: [] for name in engineerings}
    for question in scored:
        prompts = [ImagePrompt(*question_support(question), name) for name in values]
        encoding = segmenter.encode_image(question_image(question))
        masks = segmenter.predict(encoding, prompts) > threshold
        for name, mask in zip(values, masks, strict=True):
            values[name].append(iou(mask, question_target(question)))
    rows = [{"engineering": name, "miou": float(np.mean(v))} for name, v in values.items()]
    return {"rows": rows, "n_cases": len(scored)}


def extract_layer_table(
    segmenter: Segmenter,
    questions: Sequence[Question],
    *,
    triples: Sequence[Sequence[int]] = POSTER_TRIPLES,
    reference: Sequence[int] = PAPER_REFERENCE,
    n_prompts: int = 4,
    threshold: float = 0.5,
) -> dict:
    """IoU between masks decoded from other extract layers and from `reference`.

    One backbone pass per image, deep enough for every triple. Returns {"rows": the poster's
    table (a row per triple, then the reference; a column "Prompt k" per one of the first
    `n_prompts` questions), "prompts": each column's prompt, "mean_rows": a row per triple
    with "iou_vs_reference" and "iou_gt" averaged over all questions, "summary", "reference",
    "trained_layers" (the layers the decoder was trained to read), "n_cases"}.
    """
    layer_sets = check_triples(segmenter, [*triples, reference])
    reference = layer_sets[-1]
    layer_sets = list(dict.fromkeys(layer_sets))
    if len(layer_sets) < 2 or n_prompts < 1:
        raise ValueError(f"triples {list(triples)} must hold one besides the reference "
                         f"{reference}, and n_prompts ({n_prompts}) must be at least 1")
    deepest = max(max(layers) for layers in layer_sets) + 1
    vs_reference = {layers: [float("nan")] * len(questions) for layers in layer_sets}
    vs_truth = {layers: [float("nan")] * len(questions) for layers in layer_sets}
    for image, indices in _group_by_image(questions):
        encoding = segmenter.encode_image(image, max_layer=deepest)
        prompts = [questions[i].prompt for i in indices]
        masks = {layers: segmenter.predict(encoding, prompts, extract_layers=layers) > threshold
                 for layers in layer_sets}
        for row, index in enumerate(indices):
            target = question_target(questions[index])
            for layers in layer_sets:
                vs_reference[layers][index] = iou(masks[layers][row], masks[reference][row])
                if target is not None:
                    vs_truth[layers][index] = iou(masks[layers][row], target)
    shown = range(min(n_prompts, len(questions)))
    rows = [{"extract_layers": layer_label(layers)}
            | {f"Prompt {i + 1}": vs_reference[layers][i] for i in shown} for layers in layer_sets]
    mean_rows = [{"extract_layers": layer_label(layers),
                  "iou_vs_reference": _mean(vs_reference[layers]),
                  "iou_gt": _mean(vs_truth[layers])} for layers in layer_sets]
    summary = {
        "mean_iou_vs_reference": {layer_key(key): _mean(vs_reference[key]) for key in layer_sets},
        "iou_gt": {layer_key(key): _mean(vs_truth[key]) for key in layer_sets},
    }
    prompts = [{"column": f"Prompt {i + 1}", "prompt": questions[i].prompt} for i in shown]
    return {"rows": rows, "prompts": prompts, "mean_rows": mean_rows,
            "summary": summary, "reference": layer_key(reference),
            "trained_layers": layer_key(segmenter.extract_layers), "n_cases": len(questions)}


def check_triples(segmenter: Segmenter, triples: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """The triples as int tuples, or a ValueError naming one the model cannot read: wrong
    length, or a layer outside 0..num_layers-1 (extract layer k is backbone layer k + 1)."""
    wanted, depth = len(segmenter.extract_layers), segmenter.num_layers
    checked = []
    for triple in triples:
        layers = tuple(triple)
        if len(layers) != wanted or not all(
            isinstance(layer, int | np.integer) and not isinstance(layer, bool)
            and 0 <= layer < depth for layer in layers
        ):
            raise ValueError(f"extract layers {layers}: need {wanted} integer layers in "
                             f"0..{depth - 1} ({segmenter.name} has {depth} backbone layers)")
        checked.append(tuple(int(layer) for layer in layers))
    return checked


def layer_label(layers: Sequence[int]) -> str:
    """How tables and figures name extract layers: "(3,7,9)"."""
    return f"({layer_key(layers)})"


def layer_key(layers: Sequence[int]) -> str:
    """How results files key extract layers: "3,7,9"."""
    return ",".join(str(layer) for layer in layers)


def severity_table(results: dict, metric: str) -> list[dict]:
    """Rows of one metric ("iou_gt" or "iou_vs_clean"): a row per distortion plus their mean,
    a column per severity."""
    if metric not in ("iou_gt", "iou_vs_clean"):
        raise ValueError(f"metric {metric!r} must be 'iou_gt' or 'iou_vs_clean'")
    table: dict[str, dict] = {}
    for row in results["rows"]:
        table.setdefault(row["distortion"], {"distortion": row["distortion"]})
        table[row["distortion"]][f"severity {row['severity']}"] = row[metric]
    columns = [key for key in next(iter(table.values())) if key != "distortion"]
    mean = {"distortion": "mean"} | {
        column: _mean([row[column] for row in table.values()]) for column in columns
    }
    return [*table.values(), mean]


def distortion_finding(results: dict, *, what: str = "input image") -> str:
    """One sentence: what slight (severity 1) and strong (5) distortion of `what` cost."""
    summary = results["summary"]
    clean, slight = summary["iou_gt_clean"], summary["iou_gt_severity1"]
    strongest = max(row["severity"] for row in results["rows"])
    worst = min((row for row in results["rows"] if row["severity"] == strongest),
                key=lambda row: row["iou_vs_clean"])
    return (
        f"A slightly distorted {what} (severity 1) moves the mean IoU with the ground truth "
        f"from {clean:.3f} to {slight:.3f} ({slight - clean:+.3f}), and its masks overlap the "
        f"clean ones with IoU {summary['iou_vs_clean_severity1']:.3f}; at severity 5 these are "
        f"{summary['iou_gt_severity5']:.3f} and {summary['iou_vs_clean_severity5']:.3f}, and "
        f"{worst['distortion']} at severity {strongest} changes the masks most (IoU with the "
        f"clean masks {worst['iou_vs_clean']:.3f})."
    )


def engineering_finding(comparison: dict) -> str:
    """One sentence ranking the visual prompt engineering variants on clean supports."""
    ranked = sorted(comparison["rows"], key=lambda row: row["miou"], reverse=True)
    best, worst = ranked[0], ranked[-1]
    if round(best["miou"], 3) == round(worst["miou"], 3):
        return (f"On clean supports, every engineering variant gives the same mIoU to three "
                f"decimals ({best['miou']:.3f}): the support's presentation does not matter here.")
    return (
        f"On clean supports, engineering {best['engineering']!r} gives the best mIoU "
        f"({best['miou']:.3f}) and {worst['engineering']!r} the worst ({worst['miou']:.3f})."
    )


def extract_layer_finding(results: dict) -> str:
    """One sentence: which triples reproduce the reference masks, and which fit the truth."""
    closeness, truth = results["summary"]["mean_iou_vs_reference"], results["summary"]["iou_gt"]
    others = [key for key in closeness if key != results["reference"]]
    closest, farthest = max(others, key=closeness.get), min(others, key=closeness.get)
    scored = {key: value for key, value in truth.items() if not np.isnan(value)}
    if not scored:
        fit = "no case has a ground-truth mask"
    elif len({round(value, 3) for value in scored.values()}) == 1:
        fit = f"every triple fits the ground truth equally (IoU {next(iter(scored.values())):.3f})"
    else:
        best = max(scored, key=scored.get)
        fit = f"({best}) fits the ground truth best (IoU {scored[best]:.3f})"
    return (
        f"Over {results['n_cases']} cases, the decoder (trained on layers "
        f"({results['trained_layers']})) gives masks closest to those of the reference "
        f"({results['reference']}) when it reads ({closest}) (mean IoU {closeness[closest]:.3f}) "
        f"and farthest when it reads ({farthest}) ({closeness[farthest]:.3f}); {fit}."
    )


def _check_sweep(distortions: Sequence[str], severities: Sequence[int]) -> tuple[int, ...]:
    """Validate the sweep's axes; return the severities sorted, deduplicated and with 0 (the
    clean input, every sweep's baseline) included."""
    unknown = [name for name in distortions if name not in DISTORTIONS]
    if unknown or not distortions:
        raise ValueError(f"distortions {list(distortions)}: unknown {unknown} or none given; "
                         f"choose from {DISTORTIONS}")
    bad = [level for level in severities
           if isinstance(level, bool) or not isinstance(level, int | np.integer)
           or not 0 <= level <= MAX_SEVERITY]
    if bad or not severities:
        raise ValueError(f"severities {list(severities)}: each must be an integer in "
                         f"0..{MAX_SEVERITY} (bad: {bad})")
    return tuple(sorted({0, *(int(level) for level in severities)}))


def _group_by_image(questions: Sequence[Question]) -> list[tuple[np.ndarray, list[int]]]:
    """(image, indices of its questions) in order of first appearance: one encoding each."""
    if not questions:
        raise ValueError("questions is empty: give at least one query or case")
    groups: dict[int, tuple[np.ndarray, list[int]]] = {}
    for index, question in enumerate(questions):
        image = question_image(question)
        groups.setdefault(id(image), (image, []))[1].append(index)
    return list(groups.values())


def _empty_scores(distortions, severities) -> dict[tuple[str, int], dict[str, list[float]]]:
    return {(name, level): {"iou_gt": [], "iou_vs_clean": []}
            for name in distortions for level in severities}


def _record(scores: dict[str, list[float]], mask, clean_mask, target) -> None:
    scores["iou_vs_clean"].append(iou(mask, clean_mask))
    if target is not None:
        scores["iou_gt"].append(iou(mask, target))


def _mean(values: Sequence[float]) -> float:
    values = [value for value in values if not np.isnan(value)]
    return float(np.mean(values)) if values else float("nan")


def _sweep_results(scores: dict, n_cases: int) -> dict:
    rows = [{"distortion": name, "severity": level, "iou_gt": _mean(values["iou_gt"]),
             "iou_vs_clean": _mean(values["iou_vs_clean"])}
            for (name, level), values in scores.items()]

    def at(metric: str, level: int) -> float:
        return _mean([row[metric] for row in rows if row["severity"] == level])

    summary = {"iou_gt_clean": at("iou_gt", 0), "iou_gt_severity1": at("iou_gt", 1),
               "iou_gt_severity5": at("iou_gt", 5),
               "iou_vs_clean_severity1": at("iou_vs_clean", 1),
               "iou_vs_clean_severity5": at("iou_vs_clean", 5)}
    return {"rows": rows, "summary": summary, "n_cases": n_cases}
