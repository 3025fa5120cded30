"""load_segmenter: offline first, clear errors, and defined behaviour for every kind of prompt."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import clipseg_lib.model
from clipseg_lib import (
    DEFAULT_MODEL,
    Embedding,
    ImagePrompt,
    Mix,
    ModelNotFoundError,
    load_segmenter,
    mix,
)
from clipseg_lib.model.loading import (
    BUNDLED_MODELS,
    file_sha256,
    model_kind,
    resolve_model_source,
)
from clipseg_lib.model.segmenter import MODEL_KINDS
from clipseg_lib.model.vocabulary import write_tokenizer

pytestmark = pytest.mark.slow  # left out of `make test-fast`


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
    assert "`hf download CIDAS/clipseg-rd64-refined`" in message
    assert "load_segmenter('mini')" in message
    # the command exists: huggingface_hub >= 1 installs `hf`, not `huggingface-cli`
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts["hf"].startswith("huggingface_hub.")


def test_auto_falls_back_to_mini_offline(offline_hub):
    assert resolve_model_source("auto") == "mini"
    assert resolve_model_source("mini") == "mini"


@pytest.mark.parametrize("source", ["./no/such/dir", "/tmp/definitely/not/here", "nope.pth"])
def test_missing_local_paths(source):
    with pytest.raises(ModelNotFoundError, match="no such file|not a directory"):
        load_segmenter(source)


@pytest.mark.parametrize(
    "removed,problem",
    [
        (["model.safetensors"], "lacks model.safetensors or pytorch_model.bin; save the model"),
        (["processor_config.json"], "lacks processor_config.json or preprocessor_config.json"),
        (["tokenizer.json", "vocab.json", "merges.txt"],
         "lacks tokenizer.json or vocab.json [+] merges.txt"),
    ],
)
def test_directory_lacking_a_file_names_it(tmp_path, tiny_model_dir, removed, problem):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    for name in removed:
        (broken / name).unlink()
    with pytest.raises(ModelNotFoundError, match=problem):
        load_segmenter(broken)


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"vision_config": {"num_hidden_layers": 13}},
         r"missing keys clip\.vision_model\.encoder\.layers\.12\."),
        ({"use_complex_transposed_convolution": True},
         r"missing keys decoder\.transposed_convolution\.0\.bias.*"
         r"unexpected keys decoder\.transposed_convolution\.bias"),
        ({"extract_layers": [3, 6]}, r"unexpected keys decoder\.layers\.2\."),
        ({"vision_config": {"hidden_size": 48}},
         r"shape mismatches clip\.vision_model\.\S+ \(32,\) vs \(48,\)"),
    ],
    ids=["13 layers", "complex decoder", "two extract layers", "hidden size"],
)
def test_config_that_does_not_fit_the_weights(tmp_path, tiny_model_dir, change, problem):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    for key, value in change.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not fit its config: " + problem):
        load_segmenter(broken)


def test_truncated_weights_name_the_file(tmp_path, tiny_model_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4000])
    with pytest.raises(ValueError, match="model.safetensors cannot be read") as error:
        load_segmenter(broken)
    assert type(error.value) is ValueError and str(weights) in str(error.value)


def test_sharded_weights_are_fingerprinted_in_order(tmp_path, tiny_model_dir):
    sharded = tmp_path / "sharded"
    shutil.copytree(tiny_model_dir, sharded)
    state = load_file(sharded / "model.safetensors")
    (sharded / "model.safetensors").unlink()
    keys = sorted(state)
    shards = {"model-00002.safetensors": keys[::2], "model-00001.safetensors": keys[1::2]}
    for shard, shard_keys in shards.items():
        save_file({k: state[k] for k in shard_keys}, sharded / shard, metadata={"format": "pt"})
    weight_map = {key: shard for shard, shard_keys in shards.items() for key in shard_keys}
    index = {"metadata": {}, "weight_map": weight_map}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    segmenter = load_segmenter(sharded)
    ordered = [sharded / "model-00001.safetensors", sharded / "model-00002.safetensors"]
    assert segmenter.provenance["weights_files"] == [path.name for path in ordered]
    both = b"".join(path.read_bytes() for path in ordered)
    assert segmenter.weights_sha256 == hashlib.sha256(both).hexdigest()
    (sharded / "model.safetensors.index.json").write_text("[]")
    with pytest.raises(ValueError, match="model.safetensors.index.json: not a shard index"):
        load_segmenter(sharded)


def test_a_tokenizer_of_another_model_is_refused(tmp_path, tiny_model_dir):
    other = tmp_path / "other"
    shutil.copytree(tiny_model_dir, other)
    write_tokenizer(other, [f"word{number}" for number in range(300)])
    with pytest.raises(ValueError, match=r"tokenizer has \d+ tokens but the text embedding"):
        load_segmenter(tiny_model_dir, processor=other)


def test_a_processor_from_another_directory(tmp_path, tiny_model_dir):
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, weights_only / name)
    segmenter = load_segmenter(weights_only, processor=tiny_model_dir)
    expected = load_segmenter(tiny_model_dir).predict(IMAGE, ["red", "the cat"])
    assert np.array_equal(segmenter.predict(IMAGE, ["red", "the cat"]), expected)
    with pytest.raises(ModelNotFoundError, match="processor '/no/such/processor'"):
        load_segmenter(weights_only, processor="/no/such/processor")


def test_bad_dtype():
    with pytest.raises(ValueError, match="not a float torch dtype"):
        load_segmenter("mini", dtype="float7")


def test_provenance_names_the_weights(tiny, tiny_model_dir):
    assert tiny.provenance["model"] == str(tiny_model_dir)
    assert tiny.provenance["kind"] == "directory" == model_kind(tiny_model_dir)
    assert tiny.provenance["weights_files"] == ["model.safetensors"]
    assert tiny.provenance["weights_sha256"] == file_sha256(tiny_model_dir / "model.safetensors")
    assert MODEL_KINDS["directory"].startswith("local directory")


def test_bundled_model_provenance():
    mini = load_segmenter("mini")
    assert mini.provenance["kind"] == "bundled" == model_kind("mini")
    assert mini.provenance["weights_sha256"] == BUNDLED_MODELS["mini"][1]
    assert model_kind("rd64-uni.pth") == "original_checkpoint"
    assert model_kind("CIDAS/clipseg-rd64") == "hub"


def _hub_cache(hub: Path, repo_id: str, source: Path, files: list[str]) -> Path:
    """A Hugging Face cache entry for `repo_id` holding `files` of `source`."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    entry = hub / f"models--{repo_id.replace('/', '--')}"
    snapshot = entry / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(revision)
    for name in files:
        shutil.copy(source / name, snapshot / name)
    return snapshot


