"""Randomly initialised CLIPSeg models of the released architectures.

Pretrained weights cannot be downloaded where this project is built, so correctness against
transformers, speed and fine-tuning are checked on these: the computation does not depend on
the weight values. Seeded, so two builds are identical.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPSegTextConfig,
    CLIPSegVisionConfig,
    ViTImageProcessor,
)

from clipseg_lib.model.original_checkpoint import IMAGENET_MEAN, IMAGENET_STD, ORIGINAL_IMAGE_SIZE
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.model.vocabulary import write_tokenizer

DEFAULT_WORDS = (
    "a", "the", "photo", "of", "not", "cat", "dog", "red", "green", "blue", "yellow", "purple",
    "orange", "circle", "square", "triangle", "star", "hexagon", "left", "right",
)
SMOKE_IMAGE_SIZE = 64


def full_size_config(*, smoke: bool = False, refined: bool = True) -> CLIPSegConfig:
    """CIDAS/clipseg-rd64-refined's architecture (ViT-B/16, reduce_dim 64; the plain rd64
    decoder with `refined=False`), or a tiny one of the same shape of code for smoke runs."""
    if smoke:
        vision = CLIPSegVisionConfig(
            image_size=SMOKE_IMAGE_SIZE,
            patch_size=16,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
        )
        text = CLIPSegTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
        )
        return CLIPSegConfig(
            text_config=text.to_dict(),
            vision_config=vision.to_dict(),
            projection_dim=16,
            reduce_dim=16,
            decoder_intermediate_size=32,
            use_complex_transposed_convolution=refined,
        )
    return CLIPSegConfig(
        text_config=CLIPSegTextConfig().to_dict(),
        vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
        reduce_dim=64,
        use_complex_transposed_convolution=refined,
    )


def random_model(*, smoke: bool = False, refined: bool = True, seed: int = 0):
    """A seeded random `CLIPSegForImageSegmentation` of `full_size_config`, in eval mode."""
    torch.manual_seed(seed)
    return CLIPSegForImageSegmentation(full_size_config(smoke=smoke, refined=refined)).eval()


def random_processor(
    directory: str | os.PathLike, *, smoke: bool = False, words: Sequence[str] = DEFAULT_WORDS
) -> CLIPSegProcessor:
    """A CIDAS-style processor (ImageNet statistics, 352 px or 64 px for smoke runs) whose
    CLIP-format vocabulary of `words` is written into `directory`."""
    size = SMOKE_IMAGE_SIZE if smoke else ORIGINAL_IMAGE_SIZE
    image_processor = ViTImageProcessor(
        size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    tokenizer = write_tokenizer(directory, list(dict.fromkeys(words)))
    return CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_random_model(
    directory: str | os.PathLike,
    *,
    smoke: bool = False,
    refined: bool = True,
    seed: int = 0,
    words: Sequence[str] = DEFAULT_WORDS,
) -> Path:
    """Write a random model with its processor as `save_pretrained` does (a directory that
    `load_segmenter(directory)` loads). Returns the directory."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    processor = random_processor(target, smoke=smoke, words=words)
    random_model(smoke=smoke, refined=refined, seed=seed).save_pretrained(target)
    processor.save_pretrained(target)
    return target


def random_segmenter(
    directory: str | os.PathLike,
    *,
    smoke: bool = False,
    refined: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Segmenter:
    """A `Segmenter` over `random_model`, its tokenizer files written into `directory`."""
    processor = random_processor(directory, smoke=smoke)
    name = "random CLIPSeg " + ("(tiny)" if smoke else "ViT-B/16 rd64" + "-refined" * refined)
    return Segmenter(
        random_model(smoke=smoke, refined=refined, seed=seed), processor, name=name, dtype=dtype
    )
