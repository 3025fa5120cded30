"""The conclusion says whether a verdict flips between t = 0.3 and t = 0.5, from one run: the
experiments record their numbers at both thresholds, from the same maps, and every claim is
judged at each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from clipseg_lib.experiments import conclusion, robustness, threshold_flips
from clipseg_lib.experiments.verdicts import MARGIN
from clipseg_lib.study.results import load_results, save_results

NOTEBOOK_RESULTS = os.environ.get("CLIPSEG_NOTEBOOK_RESULTS")


class FakeSegmenter:
    provenance = {"model": "mini", "weights_sha256": "ab" * 32, "dtype": "float32"}


MINI = FakeSegmenter()
AT_05 = {"n_cases": 40, "quick": False, "threshold": 0.5}
ROBUST = "Robust to slightly distorted input images"


def sweep_at(change: float, n: int = 40) -> list[dict]:
    """Sweep rows whose blur at severity 1 changes every case's IoU by `change` (+- 0.01)."""
    clean = 0.7 + 0.05 * np.sin(np.arange(n))
    scores = robustness.empty_scores(["blur"], [0, 1])
    scores["blur", 0] = {"iou_gt": list(clean), "iou_vs_clean": [1.0] * n}
    distorted = clean + change + 0.01 * np.cos(np.arange(n))
    scores["blur", 1] = {"iou_gt": list(distorted), "iou_vs_clean": [0.9] * n}
    return robustness.sweep_rows(scores)


def negation(not_x: float, overlap: float) -> dict:
    def estimate(mean: float) -> dict:
        return {"mean": mean, "n": 40, "ci_low": mean - 0.03, "ci_high": mean + 0.03}
    return {"summary": {"miou_not_x": estimate(not_x), "miou_x": estimate(0.87),
                        "iou_not_x_vs_x": estimate(overlap)}}


def test_the_compared_thresholds_start_with_the_studys():
    assert threshold_flips.compared_thresholds(0.5) == (0.5, 0.3)
    assert threshold_flips.compared_thresholds(0.3) == (0.3, 0.5)
    assert threshold_flips.compared_thresholds(0.4) == (0.4, 0.3, 0.5)
    assert threshold_flips.threshold_key(0.30000) == "0.3"


def test_results_at_another_threshold_replace_only_what_was_recorded_there():
    recorded = threshold_flips.recorded({0.5: {"summary": {"miou": 0.5}, "cases": [1]},
                                         0.3: {"summary": {"miou": 0.3}, "cases": [2]}}, 0.5)
    results = {"dataset": {"dataset": "world"}, **recorded}
    assert results["at_threshold"] == {"0.3": {"summary": {"miou": 0.3}, "cases": [2]}}
    assert threshold_flips.results_at(results, 0.3, 0.5) == {
        "dataset": {"dataset": "world"}, "summary": {"miou": 0.3}, "cases": [2]}
    assert threshold_flips.results_at(results, 0.5, 0.5) == {
        "dataset": {"dataset": "world"}, "summary": {"miou": 0.5}, "cases": [1]}
    assert threshold_flips.results_at(results, 0.4, 0.5) is None
    with pytest.raises(ValueError, match="study's threshold 0.5"):
        threshold_flips.recorded({0.3: {}}, 0.5)


def test_per_case_ious_crossing_the_margin_at_one_threshold_flip_the_verdict(tmp_path):
    # At 0.5 blur costs 0.01 (robust); the same maps at 0.3 cost 0.12 (below -MARGIN).
    at_05, at_03 = sweep_at(-0.01), sweep_at(-0.12)
    assert -0.12 < -MARGIN < -0.01
    results = threshold_flips.recorded({0.5: {"sweep": at_05}, 0.3: {"sweep": at_03}}, 0.5)
    save_results(tmp_path, "02_distorted_images", results, segmenter=MINI, seed=0,
                 parameters=AT_05)
    loaded = load_results(tmp_path)
    comparison = threshold_flips.compare_verdicts(loaded)
    robust = next(row for row in comparison if row["claim"] == ROBUST)
    assert robust["verdicts"] == {"0.3": "not reproduced", "0.5": "reproduced"}
    assert robust["flips"]
    claims = conclusion.build_claims(loaded)
    assert [row["verdicts"]["0.5"] for row in comparison] == [c["verdict"] for c in claims]
    sentence = threshold_flips.flip_sentence(comparison)
    assert sentence.startswith(
        "Verdicts at t = 0.3 and t = 0.5: 1 of 1 compared claims flip: Robust to slightly "
        "distorted input images (0.3: not reproduced, 0.5: reproduced)."
    )
    assert ("Not compared (not measured at both thresholds): Robust to slightly distorted "
            "image prompts") in sentence
    table = threshold_flips.comparison_table(comparison).splitlines()
    assert [cell.strip() for cell in table[0].split("|")[1:-1]] == [
        "Claim", "t = 0.3", "t = 0.5", "Flips"]
    assert [cell.strip() for cell in table[2].split("|")[1:-1]] == [
        ROBUST, "not reproduced", "reproduced", "yes"]


