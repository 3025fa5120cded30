"""The original repository's .pth decoders map onto transformers' CLIPSeg, key for key and
number for number (random tensors of the released shapes; no pretrained weights exist here)."""

from __future__ import annotations

import hashlib
import math
import pickle

import pytest
import torch
from torch import nn

from clipseg_lib import ModelNotFoundError, load_segmenter
from clipseg_lib.model.loading import file_sha256
from clipseg_lib.model.original_checkpoint import (
    IMAGENET_MEAN,
    config_for_decoder,
    convert_original_state_dict,
    load_original_checkpoint,
    read_state_dict,
)

pytestmark = pytest.mark.slow  # left out of `make test-fast`


def openai_clip_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random tensors with the shapes and names of OpenAI's CLIP ViT-B/16 state dict."""
    shapes = {
        "visual.class_embedding": (768,),
        "visual.positional_embedding": (197, 768),
        "visual.conv1.weight": (768, 3, 16, 16),
        "visual.proj": (768, 512),
        "token_embedding.weight": (49408, 512),
        "positional_embedding": (77, 512),
        "text_projection": (512, 512),
        "logit_scale": (),
    }
    for prefix, width in (("visual.", 768), ("", 512)):
        norms = ["ln_final"] if not prefix else ["visual.ln_pre", "visual.ln_post"]
        shapes.update({f"{n}.{p}": (width,) for n in norms for p in ("weight", "bias")})
        for layer in range(12):
            block = f"{prefix}transformer.resblocks.{layer}."
            shapes.update(
                {
                    block + "attn.in_proj_weight": (3 * width, width),
                    block + "attn.in_proj_bias": (3 * width,),
                    block + "attn.out_proj.weight": (width, width),
                    block + "attn.out_proj.bias": (width,),
                    block + "mlp.c_fc.weight": (4 * width, width),
                    block + "mlp.c_fc.bias": (4 * width,),
                    block + "mlp.c_proj.weight": (width, 4 * width),
                    block + "mlp.c_proj.bias": (width,),
                    **{block + f"ln_{i}.{p}": (width,) for i in (1, 2) for p in ("weight", "bias")},
                }
            )
    return {k: torch.randn(s, generator=generator) * 0.02 for k, s in shapes.items()}


