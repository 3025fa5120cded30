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
    ViTImageProcessorPil,
)

from clipseg_lib import world
from clipseg_lib.model.original_checkpoint import IMAGENET_MEAN, IMAGENET_STD, ORIGINAL_IMAGE_SIZE
from clipseg_lib.model.random_models import random_model
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.model.vocabulary import write_tokenizer

WORDS = list(dict.fromkeys([
    *"a the cat not photo of left right largest smallest".split(), *world.COLOURS, *world.SHAPES
]))


def full_size_model(*, refined: bool, seed: int = 0) -> CLIPSegForImageSegmentation:
    """ViT-B/16 CLIPSeg with reduce_dim 64, random weights (seeded)."""
    return random_model(refined=refined, seed=seed)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read the notebooks' results run after the notebooks (nbval's items)."""
    items.sort(key=lambda item: item.get_closest_marker("after_notebooks") is not None)


@pytest.fixture(scope="session")
def processor(tmp_path_factory) -> CLIPSegProcessor:
    """CIDAS-style processor: 352 x 352, ImageNet statistics, a small CLIP-format vocabulary."""
    tokenizer = write_tokenizer(tmp_path_factory.mktemp("tokenizer"), WORDS)
    image_processor = ViTImageProcessorPil(
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


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random CLIPSeg (12 layers of width 32, 32 px) saved with its processor."""
    directory = tmp_path_factory.mktemp("tiny-clipseg")
    tokenizer = write_tokenizer(directory, WORDS)
    torch.manual_seed(0)
    config = CLIPSegConfig(
        text_config=CLIPSegTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
            eos_token_id=tokenizer.eos_token_id,
            bos_token_id=tokenizer.bos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ).to_dict(),
        vision_config=CLIPSegVisionConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=12,
            num_attention_heads=2,
        ).to_dict(),
        projection_dim=16,
        reduce_dim=16,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=32,
    )
    CLIPSegForImageSegmentation(config).save_pretrained(directory)
    image_processor = ViTImageProcessorPil(size={"height": 32, "width": 32})
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        directory
    )
    return directory
