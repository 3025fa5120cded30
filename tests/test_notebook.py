"""study.start/record and NotebookSession.finish: the notebook's parameters are recorded once
and saved with its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from clipseg_lib.study import notebook, output_dir
from clipseg_lib.study.results import RUN_ID_VARIABLE

ROOT = Path(__file__).resolve().parents[1]


def namespace(**parameters: object) -> dict:
    """A notebook's globals(): IPython's names, imports, private names and the parameters."""
    return {
        "In": ["", "model = 'mini'"], "Out": {}, "get_ipython": print, "_i1": "x", "__name__": "m",
        "study": types.ModuleType("study"), "print_table": print, **parameters,
    }


def test_notebook_parameters_keep_only_parameter_values() -> None:
    found = notebook.notebook_parameters(
        namespace(model="mini", seed=0, threshold=0.5, n_cases=40, distortions=("blur", "jpeg"))
    )
    assert found == {
        "distortions": ["blur", "jpeg"], "model": "mini", "n_cases": 40, "quick": False,
        "seed": 0, "threshold": 0.5,
    }


@pytest.mark.parametrize(("extra", "quick"), [
    ({"n_cases": 4}, True), ({"n_cases": 5}, False), ({}, False),
    ({"n_cases": 4, "quick": False}, False),
])
def test_quick_follows_n_cases_unless_the_notebook_says(extra: dict, quick: bool) -> None:
    assert notebook.notebook_parameters(namespace(**extra))["quick"] is quick


def test_finish_saves_the_recorded_parameters_and_names_its_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    session = notebook.record(namespace(model="mini", n_cases=4, threshold=0.3), seed=2)
    figure = plt.figure(figsize=(1, 1))
    session.finish(tmp_path, "05_word", {"x": 1}, figures={"cases": figure})
    plt.close(figure)
    saved = json.loads((tmp_path / "05_word.json").read_text())
    assert saved["parameters"] == {"model": "mini", "n_cases": 4, "quick": True, "threshold": 0.3}
    assert saved["provenance"]["seed"] == 2
    assert saved["figures"] == ["05_word_cases.png"] and (tmp_path / "05_word_cases.png").is_file()


def test_two_sessions_keep_their_own_parameters(tmp_path: Path) -> None:
    first = notebook.record(namespace(model="mini", n_cases=4), seed=0)
    second = notebook.record(namespace(model="mini", n_cases=40), seed=1)
    first.finish(tmp_path, "05_word", {"x": 1})
    second.finish(tmp_path, "06_neg", {"x": 1})
    assert [json.loads((tmp_path / f"{name}.json").read_text())["parameters"]["n_cases"]
            for name in ("05_word", "06_neg")] == [4, 40]


def _finish_in_a_kernel(directory: Path, name: str, run_id: str | None) -> str:
    """`finish` in another process (a notebook kernel) whose environment carries `run_id`;
    its error's type, or "" when it saved."""
    env = {key: value for key, value in os.environ.items() if key != RUN_ID_VARIABLE}
    env.update({RUN_ID_VARIABLE: run_id} if run_id else {})
    kernel = subprocess.run(
        [sys.executable, "-c", "import sys; from clipseg_lib.study import notebook;"
         "notebook.record({}).finish(sys.argv[1], sys.argv[2], {'x': 2})",
         str(directory), name], cwd=ROOT, env=env, capture_output=True, text=True)
    if kernel.returncode == 0:
        return ""
    return kernel.stderr.strip().splitlines()[-1].split(":")[0].rsplit(".", 1)[-1]


@pytest.mark.slow
def test_a_notebook_outside_the_run_writing_there_never_replaces_a_study_runs_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "04_layers.json").write_text('{"theirs": 1}')
    (tmp_path / "run.json").write_text(json.dumps(
        {"status": "finished", "written_files": {"04_layers": ["04_layers.json"]}}))
    session = notebook.record(namespace(model="mini", n_cases=40))
    with pytest.raises(notebook.ResultsOwnedError, match="holds the results of the study run"):
        session.finish(tmp_path, "04_layers", {"x": 1})
    monkeypatch.setenv(RUN_ID_VARIABLE, "20260105T141502Z-3fa9c1")  # a run that has ended
    with pytest.raises(notebook.ResultsOwnedError):
        session.finish(tmp_path, "04_layers", {"x": 1})
    assert (tmp_path / "04_layers.json").read_text() == '{"theirs": 1}'
    session.finish(tmp_path, "05_word", {"x": 1})  # not the run's
    with output_dir.run_lock(tmp_path, run_id="20260105T141502Z-aaaaaa"):
        # nbval executing the notebook while a run writes there; then the run's own kernel
        assert _finish_in_a_kernel(tmp_path, "04_layers", None) == "ResultsOwnedError"
        assert _finish_in_a_kernel(tmp_path, "04_layers", "20260105T141502Z-3fa9c1") == (
            "ResultsOwnedError")
        assert (tmp_path / "04_layers.json").read_text() == '{"theirs": 1}'
        assert _finish_in_a_kernel(tmp_path, "04_layers", "20260105T141502Z-aaaaaa") == ""
    assert json.loads((tmp_path / "04_layers.json").read_text())["results"] == {"x": 2}


def test_finish_records_the_id_of_the_run_executing_the_kernel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = notebook.record(namespace(model="mini"))
    monkeypatch.delenv(RUN_ID_VARIABLE, raising=False)
    session.finish(tmp_path, "05_word", {"x": 1})
    monkeypatch.setenv(RUN_ID_VARIABLE, "20260105T141502Z-3fa9c1")
    session.finish(tmp_path, "06_neg", {"x": 1})
    assert [json.loads((tmp_path / f"{name}.json").read_text())["run_id"]
            for name in ("05_word", "06_neg")] == [None, "20260105T141502Z-3fa9c1"]


def test_scene_size_is_the_models_input_size_unless_set_and_is_recorded(capsys) -> None:
    session = notebook.record(namespace(model="CIDAS/clipseg-rd64-refined", scene_size=None))
    session.segmenter = types.SimpleNamespace(image_size=352)
    assert session.scene_size(None) == 352 and session.parameters["scene_size"] == 352
    assert "Scenes: 352 x 352 px (the model's input size)" in capsys.readouterr().out
    assert session.scene_size(96) == 96 and session.parameters["scene_size"] == 96
    with pytest.raises(ValueError, match="scene_size 8 is too small"):
        session.scene_size(8)


def test_the_mask_threshold_is_the_model_authors_unless_set(capsys) -> None:
    session = notebook.record(namespace(model="mini", threshold=None))
    session.segmenter = types.SimpleNamespace(name="mini")
    assert session.mask_threshold(None) == 0.5 and session.parameters["threshold"] == 0.5
    session.segmenter = types.SimpleNamespace(name="CIDAS/clipseg-rd64-refined")
    assert session.mask_threshold(None) == 0.3
    assert "Mask threshold: 0.3 (the threshold CIDAS/clipseg-rd64-refined's authors use)" in (
        capsys.readouterr().out)
    assert session.mask_threshold(0.4) == 0.4 and session.parameters["threshold"] == 0.4
    for bad, problem in ((1.0, "strictly between 0 and 1"), ("high", "is not a number")):
        with pytest.raises(ValueError, match=problem):
            session.mask_threshold(bad)
    with pytest.raises(ValueError, match="loaded no model"):
        notebook.record(namespace()).mask_threshold(None)
