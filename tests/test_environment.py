"""environment.yml and pyproject.toml stay one list: conda adds Python and pip, nothing else."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _environment() -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of environment.yml, read without a YAML parser."""
    conda, pip, section = [], [], None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if stripped.startswith("dependencies:"):
            section = "conda"
        elif stripped.strip() == "- pip:":
            section = "pip"
        elif stripped.strip().startswith("- ") and section:
            item = stripped.strip()[2:].strip()
            (pip if section == "pip" and line.startswith(" " * 6) else conda).append(item)
    return conda, pip


def test_conda_side_only_brings_python_and_pip():
    conda, _ = _environment()
    assert sorted(re.split(r"[=<>]", item)[0] for item in conda) == ["pip", "python"]


def test_python_version_matches_pyproject():
    conda, _ = _environment()
    python = next(item for item in conda if item.startswith("python"))
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == "python=3.11" and ">=3.11" in requires and "<3.12" in requires


def test_pip_side_installs_the_project_and_the_makefiles_torch():
    _, pip = _environment()
    torch_spec = re.search(r"^TORCH_SPEC \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
    assert pip == [torch_spec, "-e .[dev]"]
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_range = next(d for d in dependencies if d.startswith("torch"))
    assert torch_range == "torch>=2.4" and torch_spec == "torch==2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and ci.strip().splitlines()[-1] == "make test"
