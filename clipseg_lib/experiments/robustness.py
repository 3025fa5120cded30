"""What the robustness notebooks share: distorted images (02), distorted image prompts (03) and
masks read from other extract layers (04).

The notebooks hold the loops (encode once, distort, predict, score); this module holds the
case selection, the sweep's cells, the results rows the conclusion reads and the sentences
that depend on the numbers. A sweep's per-case scores live in `empty_scores`' dict:
``{(distortion, severity): {"iou_gt": [...], "iou_vs_clean": [...]}}``; "iou_vs_clean"
compares a mask with the one predicted from the undistorted input (the poster's measure),
"iou_gt" with the ground truth. For a geometric distortion both references are moved with
the image (`distortions.distort_mask`), so the numbers measure change, not misalignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from clipseg_lib import world
from clipseg_lib.analysis.distortions import DISTORTIONS, MAX_SEVERITY, distort, distort_mask
from clipseg_lib.analysis.stats import Estimate, mean_ci, paired_difference_ci
from clipseg_lib.experiments.inputs import Question, image_numbers, question_support
from clipseg_lib.model.prompts import DEFAULT_ENGINEERING, ImagePrompt
from clipseg_lib.model.segmenter import Segmenter

DEFAULT_SEVERITIES = (0, 1, 2, 3, 5)
METRICS = ("iou_gt", "iou_vs_clean")
WORLD_KINDS = ("composite", "referring")
#: Kinds of the extract-layer table's prompt columns: four different questions.
LAYER_PROMPT_KINDS = ("composite", "referring", "category", "attribute")
POSTER_TRIPLES = ((3, 5, 8), (2, 4, 7), (4, 5, 6), (3, 6, 9), (5, 7, 8))
#: The poster's reference; also what the original repository's training config
#: (timojl/clipseg experiments/phrasecut.yaml, rd64-uni-refined) sets.
PAPER_REFERENCE = (3, 7, 9)
#: What transformers' config of the released weights (CIDAS/clipseg-rd64-refined) sets.
RELEASED_CONFIG_LAYERS = (3, 6, 9)
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
    cells = sweep_cells(distortions, severities)
    if n_cases < 1:
        raise ValueError(f"n_cases ({n_cases}) must be at least 1")
    candidates = world.make_queries("image", _CANDIDATES_PER_CASE * n_cases, seed=seed, size=size)
    kept = [query for query in candidates
            if all(distort_mask(query.support_mask, name, level).any() for name, level in cells)]
    if len(kept) < n_cases:
        raise ValueError(f"only {len(kept)} of {len(candidates)} one-shot queries keep their "
                         f"support object in view; ask for fewer than n_cases={n_cases}")
    return kept[:n_cases]


def distorted_prompt(
    question: Question, name: str, level: int, *, seed: int,
    engineering: str = DEFAULT_ENGINEERING, scale: str = "ssim",
) -> ImagePrompt:
    """The image prompt of a one-shot question with its support image and mask distorted
    (severity `level` on `scale`, see `distortions.severity_parameters`)."""
    support_image, support_mask = question_support(question)
    mask = distort_mask(support_mask, name, level, seed=seed)
    if not mask.any():
        raise ValueError(f"{question.prompt!r}: the support object leaves the image under {name} "
                         f"severity {level}; choose cases with one_shot_queries")
    return ImagePrompt(distort(support_image, name, level, seed=seed, scale=scale), mask,
                       engineering)


def sweep_cells(distortions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    """Every (distortion, severity) of a sweep, severity 0 (the clean input) always included,
    severities sorted; a ValueError names an unknown distortion or a bad severity."""
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
    levels = sorted({0, *(int(level) for level in severities)})
    return [(name, level) for name in dict.fromkeys(distortions) for level in levels]


def empty_scores(
    distortions: Sequence[str], severities: Sequence[int]
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Per-case score lists to fill, one per `sweep_cells` cell and metric of `METRICS`."""
    cells = sweep_cells(distortions, severities)
    return {cell: {metric: [] for metric in METRICS} for cell in cells}


def add_scores(
    scores: dict[tuple[str, int], dict[str, list[float]]],
    case_scores: dict[tuple[str, int], dict[str, list[float]]],
) -> None:
    """Append one case's scores (an `empty_scores` filled for that case alone) to `scores`."""
    for cell, metrics in case_scores.items():
        for metric, values in metrics.items():
            scores[cell][metric].extend(values)


def case_images(questions: Sequence[Question]) -> dict[str, list[int]]:
    """Per metric of `METRICS`, the image number (`inputs.image_numbers`) of each case it
    scores, for `questions` in the order their scores were appended ("iou_gt": only those
    with a ground truth)."""
    return {"iou_gt": image_numbers(questions, with_truth=True),
            "iou_vs_clean": image_numbers(questions)}


