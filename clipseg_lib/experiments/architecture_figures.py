"""Figures of notebook 00: the architecture diagram drawn from a config, and one query's
predictions at several input sizes."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from clipseg_lib.analysis import plotting
from clipseg_lib.experiments.architecture import (
    ModelOrConfig,
    as_config,
    decoder_parameters,
    upsampling,
)
from clipseg_lib.world import Query


def show_input_sizes(query: Query, probabilities: Mapping[int, np.ndarray]) -> Figure:
    """The query's image and its (H, W) probability map at each input size (the keys, in
    order), titled with the IoU."""
    return plotting.show_predictions(
        query.scene.image, np.stack(list(probabilities.values())),
        [f"{query.prompt} @ {size} px" for size in probabilities],
        targets=[query.target] * len(probabilities),
    )


def draw_diagram(model: ModelOrConfig) -> Figure:
    """Boxes and arrows: the backbone climbs on the left, the decoder descends on the right,
    skip connections join the extracted layers to it (the U-Net shape); layers nothing reads
    are dashed."""
    config = as_config(model)
    vision, layers = config.vision_config, tuple(config.extract_layers)
    depth, deepest, rd = vision.num_hidden_layers, max(layers) + 1, config.reduce_dim
    figure, ax = plt.subplots(figsize=(plotting.MAX_WIDTH_INCHES, 0.5 * depth + 3.6))
    # The axes fill the figure: boxes as large as the page allows hold their 9 pt labels.
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95)
    ax.set_xlim(-0.2, 13.2)
    ax.set_ylim(-2.6, depth + 2.2)
    ax.axis("off")
    _box(ax, (0.0, -1.8), (1.8, 0.8), "image", "#dddddd")
    _box(ax, (2.2, -0.4), (2.8, 0.8), f"patch embedding\n{vision.patch_size} px patches + CLS",
        "#cfe3f7")
    _arrow(ax, (1.8, -1.4), (2.2, 0.0))
    for block in range(1, depth + 1):
        extracted, used = block - 1 in layers, block <= deepest
        colour = "#8fbce6" if extracted else "#cfe3f7" if used else "white"
        label = f"ViT layer {block}" + (f" = extract {block - 1}" if extracted else "")
        _box(ax, (2.2, block + 0.1), (2.8, 0.7), label, colour, dashed=not used)
        _arrow(ax, (3.6, block - 0.2 if block > 1 else 0.4), (3.6, block + 0.1))
    ax.text(3.6, depth + 1.0, f"frozen CLIP ViT ({vision.hidden_size} dims)\n"
            f"dashed: not needed for extract layers {layers}", ha="center",
            fontsize=plotting.MIN_FONT_PT)
    _box(ax, (9.9, depth + 0.7), (3.1, 1.0), f"prompt: CLIP text or image\nencoder -> "
        f"{config.projection_dim} values", "#f7e3cf")
    previous = None
    for step, layer in enumerate(reversed(layers)):
        y = layer + 1
        _box(ax, (5.6, y + 0.1), (1.6, 0.7), f"Linear\n{vision.hidden_size} -> {rd}", "#d9f0d3")
        _arrow(ax, (5.0, y + 0.45), (5.6, y + 0.45))
        if previous is None:
            _box(ax, (7.6, y + 0.1), (1.2, 0.7), "FiLM\nx mul + add", "#f7e3cf")
            _arrow(ax, (11.4, depth + 0.7), (8.2, y + 0.8))
        else:
            ax.text(8.2, y + 0.45, "+", ha="center", va="center", fontsize=14)
            _arrow(ax, (10.3, previous + 0.1), (8.35, y + 0.55))
        _arrow(ax, (7.2, y + 0.45), (7.6, y + 0.45) if previous is None else (8.05, y + 0.45))
        _box(ax, (9.2, y + 0.1), (2.2, 0.7), f"transformer block {step + 1}\n({rd} dims)",
            "#d9f0d3")
        _arrow(ax, (8.8 if previous is None else 8.35, y + 0.45), (9.2, y + 0.45))
        previous = y
    refined = config.use_complex_transposed_convolution
    kernel = vision.patch_size // 4 if refined else vision.patch_size
    _box(ax, (9.2, -0.4), (2.2, 0.8), ("refined: 3x3 conv,\n2 transposed convs" if refined
        else "transposed conv") + f" k={kernel}", "#d9f0d3")
    _arrow(ax, (10.3, previous + 0.1), (10.3, 0.4))
    _box(ax, (9.2, -1.8), (2.2, 0.8), f"logits x{upsampling(config)} per token\n-> sigmoid mask",
        "#dddddd")
    _arrow(ax, (10.3, -0.4), (10.3, -1.0))
    ax.text(6.4, -2.4, "skip connections: each extracted layer is reduced and added to the "
            "decoder, deepest first", ha="center", fontsize=plotting.MIN_FONT_PT)
    ax.set_title(f"CLIPSeg: ViT {vision.patch_size} px patches, reduce_dim {rd}, "
                 f"{decoder_parameters(model)['decoder']:,} decoder parameters")
    return figure


def _box(
    ax: Axes, corner: tuple[float, float], size: tuple[float, float], label: str, colour: str,
    *, dashed: bool = False,
) -> None:
    """A rounded box with its lower-left `corner` and `size` in data units, label centred."""
    ax.add_patch(FancyBboxPatch(
        corner, *size, boxstyle="round,pad=0.02", facecolor=colour, edgecolor="#555555",
        linestyle="--" if dashed else "-",
    ))
    ax.text(corner[0] + size[0] / 2, corner[1] + size[1] / 2, label, ha="center", va="center",
            fontsize=plotting.MIN_FONT_PT, color="#888888" if dashed else "black")


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float]) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "->", "color": "#333333"})
