"""The poster's three tasks on the synthetic world: zero-shot, one-shot, referring expressions.

`TASK_QUESTIONS` maps each task to its evaluation set of `question_sets` (the same cases every
notebook uses for that question). The seen pairs ("red triangle", test split) are the
reference: colour-shape pairs `mini` met in training, in new scenes. Zero-shot asks the same
kind of text for the held-out colour-shape combinations `mini`'s training never rendered (the
split is `mini`'s; for any other model both rows are text prompts it may or may not have met).
One-shot gives no text but a support image with the object's mask (another scene, another
size and place; visual prompt engineering crop + blur + darken). Referring expressions pick
exactly one object by side, size or neighbour. The notebook scores each query by the IoU of
`probability > threshold` and by its step-wise pixel AP (not the paper's foreground AP,
AP_FG, of `benchmark_metrics`); this module holds the task table,
the figures and the sentence generated from the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from clipseg_lib import world
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, iou, presence_score
from clipseg_lib.analysis.plotting import PANEL_INCHES, TARGET_COLOUR, show_mask
from clipseg_lib.analysis.stats import Estimate
from clipseg_lib.experiments.cases import Case

#: Task -> the `question_sets.QUESTIONS` evaluation set that measures it.
TASK_QUESTIONS = {
    "seen pairs (mini's training split)": "seen",
    "zero-shot (held-out pairs)": "zero_shot",
    "one-shot (image prompt)": "one_shot",
    "referring expression": "referring",
}
SEEN_TASK = next(iter(TASK_QUESTIONS))


def show_examples(
    answered: Mapping[str, Sequence[tuple[world.Query, np.ndarray]]],
    *,
    n_shown: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
) -> Figure:
    """A row per task, two panels per shown (query, probability map) pair, the first `n_shown`
    of each task: the prompt side (the target in green, or the support image and its mask for
    one-shot) and the prediction in blue with its IoU."""
    if n_shown < 1:
        raise ValueError(f"n_shown must be at least 1, got {n_shown}")
    figure, axes = plt.subplots(
        len(answered),
        2 * n_shown,
        figsize=(PANEL_INCHES * 2 * n_shown, PANEL_INCHES * len(answered)),
        squeeze=False,
    )
    for row, (task, pairs) in enumerate(answered.items()):
        for column, (query, probability) in enumerate(pairs[:n_shown]):
            prompt_ax, answer_ax = axes[row, 2 * column], axes[row, 2 * column + 1]
            if query.kind == "image":
                prompt_ax.imshow(query.support_image)
                show_mask(query.support_mask, prompt_ax, colour=TARGET_COLOUR)
                prompt_ax.set_title(f"{task}\nsupport: {query.prompt}", fontsize=9)
            else:
                prompt_ax.imshow(query.scene.image)
                show_mask(query.target, prompt_ax, colour=TARGET_COLOUR)
                prompt_ax.set_title(f"{task}\ntarget: {query.prompt}", fontsize=9)
            answer_ax.imshow(query.scene.image)
            show_mask(probability, answer_ax)
            score = iou(probability > threshold, query.target)
            answer_ax.set_title(f"prediction, IoU {score:.2f}", fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    figure.tight_layout()
    return figure


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


def tasks_finding(estimates: Mapping[str, Estimate], *, model: str) -> str:
    """Each task's mIoU against the seen pairs, judged on the intervals (different cases, so
    non-overlapping 95% intervals are what "lower" or "higher" means here), naming `model`."""
    if SEEN_TASK not in estimates:
        raise ValueError(f"tasks_finding needs the {SEEN_TASK!r} row, got {list(estimates)}")
    seen = estimates[SEEN_TASK]
    parts = []
    for task, estimate in estimates.items():
        if task == SEEN_TASK:
            continue
        if not estimate.separated_from(seen):
            relation = "not distinguishable from the seen pairs (the intervals overlap)"
        else:
            relation = "below" if estimate.mean < seen.mean else "above"
            relation += " the seen pairs (the intervals do not overlap)"
        parts.append(f"{task} {estimate}, {relation}")
    split = ("" if model == "mini" else
             f" The seen / held-out split is mini's training split; for {model} it means nothing.")
    return f"On {model}, the seen pairs reach mIoU {seen}; " + "; ".join(parts) + "." + split
