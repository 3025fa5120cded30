"""Per-case checkpoints (`study.checkpoints`): records load back exactly, live only inside a
study run, and a changed configuration or run never finds another's records."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from clipseg_lib import study
from clipseg_lib.study.output_dir import CHECKPOINTS_DIR
from clipseg_lib.study.results import RUN_ID_VARIABLE

PARAMETERS = {"seed": 0, "n_cases": 8, "distortions": ["blur", "jpeg"], "model": "mini"}
SEGMENTER = SimpleNamespace(provenance={"model": "mini", "weights_sha256": "ab" * 32,
                                        "dtype": "float32", "device": "cpu"})


@pytest.fixture
def in_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUN_ID_VARIABLE, "20261204T081500Z-abc123")


def test_a_record_loads_back_equal_floats_bit_for_bit_and_arrays_as_arrays(
    tmp_path: Path, in_run: None
) -> None:
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    record = {
        "scores": {("blur", 1): {"iou_gt": [0.1 + 0.2, 1 / 3], "iou_vs_clean": []}},
        "masks": {("blur", 1): mask},
        "nan": math.nan,
        "pair": (1, "a"),
    }
    checkpoint = study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER)
    assert not checkpoint.done(0)
    checkpoint.save(0, record)

    loaded = study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER).load(0)
    assert loaded["scores"] == {("blur", 1): {"iou_gt": [0.30000000000000004, 1 / 3],
                                              "iou_vs_clean": []}}
    assert loaded["masks"][("blur", 1)].dtype == bool
    assert np.array_equal(loaded["masks"][("blur", 1)], mask)
    assert math.isnan(loaded["nan"]) and loaded["pair"] == (1, "a")
    assert [p.name for p in (tmp_path / CHECKPOINTS_DIR / "02_x").rglob("*.json")] == ["0.json"]


def test_opening_reports_the_cases_an_interrupted_execution_finished(
    tmp_path: Path, in_run: None, capsys: pytest.CaptureFixture[str]
) -> None:
    first = study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER)
    for index in range(3):
        first.save(index, {"value": index})
    assert capsys.readouterr().out == ""

    again = study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER)
    assert again.reused == 3
    assert [again.done(index) for index in range(4)] == [True, True, True, False]
    assert capsys.readouterr().out.startswith("Resumed: 3 cases finished by an interrupted")


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"n_cases": 9}, {"distortions": ["blur"]}, {"weights_sha256": "cd" * 32},
    {"run_id": "20261204T090000Z-def456"},
])
def test_another_configuration_model_or_run_finds_no_record(
    tmp_path: Path, in_run: None, monkeypatch: pytest.MonkeyPatch, change: dict
) -> None:
    study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER).save(0, {"value": 1})
    parameters = {**PARAMETERS, **{k: v for k, v in change.items() if k in PARAMETERS}}
    provenance = {**SEGMENTER.provenance,
                  **{k: v for k, v in change.items() if k in SEGMENTER.provenance}}
    if "run_id" in change:
        monkeypatch.setenv(RUN_ID_VARIABLE, change["run_id"])

    other = study.checkpoints(tmp_path, "02_x", parameters,
                              segmenter=SimpleNamespace(provenance=provenance))
    assert (other.reused, other.done(0)) == (0, False)


def test_outside_a_study_run_records_stay_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RUN_ID_VARIABLE, raising=False)
    checkpoint = study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER)
    checkpoint.save(4, {"iou": [0.5], "cell": ("jpeg", 2)})

    assert checkpoint.load(4) == {"iou": [0.5], "cell": ("jpeg", 2)}
    assert list(tmp_path.iterdir()) == []
    assert not study.checkpoints(tmp_path, "02_x", PARAMETERS, segmenter=SEGMENTER).done(4)


def test_bad_keys_records_and_missing_cases_are_named(tmp_path: Path, in_run: None) -> None:
    checkpoint = study.checkpoints(tmp_path, "02_x", PARAMETERS)
    with pytest.raises(ValueError, match=r"checkpoint key '\.\./x'"):
        checkpoint.save("../x", {})
    with pytest.raises(ValueError, match="checkpoint key -1"):
        checkpoint.done(-1)
    with pytest.raises(TypeError, match="checkpoint record: object"):
        checkpoint.save(0, {"what": object()})
    with pytest.raises(KeyError, match="case 7 has no record"):
        checkpoint.load(7)
    assert not checkpoint.done(0)
