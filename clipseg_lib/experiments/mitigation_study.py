"""Before/after measurements of the mitigations in `experiments.mitigations`, each on the
same world queries with and without the fix.

Each experiment returns {"before", "after", "metric", "rows"}; `combine` gathers them into
the notebook's results: {"summary": {name: {"before", "after", "metric"}}, "rows": [...]}.
A prediction becomes a mask where probability > `threshold` (default 0.5).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from clipseg_lib import world
from clipseg_lib.analysis.distortions import DISTORTIONS, MAX_SEVERITY, distort, distort_mask
from clipseg_lib.analysis.metrics import iou, presence_score
from clipseg_lib.analysis.plotting import PANEL_INCHES
from clipseg_lib.experiments.mitigations import (
    DEFAULT_FOREGROUND_PROMPTS,
    DEFAULT_TEMPLATES,
    DEFAULT_TRANSFORMS,
    Transform,
    average_views,
    calibrate_presence_threshold,
    ensemble_prompts,
    foreground_probs,
    gate_by_presence,
    negate_by_complement,
    predict_views,
    template_prompts,
)
from clipseg_lib.experiments.probes import (
    DEFAULT_THRESHOLD,
    NEGATION_FORMS,
    check_queries,
    check_threshold,
    excluded_composite,
    split_halves,
)
from clipseg_lib.mini.evaluation import predict_queries
from clipseg_lib.model.segmenter import Segmenter

TTA_DISTORTIONS = ("gaussian_noise", "blur", "jpeg")
TTA_SEVERITIES = (2, 3)


def _mean_iou(maps: Sequence[np.ndarray], targets: Sequence[np.ndarray], threshold: float
              ) -> float:
    return float(np.mean([iou(m > threshold, t) for m, t in zip(maps, targets, strict=True)]))


def _gating_scores(absent_maps, present_maps, present_targets, threshold) -> dict[str, float]:
    """False-positive area on absent prompts, present mIoU, and mIoU over both (an absent
    prompt scores IoU 1 when nothing is marked, 0 otherwise)."""
    empty = [np.zeros(m.shape, bool) for m in absent_maps]
    return {
        "false_positive_area": float(np.mean([np.mean(m > threshold) for m in absent_maps])),
        "present_miou": _mean_iou(present_maps, present_targets, threshold),
        "miou": _mean_iou([*absent_maps, *present_maps], [*empty, *present_targets], threshold),
    }


def presence_gating(
    segmenter: Segmenter,
    absent_queries: Sequence[world.Query],
    present_queries: Sequence[world.Query],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """Zero every map whose presence score is below a threshold calibrated on the calibration
    halves (`probes.split_halves`); before/after on the evaluation halves."""
    absent_queries = check_queries(absent_queries, "absent", "absent_queries")
    present_queries = check_queries(present_queries, "composite", "present_queries")
    check_threshold(threshold)
    absent_maps = predict_queries(segmenter, absent_queries)
    present_maps = predict_queries(segmenter, present_queries)
    (absent_calibration, absent_evaluation) = split_halves(len(absent_maps))
    (present_calibration, present_evaluation) = split_halves(len(present_maps))
    scores = [presence_score(absent_maps[i]) for i in absent_calibration]
    scores += [presence_score(present_maps[i]) for i in present_calibration]
    labels = [False] * len(absent_calibration) + [True] * len(present_calibration)
    gate = calibrate_presence_threshold(np.array(scores), np.array(labels))
    absent = [absent_maps[i] for i in absent_evaluation]
    present = [present_maps[i] for i in present_evaluation]
    targets = [present_queries[i].target for i in present_evaluation]
    before = _gating_scores(absent, present, targets, threshold)
    after = _gating_scores([gate_by_presence(m, gate) for m in absent],
                           [gate_by_presence(m, gate) for m in present], targets, threshold)
    rows = [
        {"mitigation": "presence gating", "measure": name, "before": before[key],
         "after": after[key]}
        for key, name in (("false_positive_area", "absent: area > 0.5"),
                          ("present_miou", "present: mIoU"),
                          ("miou", "absent + present: mIoU"))
    ]
    return {"before": before["miou"], "after": after["miou"], "gate": gate, "rows": rows,
            "metric": "mIoU over absent and present prompts (absent: 1 if nothing is marked)"}


def negation_by_complement(
    segmenter: Segmenter,
    queries: Sequence[world.Query],
    *,
    foreground_prompts: Sequence[str] = DEFAULT_FOREGROUND_PROMPTS,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """"not X" as asked vs `negate_by_complement` of X with the generic foreground prompts.

    A third row uses the true object pixels as foreground: an upper bound for the complement,
    not a mitigation (no ground truth exists at test time).
    """
    queries = check_queries(queries, "negation", "queries")
    check_threshold(threshold)
    asked, complement, oracle, targets = [], [], [], []
    for query in queries:
        colour, shape = excluded_composite(query)
        encoding = segmenter.encode_image(query.scene.image)
        not_x, probs_x = segmenter.predict(
            encoding, [NEGATION_FORMS["not X"].format(c=colour, s=shape),
                       NEGATION_FORMS["X"].format(c=colour, s=shape)])
        foreground = foreground_probs(segmenter, encoding, foreground_prompts)
        objects = (query.scene.instance_map > 0).astype(np.float32)
        asked.append(not_x)
        complement.append(negate_by_complement(probs_x, foreground))
        oracle.append(negate_by_complement(probs_x, objects))
        targets.append(query.target)
    before, after = _mean_iou(asked, targets, threshold), _mean_iou(complement, targets, threshold)
    rows = [
        {"mitigation": "negation by complement", "measure": '"not X" as asked', "before": before},
        {"mitigation": "negation by complement",
         "measure": f"foreground {list(foreground_prompts)} x (1 - p(X))", "after": after},
        {"mitigation": "negation by complement", "measure": "true objects x (1 - p(X)) (bound)",
         "after": _mean_iou(oracle, targets, threshold)},
    ]
    return {"before": before, "after": after, "rows": rows,
            "metric": 'mIoU of "not X" against the negation truth'}


def _base_phrase(query: world.Query) -> str:
    """"red triangle": the phrase naming a composite query's target objects."""
    return query.scene.objects[query.target_indices[0]].phrase


