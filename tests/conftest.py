"""Shared fixtures: randomly initialised full-size CLIPSeg models (weights cannot be
downloaded here; equivalence and speed do not depend on weight values)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPSegTextConfig,
    CLIPSegVisionConfig,
)

from clipseg_lib.original_checkpoint import ORIGINAL_IMAGE_SIZE, IMAGENET_MEAN, IMAGENET_STD
from clipseg_lib.segmenter import Segmenter
from clipseg_lib.vocabulary import write_tokenizer
from transformers import ViTImageProcessor

WORDS = "a the red green blue triangle circle square star cat left not photo of".split()


def full_size_model(*, refined: bool, seed: int = 0) -> CLIPSegForImageSegmentation:
    """ViT-B/16 CLIPSeg with reduce_dim 64, random weights (seeded)."""
    torch.manual_seed(seed)
    config = CLIPSegConfig(
        text_config=CLIPSegTextConfig().to_dict(),
        vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
        reduce_dim=64,
        use_complex_transposed_convolution=refined,
    )
    return CLIPSegForImageSegmentation(config).eval()


@pytest.fixture(scope="session")
def processor(tmp_path_factory) -> CLIPSegProcessor:
    """CIDAS-style processor: 352 x 352, ImageNet statistics, a small CLIP-format vocabulary."""
    tokenizer = write_tokenizer(tmp_path_factory.mktemp("tokenizer"), WORDS)
    image_processor = ViTImageProcessor(
        size={"height": ORIGINAL_IMAGE_SIZE, "width": ORIGINAL_IMAGE_SIZE},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


@pytest.fixture(scope="session", params=[False, True], ids=["rd64", "rd64-refined"])
def full_size(request, processor) -> tuple[CLIPSegForImageSegmentation, Segmenter]:
    """(transformers model, Segmenter over the same weights) for both decoder variants."""
    model = full_size_model(refined=request.param)
    return model, Segmenter(model, processor, name=f"random-{request.param}")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A deterministic 200 x 300 RGB test image."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)
