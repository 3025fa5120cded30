"""Figures of the robustness experiments: severity curves, distorted examples and the
extract-layer grid. A panel shows an image with a thresholded mask in the overlay colour."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from clipseg_lib.analysis import plotting
from clipseg_lib.analysis.distortions import distort, distort_mask
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.experiments.inputs import Question, question_image, question_target
from clipseg_lib.experiments.robustness import (
    METRICS,
    PAPER_REFERENCE,
    POSTER_TRIPLES,
    distorted_prompt,
    layer_label,
)
from clipseg_lib.model.prompts import DEFAULT_ENGINEERING

PANEL_INCHES = 1.7
METRIC_LABELS = {"iou_gt": "IoU with ground truth", "iou_vs_clean": "IoU with clean prediction"}
SUPPORT_COLOUR = (1.0, 0.0, 1.0)


def severity_curves(sweep: Sequence[dict], *, title: str) -> Figure:
    """Two panels (IoU with ground truth, IoU with the clean prediction) over severity: a line
    per distortion through the means of `robustness.sweep_rows`, its 95% interval shaded."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        ax.set_prop_cycle(color=plotting.OKABE_ITO)
        by_distortion: dict[str, list[dict]] = {}
        for row in sweep:
            if row[metric] is not None:
                by_distortion.setdefault(row["distortion"], []).append(row)
        curves = {name: [row[metric]["mean"] for row in rows]
                  for name, rows in by_distortion.items()}
        for name, rows in by_distortion.items():
            severities = [row["severity"] for row in rows]
            plotting.plot_curves(severities, {name: curves[name]}, xlabel="severity",
                                 ylabel=METRIC_LABELS[metric], ax=ax)
            ax.fill_between(severities, [row[metric]["ci_low"] for row in rows],
                            [row[metric]["ci_high"] for row in rows],
                            color=ax.get_lines()[-1].get_color(), alpha=0.15, linewidth=0)
    axes[0].get_legend().remove()
    axes[1].legend(fontsize=plotting.MIN_FONT_PT, loc="lower left")
    figure.suptitle(f"{title} (mean and 95% interval)")
    figure.tight_layout()
    return figure


def distortion_examples(
    question: Question,
    masks: Mapping[tuple[str, int], np.ndarray],
    *,
    distortions: Sequence[str],
    severities: Sequence[int] = (1, 5),
    seed: int = 0,
    scale: str = "ssim",
) -> Figure:
    """A row per distortion: the clean image, then the image at each severity (distorted with
    `seed`, severities on `scale`), each with its mask from `masks`, keyed (distortion,
    severity), severity 0 the clean image; titles give the IoU with the (moved) ground truth
    where there is one."""
    image, target = question_image(question), question_target(question)
    figure, axes = _grid(len(distortions), 1 + len(severities))
    for row, name in zip(axes, distortions, strict=True):
        clean = masks[name, 0]
        _panel(row[0], image, clean, f"clean\n{_score(clean, target)}")
        for ax, level in zip(row[1:], severities, strict=True):
            mask = masks[name, level]
            moved = None if target is None else distort_mask(target, name, level)
            _panel(ax, distort(image, name, level, seed=seed, scale=scale), mask,
                   f"{name} {level}\n{_score(mask, moved)}")
    figure.suptitle(f"prompt: {question.prompt}")
    figure.tight_layout()
    return figure


def prompt_distortion_examples(
    question: Question,
    masks: Mapping[tuple[str, int], np.ndarray],
    *,
    distortions: Sequence[str],
    severities: Sequence[int] = (1, 5),
    seed: int = 0,
    engineering: str = DEFAULT_ENGINEERING,
    scale: str = "ssim",
) -> Figure:
    """A row per distortion; for the clean support and each severity, two panels: the support
    image with its (moved) mask (`distorted_prompt` with `seed` and `engineering`), and the
    query image with the mask that prompt predicted, from `masks` keyed (distortion,
    severity), severity 0 the clean support."""
    image, target = question_image(question), question_target(question)
    levels = [0, *severities]
    figure, axes = _grid(len(distortions), 2 * len(levels))
    for row, name in zip(axes, distortions, strict=True):
        for column, level in enumerate(levels):
            prompt = distorted_prompt(question, name, level, seed=seed, engineering=engineering,
                                      scale=scale)
            mask = masks[name, level]
            label = "clean" if level == 0 else f"{name} {level}"
            _panel(row[2 * column], prompt.image, prompt.mask, f"support, {label}",
                   colour=SUPPORT_COLOUR)
            _panel(row[2 * column + 1], image, mask, f"prediction\n{_score(mask, target)}")
    figure.suptitle(f'one-shot prompt: "{question.prompt}" shown by an example image')
    figure.tight_layout()
    return figure


def extract_layer_grid(
    answered: Sequence[tuple[Question, Mapping[tuple[int, ...], np.ndarray]]],
    *,
    triples: Sequence[Sequence[int]] = POSTER_TRIPLES,
    reference: Sequence[int] = PAPER_REFERENCE,
) -> Figure:
    """Rows: the ground truth, then each triple and the reference; a column per (question,
    its masks keyed by extract layers, holding every triple and the reference).

    Titles give the IoU with the reference's mask."""
    reference = tuple(reference)
    layer_sets = list(dict.fromkeys([*(tuple(layers) for layers in triples), reference]))
    figure, axes = _grid(1 + len(layer_sets), len(answered))
    for column, (question, masks) in enumerate(answered):
        missing = [layers for layers in layer_sets if layers not in masks]
        if missing:
            raise ValueError(f"question {column + 1} has no masks for extract layers {missing}")
        image, target = question_image(question), question_target(question)
        truth = np.zeros(image.shape[:2], bool) if target is None else target
        prompt = textwrap.shorten(question.prompt, width=26, placeholder="...")
        _panel(axes[0][column], image, truth, f"Prompt {column + 1}, truth\n{prompt}",
               colour=plotting.TARGET_COLOUR)
        for row, layers in enumerate(layer_sets, start=1):
            title = f"{layer_label(layers)}: IoU {iou(masks[layers], masks[reference]):.2f}"
            _panel(axes[row][column], image, masks[layers], title)
    figure.tight_layout()
    return figure


def _grid(rows: int, columns: int) -> tuple[Figure, np.ndarray]:
    return plt.subplots(rows, columns, figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows),
                        squeeze=False)


def _panel(ax: Axes, image: np.ndarray, mask: np.ndarray, title: str, *,
           colour: Sequence[float] = plotting.DEFAULT_COLOUR) -> None:
    """`image` with `mask` outlined in `colour`."""
    ax.imshow(image)
    plotting.show_mask(mask, ax, colour=colour)
    ax.set_title(title, fontsize=plotting.MIN_FONT_PT)
    ax.axis("off")


def _score(mask: np.ndarray, target: np.ndarray | None) -> str:
    return "no ground truth" if target is None else f"IoU {iou(mask, target):.2f}"