def prompt_ensembling(
    segmenter: Segmenter,
    query_sets: Mapping[str, Sequence[world.Query]],
    *,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """The bare phrase "X" vs the mean map over `templates`; a row per set and template.

    `query_sets`: name -> composite queries (e.g. seen and zero-shot). before/after pool all.
    """
    if not query_sets:
        raise ValueError("query_sets is empty: give at least one named set of queries")
    check_threshold(threshold)
    rows, singles, ensembles, targets = [], [], [], []
    for name, queries in query_sets.items():
        queries = check_queries(queries, "composite", f"query_sets[{name!r}]")
        per_template, ensembled = [], []
        for query in queries:
            encoding = segmenter.encode_image(query.scene.image)
            phrase = _base_phrase(query)
            per_template.append(segmenter.predict(encoding, template_prompts(phrase, templates)))
            ensembled.append(ensemble_prompts(segmenter, encoding, phrase, templates))
        set_targets = [q.target for q in queries]
        for index, template in enumerate(templates):
            rows.append({"mitigation": "prompt ensembling", "measure": f"{name}: '{template}'",
                         "before": _mean_iou([m[index] for m in per_template], set_targets,
                                             threshold)})
        rows.append({"mitigation": "prompt ensembling", "measure": f"{name}: ensemble",
                     "after": _mean_iou(ensembled, set_targets, threshold)})
        singles += [m[0] for m in per_template]
        ensembles += ensembled
        targets += set_targets
    return {"before": _mean_iou(singles, targets, threshold),
            "after": _mean_iou(ensembles, targets, threshold), "rows": rows,
            "metric": f"mIoU of composite prompts: '{templates[0]}' vs the template ensemble"}


def augmentation_on_distortions(
    segmenter: Segmenter,
    queries: Sequence[world.Query],
    *,
    distortions: Sequence[str] = TTA_DISTORTIONS,
    severities: Sequence[int] = TTA_SEVERITIES,
    transforms: Sequence[Transform] = DEFAULT_TRANSFORMS,
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """IoU with the truth of the plain prediction vs test-time augmentation
    (`mitigations.average_views`) on distorted scenes, both from the same views (the identity
    transform's view is the plain prediction); query i is distorted with seed `seed + i`; a row
    per distortion and severity."""
    queries = check_queries(queries, "composite", "queries")
    unknown = [name for name in distortions if name not in DISTORTIONS]
    if not distortions or unknown:
        raise ValueError(f"distortions {list(distortions)} must be a non-empty subset of "
                         f"{DISTORTIONS}")
    if not severities or any(not 1 <= s <= MAX_SEVERITY for s in severities):
        raise ValueError(f"severities {list(severities)} must be non-empty, each in "
                         f"1..{MAX_SEVERITY}")
    if Transform() not in transforms:
        raise ValueError("transforms must include the identity Transform(): its view is the "
                         "plain prediction")
    check_threshold(threshold)
    identity = list(transforms).index(Transform())
    rows, plain_all, tta_all = [], [], []
    for name in distortions:
        for severity in severities:
            plain, augmented = [], []
            for index, query in enumerate(queries):
                image = distort(query.scene.image, name, severity, seed=seed + index)
                target = distort_mask(query.target, name, severity, seed=seed + index)
                views = predict_views(segmenter, image, query.prompt, transforms)
                plain.append(iou(views[identity][0][0] > threshold, target))
                augmented.append(iou(average_views(views)[0] > threshold, target))
            rows.append({"mitigation": "test-time augmentation",
                         "measure": f"{name} severity {severity}",
                         "before": float(np.mean(plain)), "after": float(np.mean(augmented))})
            plain_all += plain
            tta_all += augmented
    return {"before": float(np.mean(plain_all)), "after": float(np.mean(tta_all)), "rows": rows,
            "metric": f"IoU with the truth at severities {list(severities)} of "
                      f"{', '.join(distortions)}"}


def combine(experiments: Mapping[str, dict]) -> dict:
    """The notebook's results: {"summary": {name: {"before", "after", "metric"}}, "rows"}."""
    if not experiments:
        raise ValueError("experiments is empty: give at least one mitigation's results")
    summary = {
        name: {"before": float(result["before"]), "after": float(result["after"]),
               "metric": result["metric"]}
        for name, result in experiments.items()
    }
    return {"summary": summary, "rows": [row for r in experiments.values() for row in r["rows"]]}


def before_after_figure(results: dict) -> Figure:
    """Grouped bars, before and after, one pair per mitigation (`combine`'s results)."""
    summary = results["summary"]
    names = list(summary)
    positions = np.arange(len(names))
    figure, ax = plt.subplots(figsize=(2.5 * PANEL_INCHES, 1.2 * PANEL_INCHES))
    for offset, moment in ((-0.2, "before"), (0.2, "after")):
        ax.bar(positions + offset, [summary[n][moment] for n in names], width=0.4, label=moment)
    ax.set_xticks(positions, [textwrap.fill(n.replace("_", " "), 14) for n in names])
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("score (see each metric)")
    ax.legend()
    figure.tight_layout()
    return figure


def mitigation_finding(results: dict) -> str:
    """One sentence per mitigation: its metric before and after, and whether it helped."""
    sentences = []
    for name, entry in results["summary"].items():
        change = entry["after"] - entry["before"]
        verdict = "helps" if change > 0.01 else "hurts" if change < -0.01 else "changes little"
        sentences.append(f"{name.replace('_', ' ').capitalize()} {verdict}: {entry['metric']} "
                         f"{entry['before']:.3f} -> {entry['after']:.3f}.")
    return "\n".join(sentences)
