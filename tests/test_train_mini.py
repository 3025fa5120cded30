"""Training `mini`: the smoke run learns and saves a loadable model; the pieces are exact."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from clipseg_lib import load_segmenter, world
from clipseg_lib.cli.main import main as clipseg_study
from clipseg_lib.mini import train as train_mini
from clipseg_lib.mini.losses import (
    OBJECT_CLASSES,
    ObjectClassHead,
    contrastive_loss,
    image_features,
    object_class_map,
    pixel_values,
    segmentation_loss,
    vision_states,
)
from clipseg_lib.mini.recipe import (
    SMOKE_ARCHITECTURE,
    SMOKE_SCHEDULE,
    build_model,
    build_processor,
    world_words,
)
from clipseg_lib.mini.train import STATE_FILE, output_problem, train, warmup_cosine
from clipseg_lib.mini.training_state import (
    TrainingStateError,
    load_training_state,
    save_training_state,
)
from clipseg_lib.model.loading import BUNDLED_MODELS, file_sha256
from clipseg_lib.model.vocabulary import build_vocabulary

pytestmark = pytest.mark.slow  # left out of `make test-fast`

MINI_DIR = BUNDLED_MODELS["mini"][0]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """(summary, output directory) of `clipseg-study train-mini --smoke`."""
    output = tmp_path_factory.mktemp("mini_smoke")
    threads = torch.get_num_threads()
    try:
        assert clipseg_study(["train-mini", "--smoke", "--output", str(output),
                              "--eval-queries", "2"]) == 0
        summary = json.loads((output / "training_summary.json").read_text())
    finally:
        torch.set_num_threads(threads)
    return summary, output


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    return build_processor(tmp_path_factory.mktemp("tokenizer"), SMOKE_ARCHITECTURE)


def test_smoke_run_loss_falls(smoke_run):
    summary, _ = smoke_run
    decoder = summary["losses"]["decoder"]
    assert len(decoder) == 30
    assert np.mean(decoder[-5:]) < 0.85 * np.mean(decoder[:5])
    # finetuning adds the object-class loss, so it is compared with itself
    finetune = summary["losses"]["finetune"]
    assert np.mean(finetune[-3:]) < np.mean(finetune[:3])
    assert all(np.isfinite(summary["losses"]["pretrain"]))
    objects = summary["losses"]["objects"]
    assert len(objects) == 8 and np.mean(objects[-3:]) < np.mean(objects[:3])


def test_smoke_run_saves_a_loadable_model(smoke_run):
    summary, output = smoke_run
    files = {path.name for path in output.iterdir()}
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= files
    saved = json.loads((output / "training_summary.json").read_text())
    assert saved["weights_sha256"] == summary["weights_sha256"]
    assert set(saved["held_out_metrics"]) >= {"seen_composite_miou", "absent_auroc"}
    segmenter = load_segmenter(output)
    assert segmenter.extract_layers == SMOKE_ARCHITECTURE.extract_layers
    assert segmenter.weights_sha256 == summary["weights_sha256"]
    assert segmenter.model.dtype == torch.float32
    scene = world.render_scene(3, size=64, split="test")
    probabilities = segmenter.predict(scene.image, ["red triangle", "the word CAT"])
    assert probabilities.shape == (2, 64, 64)
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0


@pytest.fixture
def one_thread():
    """Train as `main` does (float sums depend on the thread count); restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(SMOKE_SCHEDULE.threads)
    yield
    torch.set_num_threads(threads)


def test_a_killed_run_resumes_to_the_same_model(smoke_run, tmp_path, monkeypatch, one_thread):
    summary, _ = smoke_run
    calls = []

    def killed_on_the_17th_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 17:
            raise KeyboardInterrupt("killed")
        return segmentation_loss(*args, **kwargs)

    monkeypatch.setattr(train_mini, "segmentation_loss", killed_on_the_17th_batch)
    with pytest.raises(KeyboardInterrupt):
        train(SMOKE_ARCHITECTURE, SMOKE_SCHEDULE, tmp_path, n_eval=0, checkpoint_every=5)
    assert (tmp_path / STATE_FILE).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [STATE_FILE]  # nothing else yet
    monkeypatch.setattr(train_mini, "segmentation_loss", segmentation_loss)
    resumed = train(SMOKE_ARCHITECTURE, SMOKE_SCHEDULE, tmp_path, n_eval=0, resume=True)
    assert resumed["resumed"] and not (tmp_path / STATE_FILE).exists()
    assert resumed["losses"] == summary["losses"]
    assert resumed["weights_sha256"] == summary["weights_sha256"]


