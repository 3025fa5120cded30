"""Where the runner may write: never over sources, never another run's results without --force,
only ever deleting files its own runs recorded; `make test` writes only into a temporary copy."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from runner_helpers import FIXTURES, listing, notebooks_dir, run_main

from clipseg_lib.cli import run as run_command
from clipseg_lib.report import pages as report_module
from clipseg_lib.runner import run_study as runner
from clipseg_lib.study import output_dir as owned_output

pytestmark = pytest.mark.slow  # left out of `make test-fast`

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def fixture_notebooks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", FIXTURES)


@pytest.fixture
def repo_copy(tmp_path: Path) -> Path:
    """A copy of the repository's sources (notebooks, package, README, pyproject)."""
    copy = tmp_path / "clone"
    copy.mkdir()
    for name in ("notebooks", "clipseg_lib"):
        shutil.copytree(REPO_ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("README.md", "pyproject.toml", "Makefile"):
        shutil.copy(REPO_ROOT / name, copy)
    return copy


def test_a_repository_root_is_refused_and_nothing_is_deleted(
    repo_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = listing(repo_copy)

    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(repo_copy)])
    assert code == 2
    assert f"output dir {repo_copy} holds sources this runner did not write (Makefile" in stderr
    assert "pass --force" in stderr

    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", repo_copy / "notebooks")
    for extra in ([], ["--force"]):
        code, _, stderr = run_main(
            ["run", "--model", "mini", "--output-dir", str(repo_copy), *extra]
        )
        assert code == 2 and "holds the notebooks being run" in stderr
    assert listing(repo_copy) == before


def test_force_writes_beside_sources_and_deletes_nothing(repo_copy: Path) -> None:
    before = listing(repo_copy)
    code, _, _ = run_main(
        ["run", "--model", "mini", "--notebooks", "00", "--output-dir", str(repo_copy), "--force"]
    )
    after = listing(repo_copy)
    manifest = json.loads(after["run.json"])

    assert code == 0
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == sorted(
        path for paths in manifest["written_files"].values() for path in paths
    )


def test_another_models_results_need_force_which_replaces_only_recorded_files(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    output_dir = tmp_path / "study"
    assert (
        run_main(["run", "--model", "mini", "--notebooks", "00", "--output-dir", str(output_dir)])[
            0
        ]
        == 0
    )
    (output_dir / "notes.txt").write_text("mine")
    mine = nbformat.writes(nbformat.v4.new_notebook())
    (output_dir / "notebooks" / "my_analysis.ipynb").write_text(mine)
    other = [
        "run",
        "--model",
        str(tiny_model_dir),
        "--notebooks",
        "03",
        "--output-dir",
        str(output_dir),
    ]

    code, _, stderr = run_main(other)
    assert code == 2
    assert (
        "holds the results of another study (mini); choose another directory, or pass --force"
        in stderr
    )
    assert (output_dir / "00_ok.json").is_file()

    code, _, _ = run_main([*other, "--force"])
    manifest = json.loads((output_dir / "run.json").read_text())
    assert code == 0 and manifest["model_resolved"] == str(tiny_model_dir)
    assert not (output_dir / "00_ok.json").exists()
    assert not (output_dir / "notebooks" / "00_ok.ipynb").exists()
    assert (output_dir / "03_ok_again.json").is_file()
    assert (output_dir / "notes.txt").read_text() == "mine"
    assert (output_dir / "notebooks" / "my_analysis.ipynb").read_text() == mine


def test_a_failing_rerun_leaves_no_stale_results_of_that_notebook(tmp_path: Path) -> None:
    directory = notebooks_dir(tmp_path, "00_ok", "03_ok_again")
    output_dir = tmp_path / "study"
    runner.run_study(directory, output_dir, model="mini")
    assert (output_dir / "00_ok.json").is_file()
    failing = nbformat.read(directory / "00_ok.ipynb", as_version=4)
    failing.cells[1].source = 'raise RuntimeError("broken now")'
    nbformat.write(failing, directory / "00_ok.ipynb")

    rerun = runner.run_study(directory, output_dir, model="mini", selected=["00"])

    assert [o.status for o in rerun.notebooks] == ["failed"]
    assert not (output_dir / "00_ok.json").exists()
    assert (output_dir / "03_ok_again.json").is_file()
    assert json.loads((output_dir / "run.json").read_text())["written_files"]["03_ok_again"] == [
        "03_ok_again.json",
        "notebooks/03_ok_again.ipynb",
        "report/03_ok_again.html",
    ]


def test_an_output_dir_that_is_a_file_or_under_a_file_exits_2(tmp_path: Path) -> None:
    output_file = tmp_path / "study"
    output_file.write_text("not a directory")
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_file)])
    assert code == 2 and "is not a directory" in stderr
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_file / "x")])
    assert code == 2 and stderr.startswith("clipseg-study: error: output dir ")
    assert "cannot create it" in stderr and stderr.count("\n") == 1
    assert output_file.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_output_dir_exits_2(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(parent / "o")])
    finally:
        parent.chmod(0o755)
    assert code == 2 and "cannot create it" in stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_runs_nbval_on_a_temporary_copy() -> None:
    recipe = subprocess.run(
        ["make", "-n", "test"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout
    pytest_line = recipe[recipe.index("-m pytest") :]

    assert "copy=$(mktemp -d)" in recipe and 'cp -R notebooks "$copy/notebooks"' in recipe
    assert 'tests "$copy/notebooks" --nbval' in pytest_line
    assert " notebooks --nbval" not in recipe
    assert "ruff check --no-cache" in recipe and "lint-imports --no-cache" in recipe


def test_an_output_dir_without_write_permission_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root may write anywhere, so the permission check itself is what this test exercises.
    (tmp_path / "o").mkdir()
    monkeypatch.setattr(owned_output.os, "access", lambda path, mode: False)
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(tmp_path / "o")])
    assert (
        code == 2 and stderr == f"clipseg-study: error: output dir {tmp_path / 'o'}: not writable\n"
    )
    assert list((tmp_path / "o").iterdir()) == []