def test_the_same_verdict_at_both_thresholds_does_not_flip(tmp_path):
    for name, results in (
        ("02_distorted_images", threshold_flips.recorded(
            {0.5: {"sweep": sweep_at(-0.01)}, 0.3: {"sweep": sweep_at(-0.02)}}, 0.5)),
        ("06_negation", threshold_flips.recorded(
            {0.5: negation(0.02, 0.98), 0.3: negation(0.03, 0.95)}, 0.5)),
    ):
        save_results(tmp_path, name, results, segmenter=MINI, seed=0, parameters=AT_05)
    comparison = threshold_flips.compare_verdicts(load_results(tmp_path))
    assert not any(row["flips"] for row in comparison)
    assert threshold_flips.flip_sentence(comparison).startswith(
        "Verdicts at t = 0.3 and t = 0.5: no verdict flips (2 claims compared).")


def test_results_recorded_at_one_threshold_only_are_not_compared(tmp_path):
    save_results(tmp_path, "06_negation", negation(0.02, 0.98), segmenter=MINI, seed=0,
                 parameters=AT_05)
    comparison = threshold_flips.compare_verdicts(load_results(tmp_path))
    negated = next(row for row in comparison if row["notebook"] == "06_negation")
    assert negated["verdicts"] == {"0.3": "not measured", "0.5": "reproduced"}
    assert negated["reasons"]["0.3"] == "06_negation.json records no results at t = 0.3"
    assert not negated["flips"]
    assert threshold_flips.flip_sentence(comparison) == (
        "Verdicts at t = 0.3 and t = 0.5: no claim was measured at both.")


CLAIM_NOTEBOOKS = [claim.notebook for claim in conclusion.CLAIMS]


@pytest.mark.after_notebooks
@pytest.mark.skipif(NOTEBOOK_RESULTS is None, reason="needs the notebooks' results: `make test`")
@pytest.mark.parametrize("notebook", CLAIM_NOTEBOOKS)
def test_each_claims_notebook_records_its_numbers_at_both_thresholds(notebook):
    payload = json.loads((Path(NOTEBOOK_RESULTS) / f"{notebook}.json").read_text())
    results, own = payload["results"], payload["parameters"]["threshold"]
    kind = next(claim.kind for claim in conclusion.CLAIMS if claim.notebook == notebook)
    for threshold in threshold_flips.COMPARED:
        at_threshold = threshold_flips.results_at(results, threshold, own)
        assert at_threshold is not None, f"{notebook}: nothing recorded at {threshold}"
        assert conclusion.judge(kind, at_threshold).n >= conclusion.MIN_CASES
    other = threshold_flips.results_at(results, 0.3 if own == 0.5 else 0.5, own)
    assert other is not None
    if "cases" in results:  # the same cases from the same maps: what is not thresholded agrees
        unthresholded = {"prompt", "x", "group", "asked", "picked", "hit", "chance", "presence"}
        for ours, theirs in zip(results["cases"], other["cases"], strict=True):
            assert {k: v for k, v in ours.items() if k in unthresholded} == {
                k: v for k, v in theirs.items() if k in unthresholded}
    if notebook == "08_absent_objects":  # marks something = the map's maximum above t
        for threshold in threshold_flips.COMPARED:
            cases = threshold_flips.results_at(results, threshold, own)["cases"]
            assert [case["marks_something"] for case in cases] == [
                case["presence"] > threshold for case in cases]
    if kind == "robust":
        assert len(other["sweep"]) == len(results["sweep"])
        clean = next(row for row in other["sweep"] if row["severity"] == 0)
        assert clean["iou_gt"]["mean"] == pytest.approx(np.mean(clean["per_case"]["iou_gt"]))