class OriginalDecoder(nn.Module):
    """The paper's decoder as the original code lays it out (sequence-first PyTorch blocks)."""

    def __init__(self, reduce_dim: int, refined: bool) -> None:
        super().__init__()
        self.film_mul, self.film_add = nn.Linear(512, reduce_dim), nn.Linear(512, reduce_dim)
        self.reduce = nn.Linear(768, reduce_dim)  # present in the released files, unused
        self.reduces = nn.ModuleList(nn.Linear(768, reduce_dim) for _ in range(3))
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(reduce_dim, 4) for _ in range(3))
        if refined:
            self.trans_conv = nn.Sequential(
                nn.Conv2d(reduce_dim, reduce_dim, 3, padding=1),
                nn.ReLU(),
                nn.ConvTranspose2d(reduce_dim, reduce_dim // 2, 4, stride=4),
                nn.ReLU(),
                nn.ConvTranspose2d(reduce_dim // 2, 1, 4, stride=4),
            )
        else:
            self.trans_conv = nn.ConvTranspose2d(reduce_dim, 1, 16, stride=16)

    def forward(self, activations: list[torch.Tensor], cond: torch.Tensor) -> torch.Tensor:
        a = None
        for i, (activation, block, reduce) in enumerate(
            zip(activations[::-1], self.blocks, self.reduces, strict=True)
        ):
            a = reduce(activation) if a is None else reduce(activation) + a
            if i == 0:
                a = self.film_mul(cond) * a + self.film_add(cond)
            a = block(a)
        a = a[1:].permute(1, 2, 0)
        size = int(math.sqrt(a.shape[2]))
        return self.trans_conv(a.reshape(a.shape[0], a.shape[1], size, size))[:, 0]


@pytest.fixture(scope="module")
def clip_state():
    return openai_clip_state(torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory, clip_state):
    path = tmp_path_factory.mktemp("clip") / "clip-vit-b16.pth"
    torch.save(clip_state, path)
    return path


@pytest.mark.parametrize(
    "name,reduce_dim,refined",
    [("rd64-uni", 64, False), ("rd64-uni-refined", 64, True), ("rd16-uni", 16, False)],
)
def test_decoder_checkpoint_maps_key_for_key_and_number_for_number(
    tmp_path, clip_state, clip_file, processor, name, reduce_dim, refined
):
    torch.manual_seed(1)
    original = OriginalDecoder(reduce_dim, refined).eval()
    decoder_file = tmp_path / f"{name}.pth"
    torch.save(original.state_dict(), decoder_file)
    assert (
        sum(p.numel() for k, p in original.state_dict().items() if not k.startswith("reduce."))
        > 1e5
    )

    model, _ = load_original_checkpoint(
        decoder_file, clip_file, processor_source=_processor_dir(tmp_path, processor)
    )
    assert model.config.reduce_dim == reduce_dim
    assert model.config.use_complex_transposed_convolution is refined
    layer = model.clip.vision_model.encoder.layers[5].self_attn
    fused = clip_state["visual.transformer.resblocks.5.attn.in_proj_weight"]
    assert torch.equal(layer.k_proj.weight, fused[768:1536])
    assert torch.equal(model.clip.visual_projection.weight, clip_state["visual.proj"].T)

    activations = [torch.randn(2, 485, 768) for _ in range(3)]  # 22 x 22 tokens + CLS
    cond = torch.randn(2, 512)
    with torch.inference_mode():
        expected = original([a.transpose(0, 1) for a in activations], cond)
        actual = model.decoder(activations, cond).logits
    assert actual.shape == expected.shape == (2, 352, 352)
    assert (actual - expected).abs().max() <= 1e-4


def _processor_dir(tmp_path, processor):
    directory = tmp_path / "processor"
    processor.save_pretrained(directory)
    return directory


def test_config_is_read_from_the_decoder_shapes():
    refined = OriginalDecoder(64, True).state_dict()
    config = config_for_decoder(refined)
    assert config.vision_config.patch_size == 16 and config.extract_layers == (3, 6, 9)
    assert config.use_complex_transposed_convolution


def test_decoder_without_clip_weights_is_refused(tmp_path):
    path = tmp_path / "rd64-uni.pth"
    torch.save(OriginalDecoder(64, False).state_dict(), path)
    with pytest.raises(ValueError, match="holds only the decoder"):
        load_original_checkpoint(path, None)


def test_unused_and_duplicate_keys_are_dropped(clip_state):
    decoder = OriginalDecoder(16, False).state_dict()
    extra = {"clip_model." + k: v for k, v in list(clip_state.items())[:3]}
    extra["model.conv1.weight"] = torch.zeros(1)
    converted = convert_original_state_dict({**decoder, **extra}, {})
    assert not any(k.startswith(("reduce.", "model.", "clip_model.")) for k in converted)
    assert "clip.vision_model.embeddings.class_embedding" in converted


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/clipseg_pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4:UserWarning")  # torch's, on refusal
def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    import os

    marker = "/tmp/clipseg_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "rd64-uni.pth"
    with open(path, "wb") as handle:
        pickle.dump({"film_mul.weight": _Exploit()}, handle)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        read_state_dict(path)
    assert not os.path.exists(marker)


def test_non_tensor_content_is_refused(tmp_path):
    path = tmp_path / "numbers.pth"
    torch.save({"a": 1}, path)
    with pytest.raises(ValueError, match="not a state dict of tensors"):
        read_state_dict(path)


def test_a_decoder_missing_a_key_names_it(tmp_path, clip_file):
    state = OriginalDecoder(64, False).state_dict()
    del state["film_mul.weight"]
    path = tmp_path / "rd64-uni.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="rd64-uni.pth.*no 'film_mul.weight'"):
        load_original_checkpoint(path, clip_file, processor_source=tmp_path)


def test_clip_weights_of_another_shape_name_the_tensor(tmp_path, clip_state, processor):
    decoder_file = tmp_path / "rd64-uni.pth"
    torch.save(OriginalDecoder(64, False).state_dict(), decoder_file)
    clip_file = tmp_path / "clip.pth"
    torch.save({**clip_state, "visual.proj": torch.zeros(768, 256)}, clip_file)
    with pytest.raises(ValueError, match=r"shape mismatches \['clip.visual_projection.weight"):
        load_original_checkpoint(
            decoder_file, clip_file, processor_source=_processor_dir(tmp_path, processor)
        )


def test_pth_model_with_a_named_processor_records_both_files(tmp_path, clip_file, processor):
    decoder_file = tmp_path / "rd16-uni.pth"
    torch.manual_seed(2)
    torch.save(OriginalDecoder(16, False).state_dict(), decoder_file)
    segmenter = load_segmenter(
        decoder_file, clip_weights=clip_file, processor=_processor_dir(tmp_path, processor)
    )
    both = hashlib.sha256(decoder_file.read_bytes() + clip_file.read_bytes()).hexdigest()
    assert segmenter.provenance["kind"] == "original_checkpoint"
    assert segmenter.provenance["weights_files"] == ["rd16-uni.pth", "clip-vit-b16.pth"]
    assert segmenter.weights_sha256 == both != file_sha256(decoder_file)
    assert segmenter.processor.tokenizer.tokenize("red cat") == ["red</w>", "cat</w>"]
    assert list(segmenter.processor.image_processor.image_mean) == IMAGENET_MEAN


def test_pth_model_without_a_tokenizer_offline_says_how_to_name_one(
    tmp_path, clip_file, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    decoder_file = tmp_path / "rd64-uni.pth"
    torch.save(OriginalDecoder(64, False).state_dict(), decoder_file)
    with pytest.raises(ModelNotFoundError) as error:
        load_segmenter(decoder_file, clip_weights=clip_file)
    message = str(error.value)
    assert "rd64-uni.pth needs a CLIP tokenizer: pass processor=" in message
    assert "HF_HUB_OFFLINE is set" in message and "hf download" in message
    with pytest.raises(ModelNotFoundError, match="processor 'no/such-processor'"):
        load_segmenter(decoder_file, clip_weights=clip_file, processor="no/such-processor")
