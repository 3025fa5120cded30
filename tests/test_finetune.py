"""Fine-tuning: CLIP stays frozen, saved models load to the same logits, a killed run resumes
to the same weights, pickled states and bad inputs are refused without writing anything."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from clipseg_lib import load_image, load_segmenter, world
from clipseg_lib.analysis.stats import Estimate
from clipseg_lib.cli.main import main
from clipseg_lib.datasets.export import export_world
from clipseg_lib.finetune import (
    FinetuneConfig,
    OutputDirError,
    failure_study,
    finetune,
    open_data,
    query_samples,
    read_folder,
    seed_study,
    world_data,
    world_queries,
    write_folder,
)
from clipseg_lib.finetune import trainer as trainer_module
from clipseg_lib.finetune.batches import BatchPlan
from clipseg_lib.finetune.state import STATE_JSON
from clipseg_lib.model.loading import file_sha256
from clipseg_lib.model.random_models import random_model, save_random_model

pytestmark = pytest.mark.slow  # left out of `make test-fast`

ROOT = Path(__file__).resolve().parents[1]
#: Composite prompts: every word is in the random models' vocabulary.
SCENE_SIZE = 64


def composite_folder(directory: Path, n: int = 4) -> Path:
    """The folder format written from `n` synthetic composite queries (one image each)."""
    return write_folder(
        query_samples(world.make_queries("composite", n, seed=1, size=SCENE_SIZE, split="train")),
        directory,
    )


@pytest.fixture(scope="module")
def full_size_dir(tmp_path_factory) -> Path:
    """A randomly initialised ViT-B/16 rd64-refined CLIPSeg, saved with its 352 px processor."""
    return save_random_model(tmp_path_factory.mktemp("full-size"))


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    """The tiny random CLIPSeg of the smoke config (64 px), saved."""
    return save_random_model(tmp_path_factory.mktemp("smoke"), smoke=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return composite_folder(tmp_path_factory.mktemp("data") / "folder")


def test_full_size_finetune_on_phrasecut_keeps_clip_and_saves_what_loads(full_size_dir, tmp_path):
    phrasecut = export_world("phrasecut", tmp_path / "phrasecut", n_images=2)
    config = FinetuneConfig(steps=2, batch_size=2, prompts_per_image=1, heldout=0.0)
    data = open_data(f"phrasecut:{phrasecut}")
    assert len({sample.image for sample in data}) == 2 and len(data) > 2
    result = finetune(full_size_dir, data, tmp_path / "out", config, progress=False)
    original = random_model()
    tuned = result.segmenter.model
    clip_before, clip_after = original.clip.state_dict(), tuned.clip.state_dict()
    assert all(torch.equal(clip_before[k], clip_after[k]) for k in clip_before)
    decoder_before = original.decoder.state_dict()
    changed = [k for k, v in tuned.decoder.state_dict().items()
               if not torch.equal(v, decoder_before[k])]
    assert len(changed) > 10
    loaded = load_segmenter(tmp_path / "out")
    image = load_image(data[0].image)
    prompts = ["red circle", "blue square"]
    result.segmenter.clear_text_cache()  # its texts were embedded padded with the data's
    expected = result.segmenter.predict_logits(result.segmenter.encode_image(image), prompts)
    np.testing.assert_array_equal(loaded.predict_logits(loaded.encode_image(image), prompts),
                                  expected)
    record = json.loads((tmp_path / "out" / "finetune.json").read_text())
    assert record["source_sha256"] == file_sha256(full_size_dir / "model.safetensors")
    assert record["weights_sha256"] == loaded.weights_sha256
    assert record["config"]["steps"] == 2 and len(record["losses"]) == 2
    assert record["heldout"]["before"] is None and record["n_images"] == 2
    assert not (tmp_path / "out" / STATE_JSON).exists()


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


@pytest.mark.parametrize("unfrozen", [False, True])
def test_killed_run_resumes_to_the_uninterrupted_weights(smoke_dir, folder, tmp_path, monkeypatch,
                                                         unfrozen):
    config = FinetuneConfig(steps=6, batch_size=3, negatives=0.5, image_prompts=0.5,
                            checkpoint_every=2, heldout=0.25, seed=3, train_text_encoder=unfrozen)
    samples = read_folder(folder)
    whole = finetune(smoke_dir, samples, tmp_path / "whole", config, progress=False)

    real_loss, calls = trainer_module.batch_loss, []

    def dies_at_step_five(*arguments, **options):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(*arguments, **options)

    monkeypatch.setattr(trainer_module, "batch_loss", dies_at_step_five)
    with pytest.raises(KeyboardInterrupt):
        finetune(smoke_dir, samples, tmp_path / "killed", config, progress=False)
    assert json.loads((tmp_path / "killed" / STATE_JSON).read_text())["step"] == 4
    monkeypatch.setattr(trainer_module, "batch_loss", real_loss)
    with pytest.raises(OutputDirError, match="--resume"):
        finetune(smoke_dir, samples, tmp_path / "killed", config, progress=False)
    resumed = finetune(smoke_dir, samples, tmp_path / "killed", config, resume=True,
                       progress=False)
    assert resumed.losses == whole.losses
    first, second = _weights(tmp_path / "whole"), _weights(tmp_path / "killed")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert resumed.after == whole.after


def test_float64_training_saves_float32_weights_that_do_not_depend_on_the_kernels(
    smoke_dir, folder, tmp_path
):
    config = FinetuneConfig(steps=6, batch_size=3, heldout=0.0, seed=3, dtype="float64")
    finetune(smoke_dir, read_folder(folder), tmp_path / "here", config, progress=False)
    script = ("import sys; from clipseg_lib.finetune import FinetuneConfig, finetune, read_folder; "
              "finetune(sys.argv[1], read_folder(sys.argv[2]), sys.argv[3], FinetuneConfig("
              "steps=6, batch_size=3, heldout=0.0, seed=3, dtype='float64'), progress=False)")
    environment = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(smoke_dir), str(folder),
                    str(tmp_path / "there")], env=environment, check=True, cwd=ROOT)
    here, there = _weights(tmp_path / "here"), _weights(tmp_path / "there")
    assert {tensor.dtype for tensor in here.values()} == {torch.float32}
    assert max((here[k] - there[k]).abs().max().item() for k in here) <= 1e-6
    with pytest.raises(ValueError, match="dtype must be one of"):
        FinetuneConfig(dtype="float16")


@pytest.mark.parametrize("lr", ["inf", "nan", "1e12"])
def test_a_diverging_run_stops_naming_the_step_and_saves_nothing(smoke_dir, folder, tmp_path, lr,
                                                                  capsys):
    output = tmp_path / "diverged"
    code = main(["finetune", "--model", str(smoke_dir), "--data", str(folder), "--output",
                 str(output), "--steps", "4", "--batch-size", "2", "--heldout", "0.25",
                 "--lr", lr, "--min-lr", "1e-4"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    if lr == "1e12":
        assert re.search(r"fine-tuning diverged at step [1-4] of 4: the loss is nan", error)
    else:
        assert f"lr must be a finite number, got {lr}" in error
    assert not (output / "model.safetensors").exists()
    assert not (output / "finetune.json").exists()


def test_a_model_with_non_finite_weights_is_refused(smoke_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(smoke_dir, broken)
    weights = _weights(broken)
    key = next(k for k in weights if k.startswith("decoder."))
    weights[key][0] = float("nan")
    save_file(weights, broken / "model.safetensors")
    with pytest.raises(ValueError, match=f"hold NaN or infinite values in {re.escape(key)}"):
        load_segmenter(broken)


def test_resume_refuses_other_options_and_pickled_states(smoke_dir, folder, tmp_path, monkeypatch):
    config = FinetuneConfig(steps=4, batch_size=2, checkpoint_every=2, heldout=0.25)
    samples = read_folder(folder)
    real_loss, calls = trainer_module.batch_loss, []

    def dies_at_step_three(*arguments, **options):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_loss(*arguments, **options)

    monkeypatch.setattr(trainer_module, "batch_loss", dies_at_step_three)
    output = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune(smoke_dir, samples, output, config, progress=False)
    monkeypatch.setattr(trainer_module, "batch_loss", real_loss)
    with pytest.raises(OutputDirError, match=r"another config.lr \(saved 0.001, now 0.0005\)"):
        finetune(smoke_dir, samples, output, FinetuneConfig(**{**config.__dict__, "lr": 5e-4}),
                 resume=True, progress=False)
    tensors_file = output / json.loads((output / STATE_JSON).read_text())["tensors_file"]
    torch.save({"decoder": torch.zeros(1)}, tensors_file)
    with pytest.raises(OutputDirError, match="pickle"):
        finetune(smoke_dir, samples, output, config, resume=True, progress=False)
    (output / "training_state.pt").write_bytes(tensors_file.read_bytes())
    with pytest.raises(OutputDirError, match="training_state.pt, a pickled"):
        finetune(smoke_dir, samples, output, config, resume=True, progress=False)
    assert not (output / "model.safetensors").exists()


def test_bad_inputs_are_named_and_nothing_is_written(smoke_dir, folder, tmp_path):
    samples = read_folder(folder)
    wrong = composite_folder(tmp_path / "wrong", n=2)
    Image.new("L", (10, 12)).save(wrong / "masks" / "mask_00001.png")
    with pytest.raises(ValueError, match=r"line 3: the mask is 10x12 pixels but the image is "
                                         r"64x64"):
        finetune(smoke_dir, read_folder(wrong), tmp_path / "never", progress=False)
    (wrong / "images" / "image_00000.png").unlink()
    with pytest.raises(ValueError, match=r"do not exist: line 2: image .*image_00000.png"):
        read_folder(wrong)
    other = save_random_model(tmp_path / "other", smoke=True, seed=1)
    digest = file_sha256(other / "model.safetensors")
    with pytest.raises(OutputDirError, match=r"another model \(config.json, model.safetensors\)"):
        finetune(smoke_dir, samples, other, progress=False)
    with pytest.raises(OutputDirError, match="a model this run reads"):
        finetune(smoke_dir, samples, smoke_dir, force=True, progress=False)
    assert file_sha256(other / "model.safetensors") == digest
    assert not (tmp_path / "never").exists()
    with pytest.raises(ValueError, match="no such directory"):
        open_data(str(tmp_path / "missing"))


def test_command_line_finetunes_and_reports_errors(smoke_dir, folder, tmp_path, capsys):
    output = tmp_path / "cli"
    arguments = ["finetune", "--model", str(smoke_dir), "--data", str(folder), "--output",
                 str(output), "--steps", "2", "--batch-size", "2", "--heldout", "0.25"]
    assert main(arguments) == 0
    printed = capsys.readouterr().out
    assert "Held-out mIoU before:" in printed and "(n=1)" in printed
    assert load_segmenter(output).weights_sha256 == file_sha256(output / "model.safetensors")
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("clipseg-study: error: output") and "a finished fine-tune" in error
    assert len(error.splitlines()) == 1
    assert main([*arguments[:4], "world:colour", *arguments[5:], "--force"]) == 2
    assert "unknown or no kinds ['colour']" in capsys.readouterr().err


def test_world_queries_hold_names_out_of_training():
    train = world_queries("word", 30, seed=0, held_out=["MAP", "BOX"])
    test = world_queries("word", 20, seed=0, split="test", held_out=["MAP", "BOX"],
                         asking_held_out=True)
    shown = {o.name for q in train for o in q.scene.objects}
    assert not shown & {"MAP", "BOX"} and len(train) == 30
    assert all(q.prompt.split()[-1] in {"MAP", "BOX"} for q in test) and len(test) == 20
    assert [q.prompt for q in world_queries("word", 5, seed=0)] == [
        q.prompt for q in world.make_queries("word", 5, seed=0, split="train")
    ]


def test_batch_plan_negatives_name_absent_prompts_and_the_plan_resumes():
    prompts = ["cat", "dog", "cat", "sun", "map", "sun"]
    groups = [[0, 1], [2, 3], [4, 5]]
    options = {"batch_size": 4, "prompts_per_image": 2, "negatives": 0.5, "image_prompts": 0.5}
    plan = BatchPlan(prompts, groups, seed=0, **options)
    rows = [row for _ in range(50) for row in plan.next_batch()]
    negatives = [row for row in rows if row.negative]
    assert 0.35 < len(negatives) / len(rows) < 0.65
    assert all(prompts[r.sample] not in {prompts[s] for s in groups[r.image]} for r in negatives)
    mixed = [row for row in rows if row.support is not None]
    assert mixed and all(prompts[r.support] == prompts[r.sample] for r in mixed)
    assert all(r.support not in groups[r.image] and 0 <= r.text_weight <= 1 for r in mixed)
    state = json.loads(json.dumps(plan.state()))
    expected = [plan.next_batch() for _ in range(3)]
    other = BatchPlan(prompts, groups, seed=99, **options)
    other.load_state(state)
    assert [other.next_batch() for _ in range(3)] == expected


def _result(held_out: tuple, seen: tuple, control: tuple) -> failure_study.FailureResult:
    """Synthetic per-case IoUs: each group is (before, after) means over 20 spread cases."""
    spread = np.linspace(-0.05, 0.05, 20)
    return failure_study.FailureResult("specific word", 400, {
        group: ((before + spread).tolist(), (after + spread[::-1]).tolist())
        for group, (before, after) in zip(failure_study.GROUPS, (held_out, seen, control),
                                          strict=True)
    })


def test_failure_findings_follow_the_numbers():
    fixed = failure_study.failure_finding(_result((0.2, 0.7), (0.2, 0.8), (0.8, 0.8)), "mini")
    assert "fine-tuning the decoder fixed it, also on names left out of fine-tuning" in fixed
    assert "(mini, held-out MAP, BOX, one seed)" in fixed and "never saw" not in fixed
    assert "The composite control held (0.800 -> 0.800" in fixed
    memorised = failure_study.failure_finding(_result((0.3, 0.3), (0.3, 0.6), (0.8, 0.5)), "m")
    assert "learned the names it was fine-tuned on but not the held-out ones" in memorised
    assert "The composite control fell (0.800 -> 0.500" in memorised
    traded = failure_study.failure_finding(_result((0.2, 0.7), (0.2, 0.8), (0.8, 0.4)), "m")
    assert "learned it only by unlearning plain prompts" in traded
    stuck = failure_study.failure_finding(_result((0.3, 0.31), (0.3, 0.29), (0.8, 0.8)), "m")
    assert "the decoder alone did not fix it in this run" in stuck
    assert "cannot say whether training an encoder too would." in stuck
    assert "must learn" not in stuck
    solved = failure_study.failure_finding(_result((0.95, 0.95), (0.95, 0.95), (0.8, 0.8)), "m")
    assert "nothing to fix" in solved


@pytest.mark.parametrize(("cosine", "reading"), [
    ((0.54, 0.41, 0.66), "closer than unrelated prompts, not the same vector"),
    ((0.20, 0.05, 0.35), "no closer than unrelated prompts"),
    ((0.98, 0.96, 0.99), "nearly the same vector"),
])
def test_the_negation_cosine_reads_against_unrelated_prompts(cosine, reading):
    baseline = Estimate(0.11, 40, 0.06, 0.16)
    found = failure_study.failure_finding(_result((0.3, 0.31), (0.3, 0.29), (0.8, 0.8)), "m",
                                          (Estimate(cosine[0], 40, *cosine[1:]), baseline))
    assert found.endswith(f"against 0.110 [0.060, 0.160] (n=40) between unrelated prompts "
                          f"({reading}).")


def test_training_queries_replay_other_kinds_without_held_out_names():
    queries = failure_study.training_queries("facial expression", 12, seed=0)
    kinds = [q.kind for q in queries]
    assert kinds.count("expression") == 12 and len(queries) == 24
    assert all(kinds.count(k) == 2 for k in failure_study.REPLAY_KINDS if k != "expression")
    assert set(kinds) == set(failure_study.REPLAY_KINDS)
    assert not any("angry" in world_data.scene_names(q.scene) | world_data.prompt_names(q.prompt)
                   for q in queries)


def test_activation_reuse_changes_the_backbone_passes_not_the_weights(smoke_dir, tmp_path):
    queries = world.make_queries("composite", 3, seed=2, size=SCENE_SIZE, split="train")
    samples = [sample for q in queries for sample in query_samples([q, q])]
    samples[1::2] = [replace(s, prompt="square") for s in samples[1::2]]
    config = FinetuneConfig(steps=3, batch_size=4, prompts_per_image=2, heldout=0.0)
    passes, weights = [], []
    for name, reuse, cache_mb in (("row", False, 0), ("batch", True, 0), ("run", True, 64)):
        result = finetune(smoke_dir, samples, tmp_path / name, config, reuse_activations=reuse,
                          cache_mb=cache_mb, progress=False)
        passes.append(result.record["training_backbone_passes"])
        weights.append(_weights(tmp_path / name))
    assert passes == [12, 6, 3]
    assert all(torch.equal(weights[0][k], other[k]) for other in weights[1:] for k in weights[0])


TEXT_TOWER_PREFIXES = tuple(f"{path}." for path in trainer_module.TEXT_TOWER)


@pytest.mark.parametrize("unfrozen", [False, True])
def test_only_the_positive_control_trains_the_text_encoder(smoke_dir, folder, tmp_path, unfrozen):
    config = FinetuneConfig(steps=3, batch_size=3, heldout=0.25, image_prompts=0.5,
                            train_text_encoder=unfrozen)
    result = finetune(smoke_dir, read_folder(folder), tmp_path / "out", config, progress=False)
    source, tuned = _weights(smoke_dir), _weights(tmp_path / "out")
    changed = {k for k in source if not torch.equal(source[k].float(), tuned[k].float())}
    text = {k for k in source if k.startswith(TEXT_TOWER_PREFIXES)}
    assert any(k.startswith("decoder.") for k in changed)
    assert not any(k.startswith("clip.vision_model.") for k in changed)
    # Trained, the text tower moves (every layer's weights); frozen, not one bit of it.
    assert len(changed & text) > 10 if unfrozen else not changed & text
    assert ("text tower trained" in result.record["frozen"]) == unfrozen
    assert result.record["config"]["train_text_encoder"] is unfrozen
    # The saved model answers with the trained text tower: a fresh load predicts as it does.
    loaded = load_segmenter(tmp_path / "out")
    image = load_image(read_folder(folder)[0].image)
    result.segmenter.clear_text_cache()
    np.testing.assert_array_equal(
        loaded.predict_logits(loaded.encode_image(image), ["red circle"]),
        result.segmenter.predict_logits(result.segmenter.encode_image(image), ["red circle"]))


def _seed_runs(held_after: dict[bool, list[float]], control_after: float = 0.8,
               before: float = 0.3) -> list[seed_study.SeedRun]:
    """Synthetic seed-study runs of "specific word": per variant, one run per seed whose 20
    held-out cases move from `before` to that seed's mean (cases spread by +-0.05)."""
    spread = np.linspace(-0.05, 0.05, 20)
    return [
        seed_study.SeedRun(seed, text_encoder, failure_study.FailureResult("specific word", 10, {
            "held-out": ((before + spread).tolist(), (after + spread).tolist()),
            "seen": ((before + spread).tolist(), (after + spread).tolist()),
            "control": ((0.8 + spread).tolist(), (control_after + spread).tolist()),
        }))
        for text_encoder, afters in held_after.items() for seed, after in enumerate(afters)
    ]


