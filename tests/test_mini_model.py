"""The bundled `mini` model: offline loading, checksum, and the model card's numbers."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from clipseg_lib import ImagePrompt, WeightsChecksumError, load_segmenter, world
from clipseg_lib.mini.evaluation import (
    HELD_OUT_SEED,
    held_out_metrics,
    object_class_probe,
    predict_queries,
    query_prompt,
    score_queries,
)
from clipseg_lib.model import loading

pytestmark = pytest.mark.slow  # left out of `make test-fast`

MINI_DIR = loading.BUNDLED_MODELS["mini"][0]
#: Measured on the committed weights (data/mini/MODEL_CARD.md, n=48 per kind, seed 2022);
#: each bound sits just under the measured value.
CARD_LOWER_BOUNDS = {
    "seen_composite_miou": 0.81,  # measured 0.823; the project's bar is 0.80
    "one_shot_miou": 0.82,  # measured 0.838
    "zero_shot_miou": 0.29,  # measured 0.305
    "referring_miou": 0.37,  # measured 0.386
    "absent_auroc": 0.99,  # measured 1.000
}
#: The card's linear probe of the committed weights (n_train=600, n_test=200).
PROBE_LOWER_BOUNDS = {"object_class_accuracy": 0.94, "colour_accuracy": 0.96}  # 0.958, 0.979


@pytest.fixture(scope="module")
def mini():
    return load_segmenter("mini")


@pytest.fixture(scope="module")
def card_metrics(mini):
    return held_out_metrics(mini, n=48, seed=HELD_OUT_SEED)


def test_loads_offline_with_verified_weights(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    segmenter = load_segmenter("mini")
    assert segmenter.weights_sha256 == loading.BUNDLED_MODELS["mini"][1]
    assert segmenter.provenance["model"] == "mini"
    assert segmenter.num_layers == 12 and segmenter.extract_layers == (3, 6, 9)
    assert segmenter.image_size == 96


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    copy = tmp_path / "mini"
    shutil.copytree(MINI_DIR, copy)
    weights = copy / loading.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setitem(
        loading.BUNDLED_MODELS, "mini", (copy, loading.BUNDLED_MODELS["mini"][1])
    )
    with pytest.raises(WeightsChecksumError, match="sha256"):
        load_segmenter("mini")


def test_committed_weights_are_fp16_and_small():
    header_size = int.from_bytes((MINI_DIR / loading.WEIGHTS_FILE).read_bytes()[:8], "little")
    header = json.loads((MINI_DIR / loading.WEIGHTS_FILE).read_bytes()[8 : 8 + header_size])
    dtypes = {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}
    assert dtypes == {"F16"}
    assert sum(p.stat().st_size for p in MINI_DIR.iterdir()) < 25 * 2**20


def test_card_numbers_are_reproduced(card_metrics):
    for name, bound in CARD_LOWER_BOUNDS.items():
        assert card_metrics[name] >= bound, (name, card_metrics[name])


def test_card_lists_the_measured_numbers(card_metrics):
    summary = json.loads((MINI_DIR / "training_summary.json").read_text())
    assert summary["weights_sha256"] == loading.BUNDLED_MODELS["mini"][1]
    card = (MINI_DIR / "MODEL_CARD.md").read_text()
    assert loading.BUNDLED_MODELS["mini"][1] in card
    for name, value in card_metrics.items():
        recorded = summary["held_out_metrics"][name]
        assert value == pytest.approx(recorded, abs=0.01), name
        assert f"| {recorded:.4f} |" in card, name


def test_mini_tokens_encode_shape_and_colour(mini):
    # The card's linear probe; the previous recipe (no objects stage) read shapes at 0.53.
    accuracies = object_class_probe(mini, n_train=600, n_test=200)
    assert accuracies["object_class_accuracy"] >= PROBE_LOWER_BOUNDS["object_class_accuracy"]
    assert accuracies["colour_accuracy"] >= PROBE_LOWER_BOUNDS["colour_accuracy"]


def test_object_class_probe_checks_its_input(mini):
    with pytest.raises(ValueError, match="n_train"):
        object_class_probe(mini, n_train=0)


def test_mini_finds_a_composite_and_not_an_absent_one(mini):
    query = world.make_query("composite", 4, split="test")
    absent = world.make_query("absent", 4, split="test")
    present_map, absent_map = predict_queries(mini, [query, absent])
    assert present_map.shape == query.target.shape
    assert present_map[query.target].mean() > 0.5
    assert present_map[~query.target].mean() < 0.2
    # the presence score (maximum probability) tells the two apart (card: AUROC 1.000)
    assert (absent_map > 0.5).mean() < 0.1
    assert absent_map.max() < present_map.max()


def test_queries_sharing_a_scene_are_answered_as_one_by_one(mini):
    query = world.make_query("word", 8, split="test")
    other = dataclasses.replace(query, prompt="the word SUN")
    together = predict_queries(mini, [query, other])
    alone = [predict_queries(mini, [q])[0] for q in (query, other)]
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_image_queries_become_image_prompts():
    query = world.make_query("image", 2, split="test")
    prompt = query_prompt(query)
    assert isinstance(prompt, ImagePrompt)
    assert prompt.image is query.support_image and prompt.mask is query.support_mask
    assert query_prompt(world.make_query("composite", 2)) == world.make_query("composite", 2).prompt
    broken = dataclasses.replace(query, support_mask=None)
    with pytest.raises(ValueError, match="support"):
        query_prompt(broken)


def test_score_queries_checks_its_input(mini):
    with pytest.raises(ValueError, match="empty"):
        score_queries(mini, [])
    with pytest.raises(ValueError, match="threshold"):
        score_queries(mini, [world.make_query("composite", 1)], threshold=1.5)
    with pytest.raises(ValueError, match="n must"):
        held_out_metrics(mini, n=1)
