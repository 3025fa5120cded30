"""Figures, overlays and tables: the project's only plotting helpers.

Images are ``(H, W, 3)`` uint8 RGB arrays. A "mask or probability map" is an ``(H, W)``
array, either bool or float in ``[0, 1]``; it is on where it exceeds the threshold
(``DEFAULT_THRESHOLD``). Overlays draw its outline, never a fill, so objects keep their
colours. Colours are RGB triples in ``[0, 1]``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from scipy import ndimage

from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, iou
from clipseg_lib.analysis.stats import Estimate

DEFAULT_COLOUR = (0.12, 0.56, 1.0)
"""Predictions."""
TARGET_COLOUR = (0.2, 0.75, 0.3)
"""Ground truth and what a prompt asks for."""
FIGURE_DPI = 100
PANEL_INCHES = 3.0
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000")
"""Okabe and Ito's colour-blind-safe palette, the colours of lines and bars: blue, orange,
bluish green, vermillion, reddish purple, sky blue, yellow, black."""
MIN_FONT_PT = 9
"""The smallest text a figure holds, in points: readable at 100% zoom where the report shows
the figure at its own size (figures up to `MAX_WIDTH_INCHES` wide)."""
MAX_WIDTH_INCHES = 12.0
"""The report's text column, 72rem = 1152 CSS px = 12 in: a wider figure is shown shrunk."""
ESTIMATE_KEYS = {"mean", "n", "ci_low", "ci_high"}


def _coverage(mask_or_probs: np.ndarray) -> np.ndarray:
    """Return an ``(H, W)`` float64 map in ``[0, 1]`` from a bool mask or a probability map."""
    values = np.asarray(mask_or_probs)
    if values.ndim != 2:
        raise ValueError(f"mask_or_probs must be a 2-D (H, W) array, got shape {values.shape}")
    if values.dtype == np.bool_:
        return values.astype(np.float64)
    if not np.issubdtype(values.dtype, np.floating):
        raise ValueError(
            f"mask_or_probs must be a bool mask or a float probability map, got {values.dtype}"
        )
    if not np.all((values >= 0.0) & (values <= 1.0)):
        raise ValueError("mask_or_probs must hold finite probabilities in [0, 1]")
    return values.astype(np.float64)


def _check_colour(colour: Sequence[float]) -> np.ndarray:
    rgb = np.asarray(colour, dtype=np.float64)
    if rgb.shape != (3,) or not np.all((rgb >= 0.0) & (rgb <= 1.0)):
        raise ValueError(f"colour must be an RGB triple in [0, 1], got {colour!r}")
    return rgb


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("image must be an (H, W, 3) uint8 RGB array")
    if image.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got shape {image.shape}")


def show_mask(
    mask_or_probs: np.ndarray,
    ax: Axes,
    *,
    colour: Sequence[float] = DEFAULT_COLOUR,
    threshold: float = DEFAULT_THRESHOLD,
    linewidth: float = 1.5,
) -> ContourSet:
    """Outline where a mask is on, or a probability map exceeds `threshold`, on `ax`.

    The outline is a `colour` line on a dark halo, so the pixels inside keep their own colours
    (a filled overlay would turn a yellow object green under blue), rasterized in vector
    output. The axes' limits are kept.
    """
    coverage = _coverage(mask_or_probs)
    rgb = _check_colour(colour)
    limits = ax.get_xlim(), ax.get_ylim()
    # A zero border lets the outline close along the image's edges.
    padded = np.pad(coverage, 1)
    columns, rows = np.arange(-1, coverage.shape[1] + 1), np.arange(-1, coverage.shape[0] + 1)
    outline = ax.contour(columns, rows, padded, levels=[threshold], colors=[rgb],
                         linewidths=linewidth)
    outline.set_path_effects([patheffects.withStroke(linewidth=linewidth + 2, foreground="black")])
    # Drawn as pixels in an SVG too: a noisy map's outline on a large photo has millions of
    # vertices (54 MB of SVG for one figure of a random full-size model's photos).
    outline.set_rasterized(True)
    if ax.images:
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
    return outline


