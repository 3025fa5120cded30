"""Results files: atomic JSON writes, provenance, save/load round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clipseg_lib.analysis.stats import hit_rate, mean_ci
from clipseg_lib.model.hardware import KERNEL_FEATURES
from clipseg_lib.study.results import (
    describe_machine,
    load_results,
    provenance,
    save_results,
    write_json_atomic,
)

SEGMENTER = SimpleNamespace(
    provenance={"model": "mini", "weights_sha256": "ab" * 32, "dtype": "float32", "device": "cpu"}
)


def test_write_json_atomic_formats_and_converts(tmp_path: Path) -> None:
    path = write_json_atomic(
        tmp_path / "nested" / "a.json",
        {"b": float("nan"), "a": [np.float32(0.5), np.int64(3), (1, 2)], "c": np.array([[1, 2]])},
    )
    text = path.read_text()
    assert path == tmp_path / "nested" / "a.json"
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert text.startswith('{\n  "a": [\n    0.5,')
    assert json.loads(text) == {"a": [0.5, 3, [1, 2]], "b": None, "c": [[1, 2]]}


def test_write_json_atomic_writes_estimates_and_hit_rates_as_dicts(tmp_path: Path) -> None:
    payload = {"miou": mean_ci([0.25, 0.75]), "picked": hit_rate([True, False, True], 0.5)}
    saved = json.loads(write_json_atomic(tmp_path / "x.json", payload).read_text())
    assert saved["miou"]["mean"] == 0.5 and saved["miou"]["n"] == 2
    assert saved["picked"]["hits"] == 2 and saved["picked"]["chance"] == 0.5


def test_write_json_atomic_keeps_float_precision(tmp_path: Path) -> None:
    value = 0.1 + 0.2
    path = write_json_atomic(tmp_path / "p.json", {"value": value})
    assert json.loads(path.read_text())["value"] == value


def test_write_json_atomic_rejects_infinity_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"payload\['scores'\]\[1\]: inf"):
        write_json_atomic(tmp_path / "p.json", {"scores": [1.0, math.inf]})
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_json_atomic(tmp_path / "r.json", {"version": 1})
    old_text = path.read_text()

    def dump_half_then_fail(document: object, handle, **kwargs: object) -> None:
        handle.write('{"version": ')
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", dump_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"version": 2})
    assert path.read_text() == old_text
    assert [entry.name for entry in tmp_path.iterdir()] == ["r.json"]


def test_provenance_without_and_with_segmenter() -> None:
    environment = provenance(seed=7)
    assert environment["seed"] == 7
    assert environment["numpy"] == np.__version__
    assert environment["python"].count(".") == 2
    assert {"torch", "transformers", "platform"} <= environment.keys()
    assert "weights_sha256" not in environment

    record = provenance(SEGMENTER, seed=None)
    assert record["seed"] is None
    assert record["weights_sha256"] == "ab" * 32
    assert (record["model"], record["dtype"], record["device"]) == ("mini", "float32", "cpu")


def test_save_and_load_results_round_trip(tmp_path: Path) -> None:
    path = save_results(
        tmp_path, "02_prompts", {"miou": 0.25, "gap": float("nan")}, segmenter=SEGMENTER, seed=3
    )
    assert path == tmp_path / "02_prompts.json"
    save_results(tmp_path, "conclusion", {"claims": []}, seed=None)
    loaded = load_results(tmp_path)
    assert sorted(loaded) == ["02_prompts", "conclusion"]
    assert loaded["02_prompts"]["name"] == "02_prompts"
    assert loaded["02_prompts"]["results"] == {"miou": 0.25, "gap": None}
    assert loaded["02_prompts"]["provenance"]["seed"] == 3
    assert loaded["02_prompts"]["provenance"]["model"] == "mini"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "with space", ".hidden", "x.json", "run"])
def test_save_results_rejects_unsafe_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="results name"):
        save_results(tmp_path, name, {}, seed=0)
    assert list(tmp_path.iterdir()) == []


def test_load_results_skips_bad_files_with_warnings(tmp_path: Path) -> None:
    save_results(tmp_path, "good", {"value": 1}, seed=0)
    (tmp_path / "broken.json").write_text('{"name": ')
    (tmp_path / "other.json").write_text("[1, 2]")
    write_json_atomic(tmp_path / "run.json", {"model_resolved": "mini"})
    with pytest.warns(UserWarning) as caught:
        loaded = load_results(tmp_path)
    assert list(loaded) == ["good"]
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert any("unreadable" in message and "broken.json" in message for message in messages)
    assert any("not a results file" in message and "other.json" in message for message in messages)


def test_load_results_of_missing_dir_is_empty(tmp_path: Path) -> None:
    assert load_results(tmp_path / "absent") == {}


def test_saved_results_carry_the_parameters_beside_the_provenance(tmp_path: Path) -> None:
    parameters = {"n_cases": 40, "threshold": 0.5, "quick": False}
    save_results(tmp_path, "05_word", {"miou": 0.3}, seed=0, parameters=parameters)
    save_results(tmp_path, "06_old", {"miou": 0.3}, seed=0)
    loaded = load_results(tmp_path)
    assert loaded["05_word"]["parameters"] == parameters
    assert loaded["06_old"]["parameters"] is None


def test_provenance_records_the_machine_that_chooses_the_kernels() -> None:
    record = provenance(seed=1)
    machine = record["machine"]
    assert machine["kernel_path"] == torch.backends.cpu.get_cpu_capability()
    assert machine["threads"] == torch.get_num_threads()
    assert set(machine["cpu_flags"]) <= set(KERNEL_FEATURES) and machine["cpu"]
    line = describe_machine(record)
    assert f"{machine['kernel_path']} kernels, {machine['threads']} thread" in line
    assert f"torch {record['torch']}" in line and f"numpy {record['numpy']}" in line
    assert describe_machine({}) == "unknown machine"
