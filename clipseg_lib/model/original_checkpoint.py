"""Load the original repository's decoder checkpoints (timojl/clipseg) into transformers' CLIPSeg.

The released `rd64-uni.pth`, `rd64-uni-refined.pth` and `rd16-uni.pth` hold only the ~1.1M
decoder parameters; the frozen CLIP ViT-B/16 comes from a separate state dict in OpenAI's
layout (`visual.conv1.weight`, `transformer.resblocks.0...`). Keys are renamed as transformers'
own conversion script for CLIPSeg does, with fused attention projections split into q/k/v.
Every file is read with `torch.load(weights_only=True)` (or safetensors): no pickled code runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPSegTextConfig,
    CLIPSegVisionConfig,
    CLIPTokenizer,
    ViTImageProcessorPil,
)

from clipseg_lib.model.hub import DEFAULT_MODEL, hub_snapshot
from clipseg_lib.model.model_files import ModelNotFoundError

#: The original repository normalises with ImageNet statistics at 352 x 352.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
ORIGINAL_IMAGE_SIZE = 352

_RENAMES = [  # (pattern, replacement), applied in order to OpenAI / original decoder names
    (r"^visual\.transformer\.resblocks\.", "clip.vision_model.encoder.layers."),
    (r"^transformer\.resblocks\.", "clip.text_model.encoder.layers."),
    (r"\.ln_1\.", ".layer_norm1."),
    (r"\.ln_2\.", ".layer_norm2."),
    (r"\.mlp\.c_fc\.", ".mlp.fc1."),
    (r"\.mlp\.c_proj\.", ".mlp.fc2."),
    (r"\.attn\.out_proj\.", ".self_attn.out_proj."),
    (r"^token_embedding\.", "clip.text_model.embeddings.token_embedding."),
    (r"^positional_embedding$", "clip.text_model.embeddings.position_embedding.weight"),
    (r"^ln_final\.", "clip.text_model.final_layer_norm."),
    (r"^visual\.class_embedding$", "clip.vision_model.embeddings.class_embedding"),
    (r"^visual\.conv1\.", "clip.vision_model.embeddings.patch_embedding."),
    (r"^visual\.positional_embedding$", "clip.vision_model.embeddings.position_embedding.weight"),
    (r"^visual\.ln_pre\.", "clip.vision_model.pre_layrnorm."),
    (r"^visual\.ln_post\.", "clip.vision_model.post_layernorm."),
    (r"^visual\.proj$", "clip.visual_projection.weight"),
    (r"^text_projection$", "clip.text_projection.weight"),
    (r"^logit_scale$", "clip.logit_scale"),
    (r"^trans_conv\.", "decoder.transposed_convolution."),
    (r"^(film_mul|film_add|reduces)\.", r"decoder.\1."),
    (r"^blocks\.(\d+)\.linear1\.", r"decoder.layers.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.linear2\.", r"decoder.layers.\1.mlp.fc2."),
    (r"^blocks\.(\d+)\.norm1\.", r"decoder.layers.\1.layer_norm1."),
    (r"^blocks\.(\d+)\.norm2\.", r"decoder.layers.\1.layer_norm2."),
    (r"^blocks\.(\d+)\.self_attn\.out_proj\.", r"decoder.layers.\1.self_attn.out_proj."),
]
_FUSED = re.compile(r"^(?P<attention>.*\.(?:attn|self_attn))\.in_proj_(?P<kind>weight|bias)$")
#: Keys of the original files that transformers' model has no place for.
_UNUSED = ("reduce.weight", "reduce.bias")


def config_for_decoder(decoder_state: dict[str, torch.Tensor]) -> CLIPSegConfig:
    """The CLIPSeg (ViT-B/16) config that fits an original decoder state dict."""
    if "film_mul.weight" not in decoder_state:
        raise ValueError(
            "decoder state has no 'film_mul.weight' (the FiLM layer every CLIPSeg decoder "
            f"has): not an original CLIPSeg decoder; its keys start {sorted(decoder_state)[:4]}"
        )
    reduce_dim = decoder_state["film_mul.weight"].shape[0]
    refined = "trans_conv.0.weight" in decoder_state
    depth = len({k.split(".")[1] for k in decoder_state if k.startswith("reduces.")})
    extract_layers = (3, 6, 9)[:depth] if depth <= 3 else tuple(range(depth))
    return CLIPSegConfig(
        text_config=CLIPSegTextConfig().to_dict(),
        vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
        reduce_dim=reduce_dim,
        extract_layers=extract_layers,
        use_complex_transposed_convolution=refined,
    )


def convert_original_state_dict(
    decoder_state: dict[str, torch.Tensor], clip_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map an original decoder + OpenAI CLIP state dict to transformers' CLIPSeg names."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in [*clip_state.items(), *decoder_state.items()]:
        key = key.removeprefix("clip_model.")
        if key in _UNUSED or key.startswith("model."):
            continue  # `model.` is the original's second handle on CLIP's visual tower
        fused = _FUSED.match(key)
        if fused:
            # renamed like its out_proj sibling, then split into q, k, v
            attention = _rename(fused["attention"] + ".out_proj.w").removesuffix(".out_proj.w")
            for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3), strict=True):
                converted[f"{attention}.{name}.{fused['kind']}"] = part
            continue
        new_key = _rename(key)
        if new_key.endswith(("visual_projection.weight", "text_projection.weight")):
            value = value.T
        converted[new_key] = value
    return converted


def load_original_checkpoint(
    decoder_path: str | os.PathLike,
    clip_weights: str | os.PathLike | None,
    *,
    processor_source: str | os.PathLike | None = None,
) -> tuple[CLIPSegForImageSegmentation, CLIPSegProcessor]:
    """Build a model from an original decoder `.pth` and a CLIP ViT-B/16 state dict.

    The processor normalises as the original repository did (ImageNet statistics, 352 x 352);
    its tokenizer comes from `processor_source` (a directory holding a CLIP tokenizer), by
    default from the cached or downloaded DEFAULT_MODEL (found before any weights are read).
    """
    if clip_weights is None:
        raise ValueError(
            f"{Path(decoder_path).name} holds only the decoder: pass clip_weights=<path to a "
            "CLIP ViT-B/16 state dict (.pt/.pth saved with torch.save(model.state_dict()) or "
            ".safetensors)>"
        )
    tokenizer_directory = _tokenizer_directory(processor_source, decoder_path)
    decoder_state = read_state_dict(decoder_path)
    clip_state = read_state_dict(clip_weights)
    try:
        config = config_for_decoder(decoder_state)
    except ValueError as error:
        raise ValueError(f"decoder checkpoint {str(decoder_path)!r}: {error}") from error
    model = CLIPSegForImageSegmentation(config)
    state = convert_original_state_dict(decoder_state, clip_state)
    expected = model.state_dict()
    missing = sorted(k for k in expected.keys() - state.keys() if not k.endswith("position_ids"))
    unexpected = sorted(state.keys() - expected.keys())
    misshapen = sorted(
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state.keys() & expected.keys()
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or misshapen:
        raise ValueError(
            f"{decoder_path} + {clip_weights} do not fit CLIPSeg ViT-B/16: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, shape mismatches {misshapen[:5]}"
        )
    model.load_state_dict(state, strict=False)
    return model.eval(), original_processor(tokenizer_directory)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a `.pth`/`.pt` (weights only, never unpickling code) or `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r}: no such file")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(
            f"weights file {str(path)!r} cannot be loaded safely (corrupt or truncated, not a "
            f"weights file, or a pickle weights_only=True refuses): {type(error).__name__}: "
            f"{str(error)[:200]}"
        ) from error
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {str(path)!r} is not a state dict of tensors")
    return state


def _rename(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def original_processor(tokenizer_directory: str | os.PathLike) -> CLIPSegProcessor:
    """ImageNet-normalised 352 x 352 image processor with the CLIP tokenizer saved in
    `tokenizer_directory`."""
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_directory, local_files_only=True)
    image_processor = ViTImageProcessorPil(
        size={"height": ORIGINAL_IMAGE_SIZE, "width": ORIGINAL_IMAGE_SIZE},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    return CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


def _tokenizer_directory(
    source: str | os.PathLike | None, decoder_path: str | os.PathLike
) -> Path:
    """`source`, or DEFAULT_MODEL's snapshot, with a message saying how to name another."""
    if source is not None:
        return Path(source)
    try:
        return hub_snapshot(DEFAULT_MODEL)
    except ModelNotFoundError as error:
        raise ModelNotFoundError(
            f"{Path(decoder_path).name} needs a CLIP tokenizer: pass processor=<a directory or "
            f"hub id holding one>. The default, {DEFAULT_MODEL}, is unavailable: {error}"
        ) from error