def test_resuming_with_other_options_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mini, "segmentation_loss", _raise_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(SMOKE_ARCHITECTURE, SMOKE_SCHEDULE, tmp_path, n_eval=0, checkpoint_every=2)
    other = dataclasses.replace(SMOKE_SCHEDULE, seed=1)
    with pytest.raises(TrainingStateError, match="schedule"):
        train(SMOKE_ARCHITECTURE, other, tmp_path, n_eval=0, resume=True)


def _raise_interrupt(*args, **kwargs):
    raise KeyboardInterrupt("killed")


def test_training_normalisation_equals_the_processor(processor):
    scene = world.render_scene(11, size=64, split="train", n_words=1, n_faces=1)
    expected = processor.image_processor(images=scene.image, return_tensors="pt")["pixel_values"]
    actual = pixel_values(scene.image[None])
    assert actual.shape == expected.shape == (1, 3, 64, 64)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_the_vocabulary_holds_every_world_word():
    rng = np.random.default_rng(5)
    texts = [world.caption(world.render_scene(s, n_words=(0, 2), n_faces=(0, 2)), rng)
             for s in range(40)]
    texts += [
        query.prompt
        for kind in world.QUERY_KINDS
        for split in world.SPLITS
        for query in world.make_queries(kind, 6, seed=1, split=split)
    ]
    used = {word for text in texts for word in text.replace(",", " ").lower().split()}
    assert used <= set(world_words())
    assert {"not", "except", "everything", "left", "largest", "above"} <= used


def test_every_world_word_is_one_token(processor):
    tokenizer = processor.tokenizer
    split = {word: tokenizer.tokenize(word) for word in world_words()
             if len(tokenizer.tokenize(word)) != 1}
    assert split == {}
    # Words outside the world still encode, one character at a time, never to an unknown token.
    assert tokenizer.tokenize("zebra") == ["z", "e", "b", "r", "a</w>"]


def test_a_word_outside_the_byte_alphabet_is_refused():
    with pytest.raises(ValueError, match="outside CLIP's byte alphabet"):
        build_vocabulary(["cat", "ca t"])


def test_losses_are_seeded(processor):
    def losses() -> tuple[float, float]:
        torch.manual_seed(0)
        model = build_model(SMOKE_ARCHITECTURE, processor.tokenizer)
        rng = np.random.default_rng(0)
        with torch.no_grad():
            return (
                float(contrastive_loss(model, processor.tokenizer, rng, 4, 64)),
                float(segmentation_loss(model, processor, rng, 4, 64, train_encoders=False)),
            )

    first, second = losses(), losses()
    assert first == second
    assert first[0] > 0 and first[1] > 0


def test_object_class_map_labels_each_visible_pixel():
    scene = world.render_scene(7, size=96, split="train", n_shapes=4, n_words=1, n_faces=1)
    classes = object_class_map(scene)
    assert classes.shape == (96, 96) and classes.dtype == np.int64
    assert np.all(classes[scene.instance_map == 0] == 0)
    expected = {"word": "sign", "face": "face"}
    for index, thing in enumerate(scene.objects):
        name = expected.get(thing.kind, thing.name)
        assert np.all(classes[scene.object_mask(index)] == OBJECT_CLASSES.index(name)), thing
    assert len(np.unique(classes)) >= 4


def test_object_class_head_answers_each_patch_from_its_own_token():
    torch.manual_seed(0)
    head = ObjectClassHead(hidden_size=32, patch_size=8)
    tokens = torch.randn(2, 1 + 8 * 8, 32)
    logits = head(tokens)
    assert logits.shape == (2, len(OBJECT_CLASSES), 64, 64)
    changed = tokens.clone()
    changed[1, 1 + 2 * 8 + 5] += 1.0  # the token of patch row 2, column 5 of image 1
    moved = (head(changed) - logits).abs().sum(1) > 0
    assert moved[0].sum() == 0
    assert moved[1, 16:24, 40:48].all() and moved[1].sum() == 64


