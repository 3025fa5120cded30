"""The benchmark commands at tiny sizes (the figures themselves come from `make benchmark`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.table import markdown
from clipseg_lib.model import hardware

pytestmark = pytest.mark.slow  # left out of `make test-fast`

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
    assert results["machine"]["bf16_units"] == hardware.bf16_units()
    assert ", bf16 units: " in table.splitlines()[0]


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


def test_parallel_rows_give_ratios_against_their_goals(smoke_results):
    results, _ = smoke_results
    run = lambda seconds, code=0: {"seconds": seconds, "returncode": code}  # noqa: E731
    parallel = {
        "study_jobs": {"serial": run(100.0), "jobs": run(60.0), "jobs_count": 2},
        "evaluate": {"images": 48, "serial": run(48.0), "local2": run(32.0, 1), "model": "mini"},
    }
    table = markdown({**results, **parallel})
    assert "| 0.60x (60 s vs 100 s) | <= 0.65x | met |" in table
    assert "| 1.50x (1.50 vs 1.00 images/s, 48 images, mini) (FAILED, exit status 1) " in table
    missing = {"study_jobs": {"missing": "no --jobs"}, "evaluate": {"missing": "no evaluate"}}
    table = markdown({**results, **missing})
    assert "| not measured: no --jobs | <= 0.65x |  |" in table
    assert "| not measured: no evaluate | >= 1.6x |  |" in table
