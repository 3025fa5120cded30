"""The models the benchmarks time: a full-size random CLIPSeg, `mini`, and the transformers way."""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPSegTextConfig,
    CLIPSegVisionConfig,
    ViTImageProcessor,
)

from clipseg_lib import Segmenter, load_segmenter, world
from clipseg_lib.mini.vocabulary import write_tokenizer
from clipseg_lib.model.original_checkpoint import IMAGENET_MEAN, IMAGENET_STD, ORIGINAL_IMAGE_SIZE

WORDS = ["a", *world.COLOURS, *world.SHAPES]


def full_size_config(*, smoke: bool, refined: bool = True) -> CLIPSegConfig:
    """CIDAS/clipseg-rd64-refined's architecture (ViT-B/16; rd64 with `refined=False`), or a
    tiny one for smoke runs."""
    if smoke:
        vision = CLIPSegVisionConfig(
            image_size=64,
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
            use_complex_transposed_convolution=True,
        )
    return CLIPSegConfig(
        text_config=CLIPSegTextConfig().to_dict(),
        vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
        reduce_dim=64,
        use_complex_transposed_convolution=refined,
    )


def full_size_segmenter(*, smoke: bool, dtype: torch.dtype = torch.float32) -> Segmenter:
    """A randomly initialised (seed 0) full-size CLIPSeg with a CIDAS-style processor."""
    torch.manual_seed(0)
    model = CLIPSegForImageSegmentation(full_size_config(smoke=smoke)).eval()
    size = 64 if smoke else ORIGINAL_IMAGE_SIZE
    image_processor = ViTImageProcessor(
        size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    tokenizer = write_tokenizer(tempfile.mkdtemp(prefix="bench-tokenizer-"), WORDS)
    processor = CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)
    name = "random CLIPSeg " + ("(tiny)" if smoke else "ViT-B/16 rd64-refined")
    return Segmenter(model, processor, name=name, dtype=dtype)


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