def test_training_image_features_equal_transformers(processor):
    torch.manual_seed(0)
    model = build_model(SMOKE_ARCHITECTURE, processor.tokenizer).eval()
    scenes = [world.render_scene(s, size=64, split="train") for s in range(3)]
    pixels = pixel_values(np.stack([scene.image for scene in scenes]))
    with torch.no_grad():
        states = vision_states(model, pixels, SMOKE_ARCHITECTURE.vision_layers)
        ours = image_features(model, states[-1])
        theirs = model.clip.get_image_features(pixels).pooler_output
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_learning_rate_warms_up_then_decays():
    factors = [warmup_cosine(step, 100) for step in range(100)]
    assert factors[0] == pytest.approx(0.2)
    assert max(factors) == pytest.approx(1.0)
    assert factors[-1] < 0.01
    assert np.all(np.diff(factors[5:]) <= 0)


@pytest.mark.parametrize(
    "argument,problem",
    [("--steps-decoder=-1", "must be >= 0"), ("--batch-size=0", "must be >= 1"),
     ("--threads=100000", "--threads must be <= "), ("--threads=0", "must be >= 1")],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    argument, problem, tmp_path, capsys
):
    output = tmp_path / "new"
    with pytest.raises(SystemExit) as exit_:
        clipseg_study(["train-mini", "--smoke", "--output", str(output), argument])
    assert exit_.value.code == 2
    assert problem in capsys.readouterr().err
    assert not output.exists()


def test_output_is_required(capsys):
    with pytest.raises(SystemExit) as exit_:
        clipseg_study(["train-mini", "--smoke"])
    assert exit_.value.code == 2 and "--output" in capsys.readouterr().err


def test_a_directory_holding_a_model_is_refused_without_force(tmp_path, capsys):
    bundled = tmp_path / "mini"
    shutil.copytree(MINI_DIR, bundled)
    before = {path.name: file_sha256(path) for path in bundled.iterdir()}
    with pytest.raises(SystemExit) as exit_:
        clipseg_study(["train-mini", "--smoke", "--output", str(bundled)])
    assert exit_.value.code == 2
    message = capsys.readouterr().err
    assert "already holds MODEL_CARD.md, config.json" in message and "(a model)" in message
    assert "--force" in message
    assert {path.name: file_sha256(path) for path in bundled.iterdir()} == before


def test_which_output_directories_are_accepted(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is a file" in output_problem(tmp_path / "file", resume=False, force=True)
    assert output_problem(tmp_path / "new", resume=False, force=False) is None
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / STATE_FILE).write_bytes(b"")
    assert output_problem(killed, resume=True, force=False) is None
    assert STATE_FILE in output_problem(killed, resume=False, force=False)
    (killed / "notes.txt").write_text("mine")
    assert "notes.txt" in output_problem(killed, resume=True, force=False)
    assert output_problem(killed, resume=True, force=True) is None


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = "/tmp/clipseg_training_state_pwned"


@pytest.mark.parametrize("name", [STATE_FILE, "training_state.pt"])
def test_a_pickled_state_is_never_loaded(tmp_path, capsys, name):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    with open(tmp_path / name, "wb") as handle:
        pickle.dump({"model": _Exploit()}, handle)
    assert clipseg_study(["train-mini", "--smoke", "--output", str(tmp_path), "--resume",
                          "--force"]) == 2
    message = capsys.readouterr().err.strip()
    assert "\n" not in message and name in message and "delete it" in message
    assert not os.path.exists(MARKER)


def test_a_truncated_state_is_refused(tmp_path):
    path = tmp_path / STATE_FILE
    save_training_state(path, {"weights": torch.ones(1000), "step": 3})
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(TrainingStateError, match="corrupt, truncated"):
        load_training_state(path)


def test_training_state_round_trips_exactly(tmp_path):
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.randn(3))], lr=1e-3)
    optimizer.param_groups[0]["params"][0].grad = torch.ones(3)
    optimizer.step()
    rng = np.random.default_rng([0, 1])
    rng.random(5)
    state = {"optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
             "losses": [0.1, 1 / 3], "torch_rng": torch.get_rng_state(), "none": None}
    path = tmp_path / STATE_FILE
    save_training_state(path, state)
    loaded = load_training_state(path)
    assert loaded["rng"] == state["rng"] and loaded["losses"] == [0.1, 1 / 3]
    assert loaded["none"] is None and torch.equal(loaded["torch_rng"], state["torch_rng"])
    assert list(loaded["optimizer"]["state"]) == [0]  # parameter indices stay integers
    assert loaded["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    moments = loaded["optimizer"]["state"][0]
    torch.testing.assert_close(moments["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert not (tmp_path / "training_state.tmp").exists()