PROCESSOR_FILES = ["processor_config.json", "tokenizer.json", "tokenizer_config.json",
                   "vocab.json", "merges.txt"]


def test_a_cache_with_only_pytorch_model_bin_loads(offline_hub, tmp_path, tiny, tiny_model_dir):
    bin_model = tmp_path / "bin"
    bin_model.mkdir()
    torch.save(tiny.model.state_dict(), bin_model / "pytorch_model.bin")
    snapshot = _hub_cache(
        tmp_path / "hub", "CIDAS/clipseg-rd64", tiny_model_dir, ["config.json", *PROCESSOR_FILES]
    )
    shutil.copy(bin_model / "pytorch_model.bin", snapshot / "pytorch_model.bin")
    segmenter = load_segmenter("CIDAS/clipseg-rd64")
    assert segmenter.provenance["kind"] == "hub"
    assert segmenter.provenance["weights_files"] == ["pytorch_model.bin"]
    assert segmenter.weights_sha256 == file_sha256(snapshot / "pytorch_model.bin")
    loaded, expected = segmenter.model.state_dict(), tiny.model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], expected[key]) for key in expected)
    np.testing.assert_allclose(
        segmenter.predict(IMAGE, "red"), tiny.predict(IMAGE, "red"), atol=1e-6
    )


