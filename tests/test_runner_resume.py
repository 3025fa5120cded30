"""``clipseg-study run --resume``: a study whose runner was killed halfway continues with the
same run id, keeps its finished notebooks and cases, computes only the rest and gives the
uninterrupted results; a changed configuration never reuses that work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from runner_helpers import run_main

from benchmarks import resume
from clipseg_lib.cli import run as run_command
from clipseg_lib.study.output_dir import CHECKPOINTS_DIR

pytestmark = pytest.mark.slow  # left out of `make test-fast`

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_FROM = """import pathlib, sys
from clipseg_lib.cli import main as cli
from clipseg_lib.cli import run as run_command
run_command.NOTEBOOKS_DIR = pathlib.Path(sys.argv[1])
sys.exit(cli.main(sys.argv[2:]))
"""
DIE_AT = "CLIPSEG_TEST_DIE_AT"
PARAMETERS = 'model = "mini"\noutput_dir = "out"\nseed = 0\nn_cases = 6\n'
FIRST = """import json, os, pathlib, time
payload = {"name": "00_first", "results": {"seed": seed, "executed_at": time.time()},
           "run_id": os.environ.get("CLIPSEG_RUN_ID")}
pathlib.Path(output_dir, "00_first.json").write_text(json.dumps(payload))
"""
CASES = """import json, os, pathlib, signal
from clipseg_lib import study
checkpoint = study.checkpoints(output_dir, "01_cases", globals())
die_at = int(os.environ.get("CLIPSEG_TEST_DIE_AT", "-1"))
values, computed = [], []
for index in range(n_cases):
    if not checkpoint.done(index):
        checkpoint.save(index, {"value": seed + index ** 2 / 7})
        computed.append(index)
        if index == die_at:  # power loss: the runner and this kernel die at once
            os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
    values.append(checkpoint.load(index)["value"])
payload = {"name": "01_cases", "results": {"values": values, "computed": computed},
           "run_id": os.environ.get("CLIPSEG_RUN_ID")}
