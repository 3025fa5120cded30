"""`evaluate` on exported worlds: it scores as the world does, whatever runs it, and resumes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from clipseg_lib import load_segmenter
from clipseg_lib.analysis.benchmark_metrics import benchmark_scores, reported_scores
from clipseg_lib.cli.main import main
from clipseg_lib.datasets.export import MARKER_FILE, export_world, world_images
from clipseg_lib.datasets.pascal5i import fold_classes
from clipseg_lib.evaluation.evaluate import (
    REPORT_THRESHOLDS,
    EvaluationError,
    evaluate,
    score_image,
)
from clipseg_lib.evaluation.paper_benchmarks import (
    caveats,
    comparison_sentence,
    paper_row,
    results_table,
)
from clipseg_lib.model.segmenter import Segmenter

pytestmark = pytest.mark.slow  # left out of `make test-fast`

N_IMAGES = {"phrasecut": 6, "refcoco": 4, "pascal5i": 24}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("worlds")
    return {name: export_world(name, root / name, n_images=n) for name, n in N_IMAGES.items()}


def _world_scores(name: str) -> dict[str, float]:
    """The world's own scoring: in-memory images and exact masks, no files."""
    segmenter = load_segmenter("mini")
    counts, classes = [], []
    for image in world_images(name, N_IMAGES[name]):
        samples = tuple(
            s for s in image.samples if name != "pascal5i" or s.class_id in fold_classes(0)
        )
        if samples:
            counts += score_image(segmenter, image.image, samples)
            classes += [s.class_id for s in samples]
    return reported_scores(benchmark_scores(np.array(counts), classes), REPORT_THRESHOLDS[name])


@pytest.mark.parametrize("name", ["phrasecut", "refcoco", "pascal5i"])
def test_adapter_path_scores_as_the_world_does(exports, tmp_path, name):
    options = {"folds": [0], "shots": 0} if name == "pascal5i" else {}
    result = evaluate(name, exports[name], model="mini", output=tmp_path / "r.json", **options)
    world = _world_scores(name)
    for metric in ("miou", "fgiou", "biniou", "ap"):
        assert abs(result[metric]["mean"] - world[metric]) < 0.01, metric
        assert result[metric]["ci_low"] <= result[metric]["mean"] <= result[metric]["ci_high"]
    assert result["n"] == sum(
        len([s for s in image.samples if name != "pascal5i" or s.class_id in fold_classes(0)])
        for image in world_images(name, N_IMAGES[name])
    )
    assert len(result["model"]["weights_sha256"]) == 64
    assert all(len(digest) == 64 for digest in result["dataset"]["files"].values())
    assert json.loads((tmp_path / "r.json").read_text()) == result


def test_scores_do_not_depend_on_texts_embedded_before():
    image = world_images("phrasecut", 2)[0]
    fresh = load_segmenter("mini")
    used = load_segmenter("mini")
    used.embed_prompts([s.prompt for s in image.samples] + ["the word CAT on a long sign"])
    before = used._text_cache[image.samples[0].prompt].clone()
    first = score_image(fresh, image.image, image.samples)
    second = score_image(used, image.image, image.samples)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    alone = used._text_cache[image.samples[0].prompt]
    assert np.array_equal(fresh._text_cache[image.samples[0].prompt], alone)
    assert not np.array_equal(before, alone)  # the batch embedding did differ


def test_one_shot_pascal_runs_on_supports(exports, tmp_path):
    result = evaluate("pascal5i", exports["pascal5i"], model="mini", output=tmp_path / "r.json",
                      folds=[2], limit=4)
    assert result["parameters"]["shots"] == 1 and result["folds"][0]["n_images"] == 4
    assert 0.0 < result["miou"]["mean"] < 1.0
    assert any("never saw the fold's classes" in note for note in result["caveats"])