def test_a_partial_cache_says_how_to_complete_it(offline_hub, tmp_path, tiny_model_dir):
    weights = ["config.json", "model.safetensors"]
    _hub_cache(tmp_path / "hub", DEFAULT_MODEL, tiny_model_dir, weights)
    with pytest.raises(ModelNotFoundError, match=f"lacks .*`hf download {DEFAULT_MODEL}`"):
        load_segmenter(DEFAULT_MODEL)
    assert resolve_model_source("auto") == "mini"


def test_a_processor_from_the_hub_cache(offline_hub, tmp_path, tiny_model_dir):
    _hub_cache(tmp_path / "hub", "someone/tokenizer", tiny_model_dir, PROCESSOR_FILES)
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / name, weights_only / name)
    segmenter = load_segmenter(weights_only, processor="someone/tokenizer")
    assert segmenter.processor.tokenizer.tokenize("red cat") == ["red</w>", "cat</w>"]


def test_the_model_core_has_no_import_cycle():
    """No module of clipseg_lib.model imports, even inside a function, one that imports it."""
    package = Path(clipseg_lib.model.__file__).parent
    imports = {}
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text())
        imports[path.stem] = {
            node.module.removeprefix("clipseg_lib.model.")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clipseg_lib.")
        }
    assert "loading" not in imports["original_checkpoint"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        return any(
            module == target or (module not in seen and reaches(module, target, seen | {module}))
            for module in imports.get(start, ())
        )

    assert [module for module in imports if reaches(module, module, set())] == []


IMAGE = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
IMAGE_PROMPT = ImagePrompt(np.zeros((8, 8, 3), dtype=np.uint8), np.ones((8, 8), dtype=bool))


@pytest.mark.parametrize(
    "prompts,problem",
    [
        ("", "empty"),
        ("   ", "empty"),
        ([], "empty list"),
        (None, "None"),
        (["ok", None], "prompt 1 is None"),
        ([3.5], "prompt 0 has type float"),
        (5, "prompt 0 has type int"),
        (b"red", "prompt 0 has type bytes"),
        ({"red": 1}, "prompt 0 has type dict"),
        (("red", b"cat"), "prompt 1 has type bytes"),
        ([Embedding(np.array(["a"] * 16))], "prompt 0: embedding is not an array of numbers"),
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


@pytest.mark.parametrize(
    "arguments,problem",
    [
        ((None, IMAGE_PROMPT), "Mix text has type NoneType: expected a string"),
        (("red", np.zeros((4, 4, 3))), "Mix image_prompt has type ndarray"),
        (("red", IMAGE_PROMPT, "0.5"), "weight must be a number in"),
        (("red", IMAGE_PROMPT, float("nan")), "weight must be a number in"),
    ],
)
def test_a_malformed_mix_is_refused_when_built(arguments, problem):
    with pytest.raises(ValueError, match=problem):
        Mix(*arguments)


def test_a_two_dimensional_array_is_a_list_of_embeddings(tiny):
    embeddings = np.random.default_rng(1).normal(size=(3, 16)).astype(np.float32)
    assert tiny.predict(IMAGE, embeddings).shape == (3, 40, 50)


@pytest.mark.parametrize("layers", [(-1, 3, 6), (-5, -3, -1), (3, 6, 12), (3, 6, 2.5)])
def test_extract_layers_outside_the_backbone(tiny, layers):
    with pytest.raises(ValueError, match=r"each must be a layer index in 0\.\.11"):
        tiny.predict(IMAGE, "red", extract_layers=layers)
    with pytest.raises(ValueError, match=r"each must be a layer index in 0\.\.11"):
        tiny.predict_logits(tiny.encode_image(IMAGE), "red", extract_layers=layers)


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