pathlib.Path(output_dir, "01_cases.json").write_text(json.dumps(payload))
"""


def _notebook(path: Path, source: str) -> None:
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "display_name": "Python 3", "language": "python", "name": "python3"}})
    notebook.cells = [nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                      nbformat.v4.new_code_cell(source)]
    nbformat.write(notebook, path)


@pytest.fixture
def study_notebooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "notebooks"
    directory.mkdir()
    _notebook(directory / "00_first.ipynb", FIRST)
    _notebook(directory / "01_cases.ipynb", CASES)
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", directory)
    return directory


def _killed_run(notebooks: Path, output_dir: Path, *arguments: str) -> dict:
    """Run the study in a process of its own whose runner is killed at case 3 of 01_cases;
    return the run.json it leaves."""
    command = [sys.executable, "-c", RUN_FROM, str(notebooks), "run", "--model", "mini",
               "--output-dir", str(output_dir), *arguments]
    run = subprocess.run(command, cwd=REPO_ROOT, env={**os.environ, DIE_AT: "3"}, timeout=300,
                         capture_output=True, text=True)
    assert run.returncode == -9, run.stderr
    return json.loads((output_dir / "run.json").read_text())


def _results(output_dir: Path, stem: str) -> dict:
    return json.loads((output_dir / f"{stem}.json").read_text())


def test_a_killed_study_resumes_where_it_stopped(study_notebooks: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    killed = _killed_run(study_notebooks, output_dir)
    first = (output_dir / "00_first.json").read_bytes()
    assert killed["status"] == "running"
    assert [(n["stem"], n["status"]) for n in killed["notebooks"]] == [("00_first", "ok")]
    assert len(list((output_dir / CHECKPOINTS_DIR / "01_cases").rglob("*.json"))) == 4

    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir),
                                "-p", "seed=1", "--resume"])
    assert code == 2
    assert "had another configuration (00_first: seed 0 -> 1); its work is not reused" in stderr

    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir),
                                "--resume"])
    manifest = json.loads((output_dir / "run.json").read_text())
    assert (code, stderr) == (0, "")
    assert (manifest["status"], manifest["run_id"]) == ("finished", killed["run_id"])
    assert manifest["notebooks"][0] == killed["notebooks"][0]
    assert (output_dir / "00_first.json").read_bytes() == first  # kept, not executed again
    cases = _results(output_dir, "01_cases")
    assert cases["results"] == {"values": [index**2 / 7 for index in range(6)],
                                "computed": [4, 5]}
    assert cases["run_id"] == killed["run_id"]
    assert not (output_dir / CHECKPOINTS_DIR).exists()

    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir),
                                "--resume"])
    assert code == 2
    assert "is finished, there is nothing to resume; run without --resume" in stderr


def test_a_run_without_resume_recomputes_everything(study_notebooks: Path, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    killed = _killed_run(study_notebooks, output_dir)

    code, _, _ = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    manifest = json.loads((output_dir / "run.json").read_text())
    assert code == 0 and manifest["run_id"] != killed["run_id"]
    assert _results(output_dir, "01_cases")["results"]["computed"] == list(range(6))
    assert _results(output_dir, "00_first")["run_id"] == manifest["run_id"]


def test_resume_needs_an_unfinished_run_and_one_study(tmp_path: Path) -> None:
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(tmp_path / "new"),
                                "--resume"])
    assert code == 2
    assert stderr == (f"clipseg-study: error: --resume: output dir {tmp_path / 'new'} holds no "
                      "study run; run without --resume to run the study anew\n")
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(tmp_path / "grid"),
                                "-g", "seed=0,1", "--resume"])
    assert (code, stderr) == (2, "clipseg-study: error: --resume continues one study run, "
                                 "not a grid\n")


def test_notebook_02_killed_halfway_resumes_to_the_uninterrupted_results(tmp_path: Path) -> None:
    """Mini, a forced kill (runner and kernel) at half the cases, then --resume: the results
    equal the uninterrupted run's and the resumed kernel encoded only the unfinished cases.
    The time saved is measured by ``python -m benchmarks.resume``."""
    n_cases = 8
    options = [
        "--model", "mini", "--notebooks", "02", "-p", f"n_cases={n_cases}",
        "-p", 'distortions=["blur","jpeg"]', "-p", "severities=[0,1,2]",
        "-p", 'example_distortions=["blur"]', "-p", "example_severities=[1]",
    ]
    resume.timed_run(tmp_path / "uninterrupted", options)
    reused = resume.killed_run(tmp_path / "resumed", options, resume.NOTEBOOK, n_cases // 2)
    killed = json.loads((tmp_path / "resumed" / "run.json").read_text())
    resume.timed_run(tmp_path / "resumed", [*options, "--resume"])

    assert n_cases // 2 <= reused < n_cases
    assert resume.results_of(tmp_path / "resumed", resume.NOTEBOOK) == resume.results_of(
        tmp_path / "uninterrupted", resume.NOTEBOOK)
    work = {name: _results(tmp_path / name, resume.NOTEBOOK)["results"]["work"]["encodings"]
            for name in ("uninterrupted", "resumed")}
    assert work["uninterrupted"] == n_cases * 5  # the clean image + 2 distortions x 2 levels
    assert work["resumed"] == (n_cases - reused) * 5
    executed = (tmp_path / "resumed" / "notebooks" / f"{resume.NOTEBOOK}.ipynb").read_text()
    assert f"Resumed: {reused} cases finished by an interrupted execution" in executed
    manifest = json.loads((tmp_path / "resumed" / "run.json").read_text())
    assert (manifest["status"], manifest["run_id"]) == ("finished", killed["run_id"])
    assert _results(tmp_path / "resumed", resume.NOTEBOOK)["run_id"] == killed["run_id"]