def test_cli_prints_the_paper_beside_ours(exports, tmp_path, capsys):
    output = tmp_path / "cli.json"
    status = main(["evaluate", "--dataset", "phrasecut", "--root", str(exports["phrasecut"]),
                   "--model", "mini", "--output", str(output)])
    printed = capsys.readouterr().out
    assert status == 0
    result = json.loads(output.read_text())
    assert f"{100 * result['miou']['mean']:.1f}" in printed and "43.4" in printed
    assert "caveat: model 'mini' is not the paper's" in printed
    status = main(["evaluate", "--dataset", "phrasecut", "--root", str(exports["phrasecut"]),
                   "--model", "mini", "--output", str(output), "--fold", "1"])
    assert status == 2 and "clipseg-study: error: --fold" in capsys.readouterr().err


def test_rerun_skips_finished_shards_and_refuses_foreign_output(exports, tmp_path):
    output = tmp_path / "r.json"
    first = evaluate("phrasecut", exports["phrasecut"], model="mini", output=output, shard_size=2)
    shards = sorted((tmp_path / "r.json.shards").glob("*.json"))
    assert len(shards) == 3
    shards[1].unlink()
    kept = {path: path.stat().st_mtime_ns for path in (shards[0], shards[2])}
    second = evaluate("phrasecut", exports["phrasecut"], model="mini", output=output, shard_size=2)
    assert second == first
    assert {path: path.stat().st_mtime_ns for path in kept} == kept and shards[1].is_file()
    with pytest.raises(EvaluationError, match="--force"):
        evaluate("phrasecut", exports["phrasecut"], model="mini", output=output, limit=2)


def test_local_cluster_gives_the_same_json_as_serial(exports, tmp_path):
    serial = evaluate("phrasecut", exports["phrasecut"], model="mini",
                      output=tmp_path / "serial.json", shard_size=2)
    dask = evaluate("phrasecut", exports["phrasecut"], model="mini",
                    output=tmp_path / "dask.json", shard_size=2, scheduler="local:2")
    assert dask == serial
    assert (tmp_path / "dask.json").read_bytes() == (tmp_path / "serial.json").read_bytes()


