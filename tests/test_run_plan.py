"""The plan before a run (work from the notebooks' parameters, a warm-up, the estimate),
``--dry-run``, the per-notebook progress and ``--device``."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import torch
from runner_helpers import FIXTURES, injected_parameters, notebooks_dir, run_main

from clipseg_lib import load_segmenter
from clipseg_lib.cli import run as run_command
from clipseg_lib.experiments.budget import image_gflop, sample_for_budget, support_gflop
from clipseg_lib.runner import execution
from clipseg_lib.runner.forecast import NotebookForecast, notebook_seconds, total_seconds
from clipseg_lib.runner.warm_up import Speed
from clipseg_lib.runner.work_plan import NotebookWork, notebook_work
from clipseg_lib.study.case_progress import PROGRESS_MARK, PROGRESS_VARIABLE, progress
from clipseg_lib.study.parameters import declared_defaults

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
NO_CUDA = not torch.cuda.is_available()


@pytest.fixture(scope="module")
def mini():
    return load_segmenter("mini")


def _work(stem: str, segmenter, **overrides) -> NotebookWork:
    notebook = NOTEBOOKS / f"{stem}.ipynb"
    return notebook_work(notebook, {**declared_defaults(notebook), **overrides}, segmenter)


def test_the_work_model_counts_each_notebook_from_its_parameters(mini) -> None:
    sweep = _work("02_distorted_images", mini)
    assert (sweep.cases, sweep.images, sweep.supports) == (64, 64 * 33, 0)
    assert sweep.image_gflop == pytest.approx(64 * 33 * image_gflop(mini))
    prompts = _work("03_distorted_prompts", mini, severities=[0, 2], distortions=["blur"])
    assert (prompts.cases, prompts.images, prompts.supports) == (64, 64, 64 * (4 + 1))
    assert _work("05_specific_word", mini, n_cases=7).images == 14
    assert _work("09_mitigations", mini, n_cases=10, n_tta_cases=3).cases == 6 * 10 + 6 * 3
    assert _work("10_conclusion", mini) == NotebookWork()


def test_a_budget_cuts_the_plan_as_it_cuts_the_notebook(mini, capsys) -> None:
    per_case = image_gflop(mini) + 36 * support_gflop(mini)
    n_world, _ = sample_for_budget(mini, 64, budget_gflop=50.5 * per_case, gflop_per_case=per_case)
    planned = _work("03_distorted_prompts", mini, budget_gflop=50.5 * per_case)
    assert n_world == planned.cases == 50


def test_the_estimate_is_start_up_plus_work_at_the_measured_speed() -> None:
    speed = Speed(image_s=0.5, decode_s=0.01, support_s=0.6, startup_s=4.0, threads=2,
                  device="cpu")
    work = NotebookWork(cases=10, images=20, image_gflop=40.0, supports=5, decodes=30)
    seconds = notebook_seconds(work, speed, image_gflop=2.0, parameters={})
    assert seconds == pytest.approx(4.0 + 20 * 0.5 + 30 * 0.01 + 5 * 0.6)
    # A notebook on one of the two measured threads computes at half the speed.
    one_thread = notebook_seconds(work, speed, image_gflop=2.0, parameters={"threads": 1})
    assert one_thread == pytest.approx(4.0 + 2 * (seconds - 4.0))
    forecasts = [NotebookForecast("a", work, 30.0), NotebookForecast("b", work, 10.0)]
    assert (total_seconds(forecasts), total_seconds(forecasts, jobs=2)) == (40.0, 30.0)


@pytest.mark.slow
def test_dry_run_prints_the_plan_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = notebooks_dir(tmp_path, "00_ok", "03_ok_again")
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", directory)
    output_dir = tmp_path / "out"
    code, stdout, _ = run_main(
        ["run", "--model", "mini", "--output-dir", str(output_dir), "--dry-run"]
    )
    assert code == 0
    lines = stdout.splitlines()
    assert lines[0].startswith("plan (cpu, ") and "ms an image encoding" in lines[0]
    assert [line.split()[0] for line in lines[2:]] == ["00_ok", "03_ok_again", "total"]
    assert not output_dir.exists()


@pytest.mark.slow
def test_run_json_records_the_plan_beside_the_actual_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", FIXTURES)
    output_dir = tmp_path / "out"
    code, stdout, _ = run_main(
        ["run", "--model", "mini", "--output-dir", str(output_dir), "--notebooks", "00",
         "--device", "cpu"]
    )
    manifest = json.loads((output_dir / "run.json").read_text())
    assert code == 0 and stdout.startswith("plan (cpu, ")
    plan = manifest["plan"]
    assert set(plan["notebooks"]) == {"00_ok"}
    # A notebook the work model does not know is planned as its start-up alone.
    assert plan["estimated_s"] == pytest.approx(plan["speed"]["startup_s"], abs=1e-3)
    assert plan["speed"]["startup_s"] > 0
    [outcome] = manifest["notebooks"]
    assert 0 < outcome["seconds"] <= manifest["actual_s"] + 1e-3
    assert manifest["device"] == "cpu"
    assert injected_parameters(output_dir / "notebooks" / "00_ok.ipynb")["device"] == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="this machine has a CUDA GPU")
@pytest.mark.parametrize(("device", "message"), [
    ("cuda", "device 'cuda': torch sees no CUDA GPU"),
    ("gpu", "device 'gpu' is not one of cpu, cuda, mps"),
])
def test_a_device_torch_does_not_see_exits_2_before_anything(
    tmp_path: Path, device: str, message: str
) -> None:
    output_dir = tmp_path / "out"
    code, stdout, stderr = run_main(
        ["run", "--model", "mini", "--output-dir", str(output_dir), "--device", device]
    )
    assert (code, stdout) == (2, "")
    assert stderr.startswith(f"clipseg-study: error: {message}") and stderr.count("\n") == 1
    assert not output_dir.exists()
    output = tmp_path / "eval.json"
    code, _, stderr = run_main(
        ["evaluate", "--dataset", "phrasecut", "--root", str(tmp_path), "--model", "mini",
         "--output", str(output), "--device", device]
    )
    assert code == 2 and message in stderr and not output.exists()


def test_device_is_the_runners_to_set(tmp_path: Path) -> None:
    code, _, stderr = run_main(
        ["run", "--model", "mini", "--output-dir", str(tmp_path / "out"), "-p", "device=cpu"]
    )
    assert code == 2 and "-p device is set by the runner; use --device" in stderr


@pytest.mark.skipif(NO_CUDA, reason="needs a CUDA GPU")
def test_a_cuda_run_computes_every_notebook_on_the_gpu(tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    code, stdout, _ = run_main(
        ["run", "--model", "mini", "--quick", "--output-dir", str(output_dir), "--device",
         "cuda", "--notebooks", "05", "06"]
    )
    assert code == 0, stdout
    assert stdout.startswith("plan (cuda, ")
    for stem in ("05_specific_word", "06_negation"):
        saved = json.loads((output_dir / f"{stem}.json").read_text())
        assert json.dumps(saved).count('"device": "cuda') >= 1


def test_progress_reports_only_under_the_runner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv(PROGRESS_VARIABLE, raising=False)
    assert list(progress("ab")) == ["a", "b"] and capsys.readouterr().err == ""
    monkeypatch.setenv(PROGRESS_VARIABLE, "1")
    assert list(progress("ab")) == ["a", "b"]
    assert capsys.readouterr().err == f"{PROGRESS_MARK}1\n" * 2


class RecordedBar:
    """Stands in for the runner's tqdm bar: records its total and the cases reported."""

    made: list[RecordedBar] = []

    def __init__(self, total=None, **options) -> None:
        self.total, self.done = total, 0
        RecordedBar.made.append(self)

    def update(self, count: int) -> None:
        self.done += count

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_the_kernels_progress_advances_the_bar_and_stays_out_of_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(
        "import sys\nfrom clipseg_lib import study\n"
        "for case in study.progress(range(5)):\n    print(case, end=' ')\n"
        "print('warned', file=sys.stderr)"
    )]
    source = tmp_path / "07_loop.ipynb"
    nbformat.write(notebook, source)
    monkeypatch.setattr(execution, "tqdm", RecordedBar)
    task = execution.NotebookTask(source, tmp_path / "executed.ipynb", {}, {}, 60,
                                  progress_total=5)
    assert execution.execute(task).status == "ok"
    [bar] = RecordedBar.made
    assert (bar.total, bar.done) == (5, 5)
    outputs = nbformat.read(tmp_path / "executed.ipynb", as_version=4).cells[0].outputs
    streams = {output.name: output.text for output in outputs}
    assert streams == {"stdout": "0 1 2 3 4 ", "stderr": "warned\n"}


@pytest.mark.slow
def test_the_plan_counts_what_the_notebooks_record(tmp_path: Path) -> None:
    """The plan's images and support embeddings against the work two notebooks record
    (equal supports are embedded once, so the plan's count is an upper bound)."""
    output_dir = tmp_path / "out"
    code, _, _ = run_main(
        ["run", "--model", "mini", "--quick", "--output-dir", str(output_dir), "--notebooks",
         "03", "05"]
    )
    planned = json.loads((output_dir / "run.json").read_text())["plan"]["notebooks"]
    assert code == 0
    for stem in ("03_distorted_prompts", "05_specific_word"):
        work = json.loads((output_dir / f"{stem}.json").read_text())["results"]["work"]
        assert planned[stem]["images"] == work["images"]
        assert 0.9 * planned[stem]["supports"] <= work["supports"] <= planned[stem]["supports"]
    assert planned["03_distorted_prompts"]["supports"] == 4 * 36
