"""load_segmenter: offline first, clear errors, and defined behaviour for every kind of prompt."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

from clipseg_lib import ImagePrompt, ModelNotFoundError, load_segmenter, mix
from clipseg_lib.model.loading import resolve_model_source


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_segmenter(tiny_model_dir)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)


def test_uncached_hub_model_offline_says_how_to_get_it(offline_hub):
    with pytest.raises(ModelNotFoundError) as error:
        load_segmenter("CIDAS/clipseg-rd64-refined")
    message = str(error.value)
    assert "CIDAS/clipseg-rd64-refined" in message and "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download" in message and "load_segmenter('mini')" in message


def test_auto_falls_back_to_mini_offline(offline_hub):
    assert resolve_model_source("auto") == "mini"
    assert resolve_model_source("mini") == "mini"


@pytest.mark.parametrize("source", ["./no/such/dir", "/tmp/definitely/not/here", "nope.pth"])
def test_missing_local_paths(source):
    with pytest.raises(ModelNotFoundError, match="no such file|not a directory"):
        load_segmenter(source)


def test_directory_without_processor(tmp_path, tiny_model_dir):
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelNotFoundError, match="processor config"):
        load_segmenter(tmp_path)


def test_config_that_does_not_fit_the_weights(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["vision_config"]["hidden_size"] = 48
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit its config"):
        load_segmenter(broken)


def test_bad_dtype():
    with pytest.raises(ValueError, match="not a torch dtype"):
        load_segmenter("mini", dtype="float7")


def test_provenance_names_the_weights(tiny, tiny_model_dir):
    assert tiny.provenance["model"] == str(tiny_model_dir)
    assert len(tiny.provenance["weights_sha256"]) == 64


IMAGE = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "prompts,problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ([], "empty list"),
        (None, "None"),
        (["ok", None], "prompt 1 is None"),
        ([3.5], "prompt 0 has type float"),
        ([np.zeros(5)], r"prompt 0: embedding shape \(5,\)"),
        ([np.full(16, np.nan)], "NaN"),
    ],
)
def test_bad_prompts_are_refused(tiny, prompts, problem):
    with pytest.raises(ValueError, match=problem):
        tiny.predict(IMAGE, prompts)


def test_long_prompt_is_truncated_with_a_warning(tiny):
    long_prompt = " ".join(["red triangle"] * 40)
    with pytest.warns(UserWarning, match="truncated"):
        probs = tiny.predict(IMAGE, long_prompt)
    assert probs.shape == (1, 40, 50)


def test_non_ascii_and_emoji_prompts_work(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = tiny.predict(IMAGE, ["chat noir 🐈", "Ærø ümlaut"])
    assert probs.shape == (2, 40, 50) and np.isfinite(probs).all()


def test_mixed_prompt_list(tiny):
    support = np.zeros((20, 20, 3), dtype=np.uint8)
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:15, 5:15] = True
    image_prompt = ImagePrompt(support, mask)
    prompts = ["red", image_prompt, mix("red", image_prompt, 0.5), np.ones(16, dtype=np.float32)]
    assert tiny.predict(IMAGE, prompts).shape == (4, 40, 50)


def test_image_prompt_with_empty_mask_is_refused(tiny):
    prompt = ImagePrompt(np.zeros((8, 8, 3), dtype=np.uint8), np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="mask is empty"):
        tiny.predict(IMAGE, [prompt])


def test_same_seed_same_numbers(tiny_model_dir):
    first = load_segmenter(tiny_model_dir).predict(IMAGE, ["red", "the cat"])
    second = load_segmenter(tiny_model_dir).predict(IMAGE, ["red", "the cat"])
    assert np.array_equal(first, second)


def test_extract_layers_deeper_than_the_encoding(tiny):
    encoding = tiny.encode_image(IMAGE)
    with pytest.raises(ValueError, match="max_layer=12"):
        tiny.predict_logits(encoding, "red", extract_layers=(3, 7, 11))


def test_very_large_image_is_segmented_with_bounded_memory(tiny):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    image = np.zeros((10000, 10000, 3), dtype=np.uint8)  # 300 MB of pixels
    image[2000:6000, 3000:7000] = (200, 30, 30)
    probs = tiny.predict(image, "red")
    assert probs.shape == (1, 10000, 10000) and probs.dtype == np.float32
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    assert grown < 3 * 1024  # pixels + one float32 map + resizing buffers, not a copy per step
