"""write_hub_cache: a random model in the CIDAS layout that load_segmenter finds offline."""

from __future__ import annotations

import numpy as np
import pytest

from clipseg_lib import load_segmenter
from clipseg_lib.model import random_models
from clipseg_lib.model.random_models import installed_clip_bpe, write_hub_cache

pytestmark = pytest.mark.slow  # left out of `make test-fast`


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    """An empty Hugging Face cache under tmp_path, offline (as HF_HOME=tmp_path would give)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return tmp_path


def test_offline_load_of_the_cidas_id_with_the_small_vocabulary(hf_home, monkeypatch):
    monkeypatch.setattr(random_models, "installed_clip_bpe", lambda: None)
    snapshot = write_hub_cache(hf_home, "CIDAS/clipseg-rd64", seed=3, smoke=True)
    storage = hf_home / "hub" / "models--CIDAS--clipseg-rd64"
    assert (storage / "refs" / "main").read_text() == snapshot.name and len(snapshot.name) == 40
    segmenter = load_segmenter("CIDAS/clipseg-rd64")
    assert segmenter.name == "CIDAS/clipseg-rd64" and len(segmenter.weights_sha256) == 64
    assert segmenter.model.config.use_complex_transposed_convolution is False
    assert len(segmenter.processor.tokenizer) < 2000
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert segmenter.predict(image, ["a cat", "a red square"]).shape == (2, 40, 60)


def test_same_seed_same_weights(tmp_path):
    first = write_hub_cache(tmp_path / "a", seed=1, smoke=True)
    second = write_hub_cache(tmp_path / "b", seed=1, smoke=True)
    other = write_hub_cache(tmp_path / "c", seed=2, smoke=True)
    weights = [(d / "model.safetensors").read_bytes() for d in (first, second, other)]
    assert weights[0] == weights[1] != weights[2]


@pytest.mark.skipif(installed_clip_bpe() is None, reason="open_clip_torch is not installed")
def test_real_clip_vocabulary(hf_home):
    write_hub_cache(hf_home, smoke=True)
    tokenizer = load_segmenter("CIDAS/clipseg-rd64-refined").processor.tokenizer
    assert len(tokenizer) == 49408
    # the ids openai/clip-vit-base-patch16 gives
    assert tokenizer("a photo of a cat")["input_ids"] == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_unknown_repo_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="CIDAS/clipseg-rd64-refined"):
        write_hub_cache(tmp_path, "CIDAS/clipseg-rd32", smoke=True)
