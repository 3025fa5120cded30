"""The poster's three tasks on the synthetic world: zero-shot, one-shot, referring expressions.

`TASKS` fixes the query sets. Seen composites ("red triangle", test split) are the reference:
colour-shape pairs the model met in training, in new scenes. Zero-shot asks the same kind of
text for the held-out colour-shape combinations training never rendered. One-shot gives no text
but a support image with the object's mask (another scene, another size and place; visual
prompt engineering crop + blur + darken). Referring expressions pick exactly one object by
side, size or neighbour ("the left red circle", "the largest square", "the shape above the
star"). Each task is scored by mIoU (mean per-query IoU of `probability > threshold`),
dataset-level foreground IoU and pixel average precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from clipseg_lib import world
from clipseg_lib.analysis.metrics import (
    DEFAULT_THRESHOLD,
    average_precision,
    foreground_iou,
    iou,
    presence_score,
)
from clipseg_lib.analysis.plotting import PANEL_INCHES, show_mask
from clipseg_lib.experiments.cases import Case, by_image
from clipseg_lib.mini.evaluation import predict_queries
from clipseg_lib.model.segmenter import Segmenter

#: Task -> (query kind, split, summary key of its mIoU).
TASKS = {
    "seen composite (text)": ("composite", "test", "seen_composite_miou"),
    "zero-shot (held-out pairs)": ("composite", "heldout", "zero_shot_miou"),
    "one-shot (image prompt)": ("image", "test", "one_shot_miou"),
    "referring expression": ("referring", "test", "referring_miou"),
}
TARGET_COLOUR = (0.2, 0.75, 0.3)


def task_queries(n: int, *, seed: int, size: int = 96) -> dict[str, list[world.Query]]:
    """`n` queries per task of `TASKS`, a pure function of (n, seed, size)."""
    if n < 1:
        raise ValueError(f"n must be at least 1 query per task, got {n}")
    return {
        task: world.make_queries(kind, n, seed=seed, size=size, split=split)
        for task, (kind, split, _) in TASKS.items()
    }


def score_tasks(
    segmenter: Segmenter,
    queries: Mapping[str, Sequence[world.Query]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict:
    """{"rows": one per task (queries, mIoU, foreground IoU, AP), "summary": {`TASKS` keys:
    mIoU}, "ious": task -> per-query IoU}. Each scene is encoded once."""
    unknown = sorted(set(queries) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {list(TASKS)}")
    rows, summary, ious = [], {}, {}
    for task, task_set in queries.items():
        probabilities = predict_queries(segmenter, task_set)
        targets = [query.target for query in task_set]
        masks = [p > threshold for p in probabilities]
        ious[task] = [iou(mask, target) for mask, target in zip(masks, targets, strict=True)]
        kind, split, key = TASKS[task]
        summary[key] = float(np.mean(ious[task]))
        rows.append(
            {
                "task": task,
                "prompt kind": kind,
                "split": split,
                "queries": len(task_set),
                "mIoU": summary[key],
                "foreground IoU": foreground_iou(masks, targets),
                "AP": average_precision(probabilities, targets),
            }
        )
    return {"rows": rows, "summary": summary, "ious": ious}


def show_examples(
    segmenter: Segmenter,
    queries: Mapping[str, Sequence[world.Query]],
    *,
    n_shown: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
) -> Figure:
    """A row per task, two panels per shown query: the prompt side (the target in green, or the
    support image and its mask for one-shot) and the prediction in blue with its IoU."""
    if n_shown < 1:
        raise ValueError(f"n_shown must be at least 1, got {n_shown}")
    figure, axes = plt.subplots(
        len(queries),
        2 * n_shown,
        figsize=(PANEL_INCHES * 2 * n_shown, PANEL_INCHES * len(queries)),
        squeeze=False,
    )
    for row, (task, task_set) in enumerate(queries.items()):
        shown = list(task_set[:n_shown])
        for column, (query, probability) in enumerate(
            zip(shown, predict_queries(segmenter, shown), strict=True)
        ):
            prompt_ax, answer_ax = axes[row, 2 * column], axes[row, 2 * column + 1]
            if query.kind == "image":
                prompt_ax.imshow(query.support_image)
                show_mask(query.support_mask, prompt_ax, colour=TARGET_COLOUR, alpha=0.7)
                prompt_ax.set_title(f"{task}\nsupport: {query.prompt}", fontsize=9)
            else:
                prompt_ax.imshow(query.scene.image)
                show_mask(query.target, prompt_ax, colour=TARGET_COLOUR, alpha=0.7)
                prompt_ax.set_title(f"{task}\ntarget: {query.prompt}", fontsize=9)
            answer_ax.imshow(query.scene.image)
            show_mask(probability, answer_ax)
            score = iou(probability > threshold, query.target)
            answer_ax.set_title(f"prediction, IoU {score:.2f}", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    figure.tight_layout()
    return figure


def predict_photos(segmenter: Segmenter, cases: Sequence[Case]) -> list[np.ndarray]:
    """Probability maps, float32 (H, W) at each photo's size, in case order; each photo is
    encoded once for all its prompts."""
    answers: dict[int, np.ndarray] = {}
    for photo in by_image(list(cases)).values():
        probabilities = segmenter.predict(photo[0].image, [case.prompt for case in photo])
        answers.update({id(case): p for case, p in zip(photo, probabilities, strict=True)})
    return [answers[id(case)] for case in cases]


def photo_rows(
    cases: Sequence[Case],
    probabilities: Sequence[np.ndarray],
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[dict[str, object]]:
    """Zero-shot text prompts on real photos: per case the presence score (maximum
    probability), the predicted area fraction and, where the case has a mask, the IoU."""
    rows = []
    for case, probability in zip(cases, probabilities, strict=True):
        mask = probability > threshold
        rows.append(
            {
                "photo": case.name,
                "prompt": case.prompt,
                "presence": presence_score(probability),
                "area": float(mask.mean()),
                "IoU vs mask": "no mask" if case.mask is None else iou(mask, case.mask),
            }
        )
    return rows


def show_photos(
    cases: Sequence[Case], probabilities: Sequence[np.ndarray], *, ncols: int = 3
) -> Figure | None:
    """Each case's photo with its predicted map, titled with the prompt; None without cases."""
    if not cases:
        return None
    rows = math.ceil(len(cases) / ncols)
    figure, axes = plt.subplots(
        rows, ncols, figsize=(PANEL_INCHES * ncols, PANEL_INCHES * rows), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, case, probability in zip(axes.ravel(), cases, probabilities, strict=False):
        ax.imshow(case.image)
        show_mask(probability, ax)
        ax.set_title(case.prompt, fontsize=9)
    figure.tight_layout()
    return figure


def tasks_finding(results: Mapping) -> str:
    """The three tasks against the seen-composite reference, as one sentence (3 decimals)."""
    summary = results["summary"]
    seen = summary["seen_composite_miou"]

    def relative(key: str) -> str:
        ratio = f", {summary[key] / seen:.3f} of seen" if seen > 0 else ""
        return f"{summary[key]:.3f}{ratio}"

    return (
        f"Seen colour-shape composites reach mIoU {seen:.3f}; zero-shot (held-out "
        f"combinations) {relative('zero_shot_miou')}; one-shot from an image prompt "
        f"{relative('one_shot_miou')}; referring expressions {relative('referring_miou')}."
    )
