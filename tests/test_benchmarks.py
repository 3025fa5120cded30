"""The benchmark commands at tiny sizes (the figures themselves come from `make benchmark`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.table import markdown

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory) -> tuple[dict, str]:
    output = tmp_path_factory.mktemp("benchmark")
    subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--skip-study", "--output", output],
        cwd=ROOT, check=True, capture_output=True,
    )
    return json.loads((output / "results.json").read_text()), (output / "results.md").read_text()


def test_smoke_run_writes_every_measurement(smoke_results):
    results, table = smoke_results
    assert results["machine"]["smoke"] is True
    assert [row["prompts"] for row in results["prompt_scaling"]] == [1, 2]
    for row in results["prompt_scaling"]:
        assert row["ratio"] == pytest.approx(row["segmenter_s"] / row["transformers_s"])
    for key in ("bf16_full_size", "bf16_mini"):
        assert 0 <= results[key]["mean_abs_dp"] <= 1 and 0 <= results[key]["min_mask_iou"] <= 1
    assert results["throughput"]["backbone_gflop"] > 0
    for peaks in results["peak_rss_mib"].values():
        assert peaks["load"] > 100  # torch alone takes more
        if sys.platform == "linux":
            assert 0 < peaks["predict"] <= peaks["load"] + 1024
    assert table.count("| met |") + table.count("| missed |") == 6
    assert "study" not in table


def test_a_failed_study_is_not_counted_as_met(smoke_results):
    results, _ = smoke_results
    failed = {"seconds": 12.0, "returncode": 1}
    table = markdown({**results, "study_s": {"full": failed, "quick": failed}})
    assert "| 12 s (FAILED, exit status 1) | <= 300 s | missed |" in table


def test_profile_names_the_operators_of_both_precisions(tmp_path):
    output = tmp_path / "profile.txt"
    subprocess.run(
        [sys.executable, "-m", "benchmarks.profile", "--smoke", "--output", output],
        cwd=ROOT, check=True, capture_output=True,
    )
    text = output.read_text()
    assert "## float32" in text and "## bfloat16" in text
    assert text.count("aten::") >= 8