def _spawned_workers(process: psutil.Process) -> list[psutil.Process]:
    workers = []
    for child in process.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def test_a_killed_worker_still_yields_the_same_json(tmp_path):
    root = export_world("phrasecut", tmp_path / "world", n_images=12)
    command = [sys.executable, "-m", "clipseg_lib", "evaluate", "--dataset", "phrasecut",
               "--root", str(root), "--model", "mini", "--shard-size", "1"]
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.Popen([*command, "--output", str(tmp_path / "dask.json"),
                            "--scheduler", "local:2"], env=environment, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    shard_dir, killed, finished_at_kill = tmp_path / "dask.json.shards", None, None
    deadline = time.monotonic() + 240
    while killed is None and run.poll() is None and time.monotonic() < deadline:
        finished = list(shard_dir.glob("fold*.json")) if shard_dir.is_dir() else []
        workers = _spawned_workers(psutil.Process(run.pid))
        if finished and workers:
            killed, finished_at_kill = workers[0].pid, len(finished)
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    log = run.communicate(timeout=300)[0].decode()
    assert killed is not None and finished_at_kill < 12, log
    if run.returncode != 0:  # the rerun resumes from the shards that were written
        subprocess.run([*command, "--output", str(tmp_path / "dask.json")], env=environment,
                       cwd=REPO, check=True, capture_output=True)
    subprocess.run([*command, "--output", str(tmp_path / "serial.json")], env=environment,
                   cwd=REPO, check=True, capture_output=True)
    dask, serial = (json.loads((tmp_path / f"{name}.json").read_text())
                    for name in ("dask", "serial"))
    assert dask == serial, [key for key in serial if dask.get(key) != serial[key]]


def test_pascal_is_compared_at_0_3_with_the_best_threshold_beside(exports, tmp_path):
    result = evaluate("pascal5i", exports["pascal5i"], model="mini", output=tmp_path / "r.json",
                      folds=[0], shots=0)
    assert result["threshold"] == 0.3 and paper_row("pascal5i", 0).threshold == 0.3
    fold = result["folds"][0]
    assert result["miou"]["mean"] == pytest.approx(fold["curves"]["miou"][14])  # t = 0.3
    best = fold["best"]["miou"]
    assert best["value"] == max(fold["curves"]["miou"]) == result["best"]["miou"]
    assert best["threshold"] in [round(t, 2) for t in fold["curves"]["thresholds"]]
    table = results_table(result).splitlines()
    assert table[0].split()[:5] == ["metric", "ours", "95%", "interval", "paper"]
    assert "best t" in table[0] and table[1].split()[-1] == f"{100 * best['value']:.1f}"
    assert table[4].startswith("AP_FG ") and table[4].split()[-1] == "-"
    assert "t = 0.3" in table[5] and table[6].startswith("best t: each IoU at its own best")


def test_an_export_says_so_and_evaluate_gives_a_caveat_about_the_data(exports, tmp_path):
    marker = json.loads((exports["phrasecut"] / MARKER_FILE).read_text())
    assert marker["synthetic"] is True and marker["format"] == "phrasecut"
    synthetic = evaluate("phrasecut", exports["phrasecut"], model="mini",
                         output=tmp_path / "s.json", limit=2)
    assert synthetic["dataset"]["synthetic"] == marker
    note = ("the data are the synthetic world exported in phrasecut's layout (clipseg-study "
            "export-world), not phrasecut: a check of the path, not a benchmark result")
    assert note in synthetic["caveats"]
    assert note in comparison_sentence(synthetic)
    # The paper's weights on an export are still not comparable: the data decide it too.
    assert caveats(paper_row("phrasecut", 0), model="CIDAS/clipseg-rd64-refined", split="test",
                   folds=[0], data=synthetic["dataset"]) == [note]
    real = Path(shutil.copytree(exports["phrasecut"], tmp_path / "real"))
    (real / MARKER_FILE).unlink()
    plain = evaluate("phrasecut", real, model="mini", output=tmp_path / "p.json", limit=2)
    assert plain["dataset"]["synthetic"] is None
    assert not any("synthetic" in note for note in plain["caveats"])


def _predicting_nothing_except(monkeypatch, kept_calls: set[int]) -> None:
    """Make the model predict no pixel (logits -100) on every image but the kept calls'."""
    original, calls = Segmenter.predict_logits, []

    def predict_logits(self, encoding, prompts, **options):
        logits = original(self, encoding, prompts, **options)
        calls.append(None)
        return logits if len(calls) - 1 in kept_calls else np.full_like(logits, -100.0)

    monkeypatch.setattr(Segmenter, "predict_logits", predict_logits)


def test_an_image_without_any_predicted_pixel_does_not_kill_the_evaluation(
        exports, tmp_path, monkeypatch):
    # Issue 30, item 7: a bootstrap resample drawing only such images has no AP_FG.
    _predicting_nothing_except(monkeypatch, {0})
    result = evaluate("phrasecut", exports["phrasecut"], model="mini",
                      output=tmp_path / "r.json", limit=4)
    undefined = result["undefined_resamples"]["ap"]
    assert 0 < undefined < 1000 and result["ap"]["mean"] is not None
    assert (f"AP_FG is undefined in {undefined} of 1000 bootstrap resamples (no pixel predicted "
            f"on the images they draw); its interval is over the other {1000 - undefined}"
            ) in result["caveats"]
    assert result["ap"]["ci_low"] <= result["ap"]["mean"] <= result["ap"]["ci_high"]


def test_a_model_that_predicts_nothing_gets_an_undefined_ap_said_in_the_table(
        exports, tmp_path, monkeypatch):
    _predicting_nothing_except(monkeypatch, set())
    result = evaluate("phrasecut", exports["phrasecut"], model="mini",
                      output=tmp_path / "r.json", limit=2)
    assert result["ap"] == {"mean": None, "n": result["n"], "ci_low": None, "ci_high": None}
    assert "AP_FG is undefined: no threshold predicts any pixel on these data" in result["caveats"]
    assert "AP_FG    undefined" in results_table(result)
    assert "AP_FG is undefined" in comparison_sentence(result)
    assert json.loads((tmp_path / "r.json").read_text()) == result