def test_the_seed_study_reports_each_seed_and_the_spread_with_n_and_an_interval():
    runs = _seed_runs({False: [0.30, 0.32, 0.34], True: [0.60, 0.62, 0.70]})
    gain = seed_study.across_seeds(runs, "specific word", False, "held-out", "difference")
    assert gain.n == 3 and gain.mean == pytest.approx(0.02)
    # Student-t with 2 degrees of freedom: 0.02 +- 4.303 * 0.02 / sqrt(3)
    assert gain.ci_low == pytest.approx(0.02 - 4.3027 * 0.02 / np.sqrt(3), abs=1e-4)
    extra = seed_study.control_gain(runs, "specific word")
    assert extra.n == 3 and extra.mean == pytest.approx((0.30 + 0.30 + 0.36) / 3)
    rows = seed_study.seed_rows(runs)
    assert [r["seed"] for r in rows] == ["0", "1", "2", "mean of 3"] * 2
    assert rows[3]["held-out gain"].startswith("0.020 [") and "(n=3) range 0.000 to 0.040" in (
        rows[3]["held-out gain"])
    stored = seed_study.seed_study_dict(runs, 50)
    assert stored["steps"] == 50 and len(stored["runs"]) == 6
    summary = stored["across_seeds"]["specific word"]
    assert summary["decoder + text encoder"]["held-out_after"]["n"] == 3
    assert summary["text_encoder_minus_decoder_held_out"]["mean"] == pytest.approx(extra.mean)