def test_a_second_run_into_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    directory = notebooks_dir(tmp_path, "00_ok")
    output_dir = tmp_path / "study"
    runner.run_study(directory, output_dir, model="mini")
    first = listing(output_dir)
    with owned_output.run_lock(output_dir):
        code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
        assert code == 2 and stderr.count("\n") == 1
        assert f"output dir {output_dir} is in use by another run (pid {os.getpid()} on " in stderr
        with pytest.raises(owned_output.StudyConfigError, match="in use by another run"):
            runner.run_study(directory, output_dir, model="mini")
    assert listing(output_dir) == first


def test_a_run_that_crashed_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = subprocess.run(
        [sys.executable, "-c", "import os, pathlib, sys\n"
         "from clipseg_lib.study.output_dir import run_lock\n"
         "with run_lock(pathlib.Path(sys.argv[1])):\n    os.kill(os.getpid(), 9)",
         str(tmp_path / "study")], cwd=REPO_ROOT, check=False)
    assert holder.returncode == -9
    assert (tmp_path / "study" / owned_output.LOCK_FILE).is_file()
    runner.run_study(notebooks_dir(tmp_path, "00_ok"), tmp_path / "study", model="mini")
    assert (tmp_path / "study" / "00_ok.json").is_file()


def test_ctrl_c_marks_the_run_interrupted_in_one_line_and_a_rerun_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output_dir = tmp_path / "study"

    def interrupted(task):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", notebooks_dir(tmp_path, "00_ok"))
    monkeypatch.setattr(runner, "execute", interrupted)
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 1 and stderr.count("\n") == 1 and "marks the run interrupted" in stderr
    assert json.loads((output_dir / "run.json").read_text())["status"] == "interrupted"
    assert not (output_dir / owned_output.LOCK_FILE).exists()
    monkeypatch.undo()
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", tmp_path / "notebooks")
    code, _, _ = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 0 and json.loads((output_dir / "run.json").read_text())["status"] == "finished"


