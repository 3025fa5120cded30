"""study.start/finish: the notebook's parameters are recorded once and saved with its results."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from clipseg_lib.study import notebook


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


def test_finish_saves_the_recorded_parameters(tmp_path: Path) -> None:
    notebook.record_parameters(namespace(model="mini", n_cases=4, threshold=0.3))
    notebook.finish(tmp_path, "05_word", {"x": 1}, segmenter=None, seed=2)
    saved = json.loads((tmp_path / "05_word.json").read_text())
    assert saved["parameters"] == {"model": "mini", "n_cases": 4, "quick": True, "threshold": 0.3}
    assert saved["provenance"]["seed"] == 2


def test_finish_without_recorded_parameters_warns_and_saves_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notebook, "_recorded", None)
    with pytest.warns(UserWarning, match="no parameters recorded"):
        notebook.finish(tmp_path, "06_neg", {"x": 1}, segmenter=None, seed=0)
    assert json.loads((tmp_path / "06_neg.json").read_text())["parameters"] is None