def sweep_rows(scores: Mapping[tuple[str, int], Mapping[str, Sequence[float]]], *,
               seed: int = 0, questions: Sequence[Question] | None = None) -> list[dict]:
    """The results' "sweep": a row per cell, ``{"distortion", "severity", "iou_gt",
    "iou_vs_clean", "per_case"}`` where each metric is `stats.mean_ci`'s Estimate as a dict
    (None when no case has that reference) and "per_case" keeps the values it came from.

    ``questions`` (in the order the scores were appended) adds "images" (`case_images`): the
    prompts of one image are then resampled together, in these intervals and in every paired
    interval read from the rows."""
    images = None if questions is None else case_images(questions)
    rows = []
    for (name, level), values in scores.items():
        row = {"distortion": name, "severity": level}
        for metric in METRICS:
            clusters = None if images is None else images[metric]
            if clusters is not None and len(clusters) != len(values[metric]):
                raise ValueError(f"{len(values[metric])} {metric} scores in {name} severity "
                                 f"{level} for {len(clusters)} questions")
            row[metric] = (mean_ci(values[metric], seed=seed, clusters=clusters).as_dict()
                           if values[metric] else None)
        row["per_case"] = {metric: list(values[metric]) for metric in METRICS}
        rows.append(row if images is None else row | {"images": images})
    return rows


def row_images(row: Mapping, metric: str) -> list[int] | None:
    """The image number of each of a sweep row's per-case values of ``metric``, or None when
    the row does not keep them (each case then its own image)."""
    return (row.get("images") or {}).get(metric)


def severity_table(sweep: Sequence[Mapping], metric: str) -> list[dict]:
    """Rows of one metric of a sweep: a row per distortion, a column per severity, each cell
    an Estimate dict (plotting.format_table prints mean [interval] n)."""
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} must be one of {METRICS}")
    table: dict[str, dict] = {}
    for row in sweep:
        table.setdefault(row["distortion"], {"distortion": row["distortion"]})
        table[row["distortion"]][f"severity {row['severity']}"] = row[metric]
    return list(table.values())


def distortion_finding(sweep: Sequence[Mapping], *, what: str = "input image",
                       seed: int = 0) -> str:
    """Sentences on slight (severity 1) distortion of `what`, judged per distortion: which
    distortions lower the IoU with the ground truth (paired bootstrap interval of the
    per-case change from the clean input below 0), and how far the masks move from the clean
    ones (interval of the IoU with the clean prediction)."""
    cells = {(row["distortion"], row["severity"]): row for row in sweep}
    names = list(dict.fromkeys(row["distortion"] for row in sweep))
    if any((name, 1) not in cells for name in names):
        raise ValueError("distortion_finding needs severity 1 in the sweep")
    clean = cells[names[0], 0]
    if clean["iou_gt"] is None:
        truth = "no case has a ground truth"
    else:
        changes = {name: paired_difference_ci(cells[name, 1]["per_case"]["iou_gt"],
                                              clean["per_case"]["iou_gt"], seed=seed,
                                              clusters=row_images(clean, "iou_gt"))
                   for name in names}
        lower = [name for name in names if changes[name].ci_high < 0]
        listed = "; ".join(f"{name} {changes[name]}" for name in lower)
        truth = (f"from the clean {what}'s IoU with the ground truth, "
                 f"{_estimate(clean['iou_gt'])}, "
                 + (f"slight distortion lowers it for {_join(lower)} (change {listed}) and "
                    f"not detectably for the others" if lower
                    else "no slight distortion lowers it detectably (paired intervals)"))
    slight = {name: cells[name, 1] for name in names}
    changed = min(names, key=lambda name: slight[name]["iou_vs_clean"]["mean"])
    stable = [name for name in names if slight[name]["iou_vs_clean"]["ci_low"] >= 0.9]
    return (
        f"At severity 1, {truth}. The masks stay close to the clean ones (interval of the IoU "
        f"with the clean prediction above 0.9) for {_join(stable) if stable else 'no distortion'}; "
        f"{changed} moves them most ({_estimate(slight[changed]['iou_vs_clean'])})."
    )


def engineering_finding(per_case: Mapping[str, Sequence[float]], *, seed: int = 0) -> str:
    """What cropping and background dimming do to one-shot mIoU on clean supports, judged on
    paired bootstrap intervals of the difference over the same cases (variants "none",
    "crop", "blur_highlight", "crop_blur_highlight" where present)."""
    effects = []
    for change, after, before in (("cropping to the object", "crop", "none"),
                                  ("dimming the background", "blur_highlight", "none"),
                                  ("dimming the background of a crop", "crop_blur_highlight",
                                   "crop")):
        if after in per_case and before in per_case:
            difference = paired_difference_ci(per_case[after], per_case[before], seed=seed)
            verdict = ("raises" if difference.ci_low > 0 else "lowers" if difference.ci_high < 0
                       else "does not detectably change")
            effects.append(f"{change} {verdict} the mIoU ({after} - {before}: {difference})")
    if not effects:
        raise ValueError(f"engineering_finding needs the 'none' and 'crop' variants, "
                         f"got {list(per_case)}")
    return "On clean supports, " + "; ".join(effects) + "."


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
    return f"({','.join(str(layer) for layer in layers)})"


