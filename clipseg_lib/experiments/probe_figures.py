"""Figures of the failure-mode probes (`clipseg_lib.experiments.probes`): labelled overlays, the
expression confusion matrix and the presence-score histograms per group of prompts."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from clipseg_lib import world
from clipseg_lib.analysis.plotting import (
    MIN_FONT_PT,
    OKABE_ITO,
    PANEL_INCHES,
    show_mask,
    text_colour_on,
)
from clipseg_lib.experiments.inputs import Question, question_image
from clipseg_lib.experiments.photo_probes import NEGATION_PREFIXES
from clipseg_lib.experiments.probes import (
    CANDIDATE_KIND,
    candidate_choice,
    candidate_objects,
    negation_prompts,
)

ASKED_COLOUR = (0.1, 0.8, 0.2)
OTHER_COLOUR = (1.0, 1.0, 1.0)


def _shown(answered: Sequence[tuple], n_shown: int) -> list[tuple]:
    if n_shown < 1:
        raise ValueError(f"n_shown must be at least 1, got {n_shown}")
    if not answered:
        raise ValueError("answered is empty: nothing to show")
    return list(answered[:n_shown])


def choice_figure(answered: Sequence[tuple[world.Query, np.ndarray]], *, n_shown: int = 3
                  ) -> Figure:
    """One row per (word or expression query, its (H, W) probability map), the first
    `n_shown`: the scene, then the map with every sign or face boxed and labelled with its
    name and mean probability (the asked one in green)."""
    shown = _shown(answered, n_shown)
    kinds = {query.kind for query, _ in shown}
    if not kinds <= set(CANDIDATE_KIND):
        raise ValueError(f"queries must be 'word' or 'expression' queries, got {sorted(kinds)}")
    figure, axes = plt.subplots(
        len(shown), 2, figsize=(2 * PANEL_INCHES, PANEL_INCHES * len(shown)), squeeze=False
    )
    for row, (query, probs) in zip(axes, shown, strict=True):
        objects = query.scene.objects
        candidates = candidate_objects(query)
        means, _ = candidate_choice(
            probs, [query.scene.object_mask(i) for i in candidates],
            candidates.index(query.target_indices[0]),
        )
        row[0].imshow(query.scene.image)
        row[0].set_title("scene")
        row[1].imshow(query.scene.image)
        show_mask(probs, row[1])
        row[1].set_title(f'"{query.prompt}"', pad=14)  # above the labels of top signs
        for index, mean in zip(candidates, means, strict=True):
            x0, y0, x1, y1 = objects[index].box
            colour = ASKED_COLOUR if index == query.target_indices[0] else OTHER_COLOUR
            row[1].add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor=colour, linewidth=1.5))
            row[1].text(x0, y0 - 1, f"{objects[index].name} {mean:.2f}", color=colour,
                        fontsize=MIN_FONT_PT, va="bottom", bbox={"facecolor": "black", "alpha": 0.6,
                                                       "pad": 1, "linewidth": 0})
        for ax in row:
            ax.axis("off")
    figure.tight_layout()
    return figure


def confusion_figure(confusion: dict) -> Figure:
    """Heat map of asked (rows) vs chosen (columns) counts, each row normalised to 1."""
    labels, counts = confusion["labels"], np.asarray(confusion["counts"], float)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(f"counts shape {counts.shape} does not match {len(labels)} labels")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    figure, ax = plt.subplots(figsize=(1.3 * PANEL_INCHES, 1.1 * PANEL_INCHES))
    cells = ax.imshow(shares, vmin=0.0, vmax=1.0, cmap="Blues")
    for (row, column), share in np.ndenumerate(shares):
        ax.text(column, row, f"{share:.2f}", ha="center", va="center",
                color=text_colour_on(cells.to_rgba(share)), fontsize=MIN_FONT_PT)
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("face the model picked")
    ax.set_ylabel("expression asked")
    figure.tight_layout()
    return figure


def negation_figure(answered: Sequence[tuple[Question, np.ndarray]], *, n_shown: int = 3
                    ) -> Figure:
    """One row per (negation question, its (3, H, W) maps of "X", "not X", "everything except
    X"), the first `n_shown`: the image, the three maps and the negation's ground truth."""
    shown = _shown(answered, n_shown)
    columns = 5
    figure, axes = plt.subplots(
        len(shown), columns, figsize=(PANEL_INCHES * columns * 0.8, PANEL_INCHES * len(shown)),
        squeeze=False,
    )
    for row, (question, probabilities) in zip(axes, shown, strict=True):
        prompts, truth = _negation_panels(question)
        image = question_image(question)
        row[0].imshow(image)
        row[0].set_title("scene")
        for ax, overlay_map, title in zip(row[1:], [*probabilities, truth],
                                          [*prompts, "negation truth"], strict=True):
            ax.imshow(image)
            show_mask(overlay_map, ax)
            ax.set_title(title, fontsize=MIN_FONT_PT)
        for ax in row:
            ax.axis("off")
    figure.tight_layout()
    return figure


def _negation_panels(question: Question) -> tuple[list[str], np.ndarray]:
    """The prompts "X", "not X", "everything except X" and the negation's truth: of a world
    negation query, or of a photo case (X is its prompt; the truth lies outside its mask)."""
    if isinstance(question, world.Query):
        return negation_prompts(question), question.target
    prompts = [question.prompt, *(p.format(question.prompt) for p in NEGATION_PREFIXES.values())]
    return prompts, ~question.mask


def presence_figure(cases: Sequence[dict], threshold: float) -> Figure:
    """Histograms of the presence score (maximum probability) per group of prompts, from case
    records with "group" and "presence", with the mask threshold as a dashed line."""
    if not cases:
        raise ValueError("cases is empty: nothing to show")
    groups = list(dict.fromkeys(case["group"] for case in cases))
    bins = np.linspace(0.0, 1.0, 21)
    figure, ax = plt.subplots(figsize=(2.4 * PANEL_INCHES, PANEL_INCHES))
    ax.set_prop_cycle(color=OKABE_ITO)
    for group in groups:
        scores = [case["presence"] for case in cases if case["group"] == group]
        ax.hist(scores, bins=bins, histtype="step", linewidth=1.5,
                label=f"{group} (n={len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", label=f"mask threshold {threshold}")
    ax.set_xlabel("presence score (maximum probability)")
    ax.set_ylabel("prompts")
    ax.legend(fontsize=MIN_FONT_PT)
    figure.tight_layout()
    return figure
