"""The first and last call of every study notebook: seed and load; save numbers and figures."""

from __future__ import annotations

import random
from pathlib import Path

import matplotlib.figure
import numpy as np
import torch

from clipseg_lib.analysis.plotting import save_figure
from clipseg_lib.model.loading import load_segmenter
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.study.results import save_results


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def start(model: str, *, device: str = "cpu", seed: int = 0, dtype: str = "float32") -> Segmenter:
    """Seed everything, load the model (in `dtype`) and print which weights answer."""
    seed_everything(seed)
    segmenter = load_segmenter(model, device=device, dtype=dtype)
    digest = (segmenter.weights_sha256 or "unknown")[:12]
    print(
        f"Model: {segmenter.name} (weights sha256 {digest}..., {segmenter.provenance['dtype']}, "
        f"{segmenter.num_layers} backbone layers, extract layers {segmenter.extract_layers})"
    )
    return segmenter


def finish(
    output_dir: str | Path,
    name: str,
    results: dict,
    *,
    segmenter: Segmenter | None,
    seed: int,
    figures: dict[str, matplotlib.figure.Figure] | None = None,
) -> None:
    """Write `<output_dir>/<name>.json` (with provenance) and `<name>_<figure>.png` files.

    Returns nothing, so a notebook cell ending in this call shows no output.
    """
    for label, figure in (figures or {}).items():
        save_figure(figure, Path(output_dir) / f"{name}_{label}.png")
    save_results(output_dir, name, results, segmenter=segmenter, seed=seed)