def overlay(
    image: np.ndarray,
    mask_or_probs: np.ndarray,
    *,
    colour: Sequence[float] = DEFAULT_COLOUR,
    threshold: float = DEFAULT_THRESHOLD,
    width: int = 2,
) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 copy of `image` with the mask's edge drawn in `colour`.

    The mask is `mask_or_probs` (above `threshold` for a probability map); its inner edge,
    `width` pixels deep, is painted `colour` and the pixel ring just outside it black, so the
    object's own pixels keep their colours.
    """
    _check_image(image)
    coverage = _coverage(mask_or_probs)
    if coverage.shape != image.shape[:2]:
        raise ValueError(
            f"mask_or_probs shape {coverage.shape} does not match image shape {image.shape[:2]}"
        )
    rgb = _check_colour(colour)
    if width < 1:
        raise ValueError(f"width must be at least 1 pixel, got {width}")
    mask = coverage > threshold
    edge = mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)
    halo = ndimage.binary_dilation(mask) & ~mask
    drawn = image.copy()
    drawn[halo] = 0
    drawn[edge] = np.rint(255.0 * rgb).astype(np.uint8)
    return drawn


def _panel_title(prompt: str, iou_value: float | None, score: float | None) -> str:
    details = []
    if iou_value is not None:
        details.append(f"IoU {iou_value:.2f}")
    if score is not None:
        details.append(f"score {score:.2f}")
    return "\n".join([prompt, ", ".join(details)]) if details else prompt


def show_predictions(
    image: np.ndarray,
    probs: np.ndarray,
    prompts: Sequence[str],
    *,
    targets: np.ndarray | Sequence[np.ndarray] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    scores: Sequence[float] | None = None,
    ncols: int = 4,
) -> Figure:
    """Grid of the image followed by one overlay panel per prompt, axes off.

    ``probs`` is ``(N, H, W)`` float in ``[0, 1]``, one map per prompt; panels outline
    ``probs > threshold``. With ``targets`` (N bool ``(H, W)`` masks) each title adds the IoU of
    ``probs > threshold`` with two decimals; with ``scores`` (N floats, e.g. presence scores)
    it adds the score. Returns the figure, which holds exactly ``N + 1`` axes.
    """
    _check_image(image)
    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"probs must be (N, H, W) with (H, W) = {image.shape[:2]}, got shape {probs.shape}"
        )
    count = probs.shape[0]
    if len(prompts) != count:
        raise ValueError(f"prompts has {len(prompts)} entries but probs has {count} maps")
    if targets is not None and len(targets) != count:
        raise ValueError(f"targets has {len(targets)} masks but probs has {count} maps")
    if scores is not None and len(scores) != count:
        raise ValueError(f"scores has {len(scores)} entries but probs has {count} maps")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")

    columns = min(ncols, count + 1)
    rows = math.ceil((count + 1) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(PANEL_INCHES * columns, PANEL_INCHES * rows), squeeze=False
    )
    axes = axes.ravel()
    axes[0].imshow(image)
    axes[0].set_title("image")
    for index in range(count):
        ax = axes[index + 1]
        ax.imshow(image)
        show_mask(probs[index], ax, threshold=threshold)
        iou_value = None if targets is None else iou(probs[index] > threshold, targets[index])
        score = None if scores is None else scores[index]
        ax.set_title(_panel_title(prompts[index], iou_value, score))
    for ax in axes[: count + 1]:
        ax.axis("off")
    for ax in axes[count + 1 :]:
        figure.delaxes(ax)
    figure.tight_layout()
    return figure


def plot_curves(
    x: Sequence[float],
    curves: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Plot named curves over ``x`` as lines with markers, a legend and y limits ``[0, 1]``.

    Draws on ``ax`` when given, else on a new figure whose lines take `OKABE_ITO`'s colours;
    returns the figure holding the axes.
    """
    if not curves:
        raise ValueError("curves must hold at least one named curve")
    for name, values in curves.items():
        if len(values) != len(x):
            raise ValueError(f"curve {name!r} has {len(values)} values but x has {len(x)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(2 * PANEL_INCHES, PANEL_INCHES))
        ax.set_prop_cycle(color=OKABE_ITO)
    for name, values in curves.items():
        ax.plot(x, values, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0.0, 1.0)
    if title is not None:
        ax.set_title(title)
    ax.legend()
    return ax.figure


def relative_luminance(colour: str | Sequence[float]) -> float:
    """WCAG 2's relative luminance of a matplotlib colour, in [0, 1] (black 0, white 1)."""
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
              for c in to_rgb(colour)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def text_colour_on(background: str | Sequence[float]) -> str:
    """"black" or "white", whichever contrasts more with ``background`` (WCAG 2 ratio)."""
    luminance = relative_luminance(background)
    return "black" if (luminance + 0.05) / 0.05 >= 1.05 / (luminance + 0.05) else "white"


def _table_cell(value: object, precision: int) -> str:
    if isinstance(value, Estimate):
        value = value.as_dict()
    if isinstance(value, Mapping) and ESTIMATE_KEYS <= set(value):
        low, high = f"{value['ci_low']:.{precision}f}", f"{value['ci_high']:.{precision}f}"
        return f"{value['mean']:.{precision}f} [{low}, {high}] n={value['n']}"
    if value is None:
        return "n/a"
    if isinstance(value, float | np.floating):
        return f"{value:.{precision}f}"
    return str(value).replace("|", "\\|")


def _table_line(texts: Sequence[str], widths: Sequence[int]) -> str:
    padded = (text.ljust(width) for text, width in zip(texts, widths, strict=True))
    return "| " + " | ".join(padded) + " |"


def format_table(rows: Sequence[Mapping[str, object]], *, precision: int = 3) -> str:
    """Format rows as an aligned Markdown table; floats get ``precision`` decimals.

    An Estimate (or its dict) prints as ``mean [ci_low, ci_high] n=N``; None as ``n/a``.

    Columns are the keys in order of first appearance; a row without a key leaves it blank.
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    if precision < 0:
        raise ValueError(f"precision must be non-negative, got {precision}")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [
        [_table_cell(row[key], precision) if key in row else "" for key in columns] for row in rows
    ]
    header = [str(column) for column in columns]
    widths = [max(len(text) for text in column) for column in zip(header, *cells, strict=True)]
    widths = [max(width, 3) for width in widths]
    separator = ["-" * width for width in widths]
    return "\n".join(_table_line(texts, widths) for texts in [header, separator, *cells])


def save_figure(fig: Figure, path: str | Path) -> None:
    """Save ``fig`` as a PNG at 100 dpi at ``path`` (``*.png``) and as an SVG beside it (the
    same name with ``.svg``: the vector copy the report shows), both byte-identical across
    saves; creates parent dirs. Each file replaces its old copy only once complete (a full
    disk leaves no half image), the PNG first, so an SVG older than its PNG is stale."""
    path = Path(path)
    if path.suffix != ".png":
        raise ValueError(f"path must name a .png file, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    _save_atomic(fig, path, {"Software": None})
    # A fixed salt makes the SVG's element ids, hence its bytes, the same on every save.
    with plt.rc_context({"svg.hashsalt": "clipseg"}):
        _save_atomic(fig, path.with_suffix(".svg"), {"Date": None})


def _save_atomic(fig: Figure, path: Path, metadata: dict[str, None]) -> None:
    partial = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(partial, dpi=FIGURE_DPI, format=path.suffix[1:], metadata=metadata)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
