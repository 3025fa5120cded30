"""A wheel of the package, installed without the repository beside it, carries `mini`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clipseg_lib.model.loading import BUNDLED_MODELS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mini_loads_from_a_non_editable_install(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so building writes nothing into the repository
    shutil.copytree(ROOT / "clipseg_lib", source / "clipseg_lib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
                    str(tmp_path / "dist"), str(source)], check=True, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("clipseg*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, cwd=tmp_path)
    shutil.rmtree(source)
    probe = ("import clipseg_lib; from clipseg_lib.model.loading import load_segmenter;"
             "s = load_segmenter('mini'); print(clipseg_lib.__file__); print(s.weights_sha256)")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(tmp_path / "site"),
                                            "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert loaded.returncode == 0, loaded.stderr
    location, sha = loaded.stdout.split()
    assert Path(location).is_relative_to(tmp_path / "site")
    assert sha == BUNDLED_MODELS["mini"][1]
    assert (tmp_path / "site" / "clipseg_lib" / "report" / "templates").is_dir()