def test_seed_findings_say_n_seeds_and_claim_an_encoder_only_from_the_positive_control():
    fits = seed_study.seed_finding(
        _seed_runs({False: [0.30, 0.32, 0.34], True: [0.60, 0.62, 0.70]}), "specific word",
        "mini", 50)
    assert "(mini, n = 3 seeds of 50 steps, held-out mIoU 0.300 before)" in fits
    assert "With the text encoder trained too (n = 3 seeds)" in fits
    assert "at or above 0.5 in 3 of 3 seeds" in fits and "at or above 0.5 in 0 of 3" in fits
    assert "let it fit where the decoder alone did not" in fits
    costly = seed_study.seed_finding(
        _seed_runs({False: [0.60, 0.62, 0.70], True: [0.6, 0.6, 0.6]}, control_after=0.4),
        "specific word", "mini", 50)
    assert "Neither variant fits it without unlearning plain prompts" in costly
    assert "the composite control changed by -0.400 [" in costly
    stuck = seed_study.seed_finding(
        _seed_runs({False: [0.30, 0.32, 0.34], True: [0.31, 0.30, 0.33]}), "specific word",
        "mini", 50)
    assert "Neither variant fits it: training the text encoder too is not shown" in stuck
    assert "must learn" not in stuck
    assert "not shown to differ from the decoder alone's" in stuck
    assert "vision encoder (frozen in both) and longer training are not tested" in stuck
    alone = seed_study.seed_finding(
        _seed_runs({False: [0.60, 0.62, 0.70], True: [0.6, 0.6, 0.6]}), "specific word", "m", 50)
    assert "The decoder alone fits it in every seed without unlearning plain prompts" in alone
    untested = seed_study.seed_finding(_seed_runs({False: [0.3, 0.3, 0.31]}), "specific word",
                                       "m", 50)
    assert "No run trained the text encoder" in untested


def test_seeds_give_distinct_runs_and_a_seed_repeats_its_run(smoke_dir, folder, tmp_path):
    samples = read_folder(folder)
    losses = {}
    for name, seed in (("a", 0), ("b", 1), ("c", 0)):
        config = seed_study.seed_config(FinetuneConfig(batch_size=2, heldout=0.0), seed, 3, False)
        losses[name] = finetune(smoke_dir, samples, tmp_path / name, config, progress=False).losses
    assert len(losses["a"]) == 3 and losses["a"] == losses["c"] and losses["a"] != losses["b"]
    assert seed_study.run_directory("r", "specific word", 2, True) == (
        "r/13_finetuning_models/seeds/word_text_seed2")
