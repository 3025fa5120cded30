"""``dtype="int8"``: the vision backbone's linear layers quantized, everything else float32,
recorded as the segmenter's precision (provenance, the encoding cache's key)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from clipseg_lib import load_segmenter
from clipseg_lib.model.encoding_cache import encoding_key
from clipseg_lib.model.quantization import quantize_backbone
from clipseg_lib.model.random_models import random_segmenter


def linear_kinds(module: nn.Module) -> set[str]:
    return {type(child).__module__ for child in module.modules()
            if type(child).__name__ == "Linear"}


def test_int8_quantizes_the_vision_backbone_only(tmp_path: Path) -> None:
    exact = random_segmenter(tmp_path / "a", smoke=True)
    quantized = quantize_backbone(random_segmenter(tmp_path / "b", smoke=True))
    assert linear_kinds(exact.model.clip.vision_model) == {"torch.nn.modules.linear"}
    assert linear_kinds(quantized.model.clip.vision_model) == {
        "torch.ao.nn.quantized.dynamic.modules.linear"}
    assert linear_kinds(quantized.model.clip.text_model) == {"torch.nn.modules.linear"}
    assert linear_kinds(quantized.model.decoder) == {"torch.nn.modules.linear"}
    assert (quantized.provenance["dtype"], exact.provenance["dtype"]) == ("int8", "float32")
    twin = quantized.with_processor(quantized.processor, name="twin")
    assert twin.precision == "int8"

    image = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    prompts = ["a red circle", "a blue square"]
    difference = np.abs(quantized.predict(image, prompts) - exact.predict(image, prompts))
    assert 0 < difference.mean() < 0.02  # changed, a little
    digest = b"\x00" * 16
    assert encoding_key(exact, digest, (48, 48), 2) != encoding_key(quantized, digest, (48, 48), 2)


def test_int8_loads_by_name_and_refuses_what_it_cannot_quantize(tmp_path: Path) -> None:
    assert load_segmenter("mini", dtype="int8").provenance["dtype"] == "int8"
    with pytest.raises(ValueError, match="quantizes a float32 model, not a bfloat16 one"):
        quantize_backbone(random_segmenter(tmp_path, smoke=True, dtype=torch.bfloat16))
    segmenter = random_segmenter(tmp_path, smoke=True)
    segmenter.device = torch.device("cuda")  # only its name is read before refusing
    with pytest.raises(ValueError, match="CPU only, not on cuda"):
        quantize_backbone(segmenter)
    with pytest.raises(ValueError, match="try 'float32', 'bfloat16' or 'int8'"):
        load_segmenter("mini", dtype="int4")
