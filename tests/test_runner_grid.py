"""Papermill batches: a grid of settings gives one complete study per combination and an index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runner_helpers import notebooks_dir, run_main

from clipseg_lib.cli import run as run_command
from clipseg_lib.model import loading
from clipseg_lib.runner import grid
from clipseg_lib.study.output_dir import LOCK_FILE, run_in_progress
from clipseg_lib.study.parameters import StudyConfigError

pytestmark = pytest.mark.slow  # left out of `make test-fast`


def test_values_split_at_top_level_commas_only() -> None:
    assert grid.split_values("mini,[1, 2],'a,b',x") == ["mini", "[1, 2]", "'a,b'", "x"]


def test_grid_from_flags_and_file(tmp_path: Path) -> None:
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(json.dumps({"threshold": [0.3, 0.5], "quick_flag": [True]}))
    parsed = grid.parse_grid(["model=mini,/models/big", "seed=0,1"], grid_file)
    assert parsed == {
        "threshold": ["0.3", "0.5"],
        "quick_flag": ["true"],
        "model": ["mini", "/models/big"],
        "seed": ["0", "1"],
    }
    names = [c.name for c in grid.combinations({"model": ["mini", "/a/big"], "seed": ["0", "1"]})]
    assert names == [
        "model-mini_seed-0",
        "model-mini_seed-1",
        "model-big_seed-0",
        "model-big_seed-1",
    ]
    twins = grid.combinations({"model": ["/a/big", "/b/big"]})
    assert [c.name for c in twins] == ["model-big", "model-big-2"]
    assert twins[1].settings == {"model": "/b/big"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected an object of non-empty lists"),
        ("{", "grid file"),
        ('{"seed": []}', "non-empty lists"),
    ],
)
def test_a_bad_grid_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    grid_file = tmp_path / "grid.json"
    grid_file.write_text(text)
    with pytest.raises(StudyConfigError, match=message):
        grid.parse_grid([], grid_file)


def test_a_two_by_two_grid_gives_four_studies_and_one_index(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = notebooks_dir(tmp_path, "00_ok", "03_ok_again", "05_conclusion")
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", directory)
    loaded: list[str] = []
    real_load = loading.load_segmenter
    monkeypatch.setattr(
        loading,
        "load_segmenter",
        lambda source, **options: loaded.append(source) or real_load(source, **options),
    )
    output_dir = tmp_path / "grid"

    code, stdout, _ = run_main(
        [
            "run",
            "--output-dir",
            str(output_dir),
            "-g",
            f"model=mini,{tiny_model_dir}",
            "-g",
            "seed=0,1",
        ]
    )

    names = [
        "model-mini_seed-0",
        "model-mini_seed-1",
        f"model-{tiny_model_dir.name}_seed-0",
        f"model-{tiny_model_dir.name}_seed-1",
    ]
    assert code == 0
    assert loaded == ["mini", str(tiny_model_dir)]
    assert sorted(p.name for p in output_dir.iterdir() if p.is_dir()) == sorted(names)
    for name in names:
        study = output_dir / name
        manifest = json.loads((study / "run.json").read_text())
        assert [o["status"] for o in manifest["notebooks"]] == ["ok", "ok", "ok"]
        assert (study / "report" / "index.html").is_file()
        seed = json.loads((study / "00_ok.json").read_text())["results"]["seed"]
        assert seed == int(name[-1])
    index = (output_dir / "index.html").read_text()
    assert index.count("<th><a href=") == 4
    assert [index.index(f'href="{name}/report/index.html"') for name in names] == sorted(
        index.index(f'href="{name}/report/index.html"') for name in names
    )
    row = index[index.index("<td>the fixtures ran</td>") :].split("</tr>")[0]
    assert row.count("<td>reproduced<br>") == 2 and row.count("<td>not reproduced<br>") == 2
    assert "<small>n_cases 10, seed 1</small>" in row
    assert not (output_dir / "run.json").exists()
    grid_manifest = json.loads((output_dir / "grid.json").read_text())
    assert [c["name"] for c in grid_manifest["combinations"]] == names
    assert f"index: {output_dir / 'index.html'}" in stdout

    code, _, stderr = run_main(["run", "--model", "mini", "--output-dir", str(output_dir)])
    assert code == 2 and "holds the results of another grid (grid)" in stderr


def test_a_grid_holds_its_folders_run_lock_while_its_studies_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_command, "NOTEBOOKS_DIR", notebooks_dir(tmp_path, "00_ok"))
    output_dir = tmp_path / "grid"
    locked: list[bool] = []
    real_execute = grid.execute_plan

    def execute_plan(plan):
        locked.append(run_in_progress(output_dir))
        return real_execute(plan)

    monkeypatch.setattr(grid, "execute_plan", execute_plan)
    code, _, _ = run_main(["run", "--output-dir", str(output_dir), "-g", "seed=0,1"])
    assert code == 0 and locked == [True, True]
    assert not run_in_progress(output_dir)
    assert not (output_dir / LOCK_FILE).exists()
