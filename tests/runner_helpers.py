"""Helpers shared by the runner's tests: the fixture notebooks and running the command line."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import nbformat

from clipseg_lib.cli import main as cli

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


def injected_parameters(executed: Path) -> dict[str, object]:
    """The values papermill injected into an executed notebook."""
    notebook = nbformat.read(executed, as_version=4)
    [cell] = [c for c in notebook.cells if "injected-parameters" in c.metadata.get("tags", [])]
    namespace: dict[str, object] = {}
    exec(cell.source, namespace)
    return {name: value for name, value in namespace.items() if not name.startswith("__")}


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """``clipseg-study`` with ``argv``: (exit status, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


def notebooks_dir(tmp_path: Path, *stems: str) -> Path:
    """``tmp_path/notebooks`` holding copies of the named fixture notebooks."""
    directory = tmp_path / "notebooks"
    directory.mkdir()
    for stem in stems:
        shutil.copy(FIXTURES / f"{stem}.ipynb", directory)
    return directory


def listing(directory: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under ``directory``."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