SLOW_CELL = """import pathlib, time
pathlib.Path(output_dir, "busy").touch()
time.sleep(300)
"""
RUN_FROM = """import pathlib, sys
from clipseg_lib.cli import main as cli
from clipseg_lib.cli import run as run_command
run_command.NOTEBOOKS_DIR = pathlib.Path(sys.argv[1])
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_on_busy_kernels_ends_in_one_line_without_tracebacks(
    tmp_path: Path, jobs: str
) -> None:
    directory = notebooks_dir(tmp_path, "00_ok")
    slow = nbformat.read(directory / "00_ok.ipynb", as_version=4)
    (directory / "00_ok.ipynb").unlink()
    stems = ["00_slow", "01_slow"][: int(jobs)]
    for stem in stems:
        slow.cells[1].source = SLOW_CELL.replace("busy", f"busy-{stem}")
        nbformat.write(slow, directory / f"{stem}.ipynb")
    output_dir = tmp_path / "study"
    command = [sys.executable, "-c", RUN_FROM, str(directory), "run", "--model", "mini",
               "--output-dir", str(output_dir), "--jobs", jobs]
    # Its own session, as a terminal's foreground job: Ctrl-C signals the whole group.
    run = subprocess.Popen(command, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)
    deadline = time.monotonic() + 300  # the plan's warm-up and kernel start-up come first
    while time.monotonic() < deadline:
        if all((output_dir / f"busy-{stem}").exists() for stem in stems):
            break
        time.sleep(0.1)
    time.sleep(1.0)  # every kernel is in its sleep
    os.killpg(run.pid, signal.SIGINT)
    _, stderr = run.communicate(timeout=180)
    assert run.returncode == 1
    assert stderr == (f"clipseg-study: interrupted; {output_dir / 'run.json'} marks the run "
                      "interrupted: the same command with --resume continues it\n")
    assert json.loads((output_dir / "run.json").read_text())["status"] == "interrupted"


def test_a_full_disk_marks_the_run_failed_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output_dir = tmp_path / "study"
    real_write = report_module.write_text_atomic

    def disk_full(path, text):
        if path.name == "index.html" and (output_dir / "00_ok.json").exists():
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, text)

    monkeypatch.setattr(report_module, "write_text_atomic", disk_full)
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 2 and stderr.count("\n") == 1 and "No space left on device" in stderr
    manifest = json.loads((output_dir / "run.json").read_text())
    assert manifest["status"] == "failed"
    error = f"[Errno 28] No space left on device: '{output_dir}/report/index.html'"
    assert manifest["error"] == error
    assert not list(output_dir.rglob("*.tmp"))


def test_a_run_json_that_cannot_be_marked_failed_is_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    output_dir = tmp_path / "study"
    real_write = runner.write_json_atomic

    def disk_full(path, document):
        if document["status"] == "failed":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, document)

    def report_fails(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runner, "write_json_atomic", disk_full)
    monkeypatch.setattr(report_module, "write_text_atomic", report_fails)
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.endswith(
        f"run.json could not be marked failed ([Errno 28] No space left on device: "
        f"'{output_dir}/run.json') and stays as it was (status 'running')\n"
    )
    assert json.loads((output_dir / "run.json").read_text())["status"] == "running"


def test_an_unreachable_scheduler_is_refused_before_anything_runs(tmp_path: Path) -> None:
    started = time.monotonic()
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(tmp_path / "o"),
                                "--scheduler", "tcp://127.0.0.1:9"])
    assert code == 2 and stderr.count("\n") == 1 and "cannot connect" in stderr
    assert time.monotonic() - started < 10 and not (tmp_path / "o").exists()


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 2 MiB tmpfs (root only): a disk that fills up."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True
    ).returncode != 0:
        pytest.skip("needs root and mount to make a small tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_disk_that_fills_up_leaves_a_failed_run_and_no_half_file(small_tmpfs: Path) -> None:
    output_dir = small_tmpfs / "study"
    (small_tmpfs / "ballast").write_bytes(b"\0" * (2 * 2**20 - 96 * 2**10))  # ~96 KiB left
    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 2 and stderr.count("\n") == 1 and "No space left on device" in stderr
    (small_tmpfs / "ballast").unlink()
    assert json.loads((output_dir / "run.json").read_text())["status"] in ("failed", "running")
    assert not list(output_dir.rglob("*.tmp"))
    for page in output_dir.rglob("*.html"):
        assert page.read_text().rstrip().endswith("</html>")