def prompt_table(ious: Mapping[tuple[int, ...], Sequence[float]], n_prompts: int) -> list[dict]:
    """The poster's table: a row per triple, a column "Prompt k" per one of the first
    `n_prompts` cases, from per-case IoUs (triple -> values in case order)."""
    return [{"extract_layers": layer_label(layers)}
            | {f"Prompt {i + 1}": float(values[i]) for i in range(min(n_prompts, len(values)))}
            for layers, values in ious.items()]


def _measure_images(questions: Sequence[Question] | None, measure: str) -> list[int] | None:
    """Image numbers of a measure's cases: those with a ground truth for "iou_gt", else all."""
    if questions is None:
        return None
    return image_numbers(questions, with_truth=measure == "iou_gt")


def mean_table(ious: Mapping[tuple[int, ...], Mapping[str, Sequence[float]]], *,
               seed: int = 0, questions: Sequence[Question] | None = None) -> list[dict]:
    """A row per triple, a column per measure: `mean_ci` Estimate dicts (None without values).
    ``questions`` (in the order the values were appended) resamples the prompts of one image
    together."""
    return [{"extract_layers": layer_label(layers)}
            | {measure: mean_ci(values, seed=seed,
                                clusters=_measure_images(questions, measure)).as_dict()
               if len(values) else None
               for measure, values in measures.items()}
            for layers, measures in ious.items()]


def extract_layer_finding(rows: Sequence[Mapping], *, reference: Sequence[int],
                          measure: str) -> str:
    """One sentence: which triples give masks closest to and farthest from `reference`'s,
    from `mean_table` rows and their `measure` column."""
    others = [row for row in rows if row["extract_layers"] != layer_label(reference)]
    closest = max(others, key=lambda row: row[measure]["mean"])
    farthest = min(others, key=lambda row: row[measure]["mean"])
    return (f"Against {layer_label(reference)}, the masks are closest when the decoder reads "
            f"{closest['extract_layers']} ({_estimate(closest[measure])}) and farthest when it "
            f"reads {farthest['extract_layers']} ({_estimate(farthest[measure])}).")


def released_layers_finding(ious: Mapping[tuple[int, ...], Mapping[str, Sequence[float]]], *,
                            model: str, trained_layers: Sequence[int], seed: int = 0,
                            questions: Sequence[Question] | None = None) -> str:
    """One sentence on which triple a decoder expects, (3, 6, 9) (transformers' config of the
    released weights) or (3, 7, 9) (the original repository's training config), judged on the
    paired interval of the per-case difference of their IoU with the ground truth
    (`ious[layers]["iou_gt"]`, the same cases in the same order; ``questions`` as in
    `mean_table`)."""
    released, original = tuple(RELEASED_CONFIG_LAYERS), tuple(PAPER_REFERENCE)
    sources = (f"transformers' config of the released weights (CIDAS/clipseg-rd64-refined) says "
               f"{layer_label(released)}, the original repository's training config "
               f"(experiments/phrasecut.yaml) says {layer_label(original)}")
    if not all(len(ious.get(layers, {}).get("iou_gt", ())) for layers in (released, original)):
        return f"{sources}; without both readings and a ground truth these cases cannot tell."
    clusters = _measure_images(questions, "iou_gt")
    first, second = (mean_ci(ious[layers]["iou_gt"], seed=seed, clusters=clusters)
                     for layers in (released, original))
    difference = paired_difference_ci(ious[released]["iou_gt"], ious[original]["iou_gt"],
                                      seed=seed, clusters=clusters)
    if difference.ci_low > 0 or difference.ci_high < 0:
        preferred = released if difference.mean > 0 else original
        judgement = f"the ground truth prefers {layer_label(preferred)}"
    else:
        judgement = "the paired interval holds 0, so these cases cannot tell the two apart"
    return (
        f"{sources}; {model}'s decoder, configured for {layer_label(trained_layers)}, reaches IoU "
        f"with the ground truth {first} reading {layer_label(released)} and {second} reading "
        f"{layer_label(original)}, a paired difference of {difference}: {judgement}."
    )


def _estimate(value: Mapping | None) -> Estimate | None:
    return None if value is None else Estimate(**value)


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
