"""benchmarks/speed_options.py on the tiny model (the figures come from a full run)."""

from __future__ import annotations

import json

import pytest

from benchmarks import speed_options


def test_smoke_run_times_each_option_against_float32(tmp_path):
    output = tmp_path / "speed_options.json"
    report = speed_options.main(["--smoke", "--only", "int8", "threads1", "--images", "2",
                                 "--rounds", "1", "--output", str(output)])
    assert json.loads(output.read_text())["markdown"] == report["markdown"]
    int8, one_thread = report["rows"]
    for row in report["rows"]:
        assert row["speedup"] == pytest.approx(row["float32_encode_s"] / row["encode_s"])
        assert row["meets_rule"] == (row["speedup"] >= 1.3 and row["mean_abs_dp"] <= 0.01)
        assert row["one_off_s"] > 0 and 0 <= row["min_mask_iou"] <= 1
    assert 0 < int8["mean_abs_dp"] < 0.05
    assert one_thread["mean_abs_dp"] < 1e-5  # the same weights on fewer threads
    assert report["machine"]["threads"] >= 1 and report["images"] == 2
    table = report["markdown"].splitlines()
    assert table[4].startswith("| float32 (baseline) |") and len(table) == 9
    assert "channels_last: not measured" in table[-1]


def test_an_option_that_cannot_run_here_is_a_row_not_a_crash(monkeypatch):
    missing = speed_options.Option("needs a package", needs="clipseg_no_such_package")
    monkeypatch.setitem(speed_options.OPTIONS, "missing", missing)
    report = speed_options.main(["--smoke", "--only", "missing", "--images", "1"])
    assert report["rows"] == [{"option": "missing", "label": "needs a package", "error":
                               "clipseg_no_such_package is not installed "
                               "(pip install -e '.[speed]')"}]
    assert "| needs a package | not measured: clipseg_no_such_package" in report["markdown"]
