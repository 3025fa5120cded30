"""The models the benchmarks time: a full-size random CLIPSeg, `mini`, and the transformers way."""

from __future__ import annotations

import tempfile

import numpy as np
import torch

from clipseg_lib import Segmenter, load_segmenter
from clipseg_lib.model.random_models import random_segmenter


def full_size_segmenter(*, smoke: bool, dtype: torch.dtype = torch.float32) -> Segmenter:
    """A randomly initialised (seed 0) rd64-refined CLIPSeg with a CIDAS-style processor."""
    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as directory:
        return random_segmenter(directory, smoke=smoke, dtype=dtype)


def mini_segmenter(dtype: torch.dtype) -> Segmenter:
    """The bundled `mini` model."""
    return load_segmenter("mini", dtype=dtype)


@torch.inference_mode()
def transformers_logits(
    segmenter: Segmenter, image: np.ndarray, prompts: list[str], *, extract_layers=None
) -> torch.Tensor:
    """What transformers' documentation does: the image repeated once per prompt, one forward."""
    model = segmenter.model
    inputs = segmenter.processor(
        text=prompts, images=[image] * len(prompts), padding=True, return_tensors="pt"
    )
    saved = model.extract_layers
    model.extract_layers = extract_layers or saved
    try:
        return model(**inputs).logits
    finally:
        model.extract_layers = saved
