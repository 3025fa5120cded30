"""Verdict rules on hand-made results; claims built from results files; configuration checks."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib.experiments import conclusion, run_configuration, verdicts
from clipseg_lib.study.results import load_results, save_results

README = Path(__file__).resolve().parents[1] / "README.md"
CONCLUSION_NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "10_conclusion.ipynb"


def estimate(mean: float, half_width: float = 0.05, n: int = 40) -> dict:
    return {"mean": mean, "n": n, "ci_low": mean - half_width, "ci_high": mean + half_width}


def hit_rate(rate: float, p_value: float, chance: float = 0.35) -> dict:
    return {"hits": round(rate * 40), "n": 40, "rate": rate, "chance": chance,
            "ci_low": rate - 0.15, "ci_high": rate + 0.15, "p_value": p_value}


def sweep(severity1: dict[str, float], clean: float = 0.68, half_width: float = 0.05,
          n: int = 40) -> dict:
    rows = [{"distortion": "none", "severity": 0, "iou_gt": estimate(clean, half_width, n),
             "iou_vs_clean": estimate(1.0, 0.0, n)}]
    rows += [{"distortion": name, "severity": 1, "iou_gt": estimate(value, half_width, n),
              "iou_vs_clean": estimate(0.9, n=n)} for name, value in severity1.items()]
    rows += [{"distortion": "jpeg", "severity": 5, "iou_gt": estimate(0.1, n=n),
              "iou_vs_clean": estimate(0.2, n=n)}]
    return {"sweep": rows}


def choice(miou: float, picked_p: float, control: float = 0.88) -> dict:
    picked = hit_rate(0.6 if picked_p < 0.05 else 0.375, picked_p)
    return {"summary": {"miou": estimate(miou), "control_miou": estimate(control),
                        "hit_rate": picked}}


def negation(not_x: float, overlap: float, x: float = 0.87, half_width: float = 0.05) -> dict:
    return {"summary": {"miou_not_x": estimate(not_x, half_width),
                        "miou_x": estimate(x, half_width),
                        "iou_not_x_vs_x": estimate(overlap, half_width)}}


def absent(seen_fp: float, unseen_fp: float, zero_shot_fn: float, control_fn: float = 0.0
           ) -> dict:
    return {"summary": {
        "false_positive_absent": estimate(seen_fp, 0.08),
        "false_positive_absent_unseen": estimate(unseen_fp, 0.08),
        "false_negative_zero_shot": estimate(zero_shot_fn, 0.08),
        "false_negative_seen": estimate(control_fn, 0.08),
    }}


@pytest.mark.parametrize(("kind", "results", "verdict"), [
    ("robust", sweep({"blur": 0.67, "jpeg": 0.66}, half_width=0.01), "reproduced"),
    ("robust", sweep({"blur": 0.67, "jpeg": 0.55}, half_width=0.01), "not reproduced"),
    ("robust", sweep({"blur": 0.67, "jpeg": 0.65}), "inconclusive"),
    ("choice", choice(0.33, 0.45), "reproduced"),
    ("choice", choice(0.34, 0.001), "mixed"),
    ("choice", choice(0.85, 0.45), "inconclusive"),
    ("choice", choice(0.85, 0.001), "not reproduced"),
    ("negation", negation(0.02, 0.98), "reproduced"),
    ("negation", negation(0.30, 0.20), "mixed"),
    ("negation", negation(0.86, 0.10, half_width=0.01), "not reproduced"),
    ("negation", negation(0.50, 0.50), "inconclusive"),
    ("absent", absent(0.40, 0.0, 0.0), "reproduced"),
    ("absent", absent(0.0, 0.45, 0.6), "reproduced"),
    ("absent", absent(0.0, 0.025, 0.525), "not reproduced"),
    ("absent", absent(0.1, 0.1, 0.0), "inconclusive"),
])
def test_each_verdict_follows_its_tests_and_the_control(kind, results, verdict):
    assert conclusion.judge(kind, results).verdict == verdict


def test_a_pick_rate_at_chance_does_not_decide_a_choice_claim():
    # Issue 27: picked 15/40 against chance 0.354 (p = 0.45) is no evidence that the model
    # cannot pick; only the mIoU below the control decides, and without it nothing does.
    decided = conclusion.judge("choice", choice(0.326, 0.45))
    assert decided.verdict == "reproduced"
    assert decided.reason.startswith("mIoU below the control; picked not shown above chance")
    undecided = conclusion.judge("choice", choice(0.86, 0.45))
    assert undecided.verdict == "inconclusive"
    assert undecided.reason.endswith(": no test decides")


def test_faces_picked_above_chance_but_below_the_control_are_mixed_with_the_reason():
    judgement = conclusion.judge("choice", choice(0.338, 0.001))
    assert judgement.reason.startswith(
        "mIoU below the control; picked above chance (two-sided p=")
    assert judgement.evidence.startswith(
        "asked object: mIoU 0.338 [0.288, 0.388] (n=40); picked (highest mean probability) in "
        "0.600 [0.450, 0.750] (24/40; chance"
    )
    assert judgement.control == "composite prompts: mIoU 0.880 [0.830, 0.930] (n=40)"
    assert judgement.n == 40


def test_robustness_is_an_equivalence_rule_with_a_declared_margin():
    assert verdicts.MARGIN == 0.05
    judgement = conclusion.judge("robust", sweep({"blur": 0.67, "jpeg": 0.51}, half_width=0.01))
    assert judgement.reason == "change below -0.05: jpeg"
    assert judgement.evidence.startswith(
        "IoU with the ground truth at severity 1 and its change from clean (n=40): "
        "blur 0.670 [0.660, 0.680], change -0.010 [-0.024, 0.004]; "
        "jpeg 0.510 [0.500, 0.520], change -0.170 [-0.184, -0.156]"
    )
    assert judgement.control == "clean input: 0.680 [0.670, 0.690] (n=40)"
    blur, jpeg = judgement.tests
    assert blur["name"] == "blur" and blur["direction"] == "above" and blur["holds"]
    assert blur["margin"] == 0.05 and blur["bound"] == -0.05 and blur["n"] == 40
    assert blur["effect"] == pytest.approx(-0.01)
    assert jpeg["direction"] == "below" and jpeg["holds"]


def test_a_change_whose_interval_reaches_past_the_margin_is_inconclusive():
    # Issue 27: prompt JPEG at severity 1 changes IoU by about -0.036, its interval reaching
    # below -0.05: absence of a significant drop is not robustness.
    rng = np.random.default_rng(0)
    clean_cases = rng.uniform(0.6, 0.95, 64)
    changes = -0.036 + rng.normal(0.0, 0.08, 64)
    results = sweep({"jpeg": 0.82, "blur": 0.85}, half_width=0.01, n=64)
    for row in results["sweep"]:
        shift = changes if row["distortion"] == "jpeg" and row["severity"] == 1 else 0.0
        row["per_case"] = {"iou_gt": (clean_cases + shift).tolist()}
    judgement = conclusion.judge("robust", results)
    jpeg = judgement.tests[0]
    assert jpeg["ci_low"] < -0.05 < jpeg["ci_high"] < 0 and not jpeg["holds"]
    assert judgement.verdict == "inconclusive"
    assert judgement.reason == ("change not shown above or below -0.05 after the Holm "
                                "correction: jpeg")


def test_robustness_uses_paired_per_case_changes_when_the_sweep_keeps_them():
    results = sweep({"blur": 0.67, "jpeg": 0.67, "noise": 0.67})
    clean_cases = [0.6, 0.7, 0.8, 0.65, 0.75] * 8
    shifts = {"jpeg": -0.08, "noise": -0.02}
    for row in results["sweep"]:
        row["per_case"] = {"iou_gt": [v + shifts.get(row["distortion"], 0) for v in clean_cases]}
    # The intervals overlap, but every jpeg case loses 0.08, beyond the 0.05 margin; every
    # noise case loses 0.02: a sure but slight drop.
    judgement = conclusion.judge("robust", results)
    assert judgement.reason == "change below -0.05: jpeg"
    assert judgement.verdict == "not reproduced"
    assert judgement.tests[2]["direction"] == "above" and judgement.tests[2]["holds"]


def test_absent_objects_never_marked_are_not_reproduced_and_zero_shot_misses_are_apart():
    # Issue 27: mini marks absent objects 0/40 and 1/40 times; its empty masks for present,
    # unseen pairs (21/40) are a separate finding, not a reason for "mixed".
    judgement = conclusion.judge("absent", absent(0.0, 0.025, 0.525))
    assert judgement.verdict == "not reproduced"
    assert judgement.reason == "marks absent objects in fewer than 20% of prompts, seen and unseen"
    assert judgement.finding.startswith("separate finding (zero-shot recall, not absence): "
                                        "empty mask for a present unseen pair in 0.525")
    assert "unseen pair" not in judgement.evidence.split("absent, unseen pair")[1]


def test_too_few_cases_are_not_judged():
    results = negation(0.02, 0.98)
    for value in results["summary"].values():
        value["n"] = 4
    judgement = conclusion.judge("negation", results)
    assert judgement.verdict == "not judged"
    assert judgement.reason == "too few cases: n = 4 < 40"
    quick = sweep({"blur": 0.67, "jpeg": 0.51}, half_width=0.01, n=4)
    assert conclusion.judge("robust", quick).verdict == "not judged"


def test_undefined_numbers_are_not_measured_and_unknown_kinds_are_errors():
    undefined = negation(0.1, 0.9)
    undefined["summary"]["miou_x"]["mean"] = None
    with pytest.raises(conclusion.NotMeasured, match="miou_x is undefined"):
        conclusion.judge("negation", undefined)
    with pytest.raises(conclusion.NotMeasured, match="no 'sweep' rows"):
        conclusion.judge("robust", {"summary": {}})
    with pytest.raises(ValueError, match="claim kind 'magic'"):
        conclusion.judge("magic", {})


def test_verdict_sentence_names_the_model():
    assert conclusion.verdict_sentence("negation", negation(0.02, 0.98), model="mini") == (
        "On mini: reproduced (\"not X\" below the control; its mask still overlaps "
        "\"X\" above IoU 0.5)."
    )


class FakeSegmenter:
    def __init__(self, name: str, digest: str) -> None:
        self.provenance = {"model": name, "weights_sha256": digest, "dtype": "float32"}


MINI = FakeSegmenter("mini", "ab" * 32)
FULL = {"n_cases": 40, "quick": False, "threshold": 0.5}


def test_claims_from_results_files(tmp_path):
    save_results(tmp_path, "02_distorted_images", sweep({"blur": 0.67}, half_width=0.01),
                 segmenter=MINI, seed=0, parameters=FULL)
    save_results(tmp_path, "06_negation", negation(0.02, 0.98), segmenter=MINI, seed=0,
                 parameters=FULL)
    save_results(tmp_path, "08_absent_objects", absent(0.0, 0.025, 0.5), segmenter=MINI,
                 seed=0, parameters=FULL)
    claims = conclusion.build_claims(load_results(tmp_path), model="mini")
    by_source = {claim["notebook"]: claim for claim in claims}
    assert len(claims) == len(conclusion.CLAIMS) == 6
    assert by_source["02_distorted_images"]["verdict"] == "reproduced"
    assert by_source["02_distorted_images"]["weights"] == "ab" * 6
    assert by_source["06_negation"]["n"] == 40
    assert by_source["05_specific_word"]["verdict"] == "not measured"
    assert conclusion.verdict_counts(claims) == {
        "reproduced": 2, "not reproduced": 1, "mixed": 0, "inconclusive": 0, "not judged": 0,
        "not measured": 3,
    }
    assert conclusion.finding(claims) == (
        "On mini (abababababab), of the poster's 6 claims: 2 reproduced, 1 not reproduced, "
        "3 not measured."
    )
    assert set(claims[0]) >= {"claim", "notebook", "evidence", "control", "verdict", "model", "n",
                              "tests", "finding"}
    blur = by_source["02_distorted_images"]["tests"][0]
    assert set(blur) == {"name", "effect", "ci_low", "ci_high", "n", "bound", "margin", "rule",
                         "p_value", "p_holm", "holds", "direction"}
    assert (blur["margin"], blur["n"], blur["direction"], blur["holds"]) == (0.05, 40, "above",
                                                                             True)
    assert by_source["08_absent_objects"]["finding"].startswith("separate finding")


def test_holm_corrects_the_tests_of_all_claims_together(tmp_path):
    # blur's change -0.010, interval [-0.046, 0.026]: p = 0.03 against -0.05, enough alone,
    # not among the 8 tests of three claims (Holm: sixth smallest, 0.03 x 3 > 0.05).
    robust = sweep({"blur": 0.67}, half_width=0.0255)
    alone = conclusion.judge("robust", robust)
    assert alone.verdict == "reproduced"
    assert alone.tests[0]["p_value"] == pytest.approx(0.03, abs=2e-3)
    for name, results in (("02_distorted_images", robust), ("06_negation", negation(0.02, 0.98)),
                          ("08_absent_objects", absent(0.0, 0.025, 0.5))):
        save_results(tmp_path, name, results, segmenter=MINI, seed=0, parameters=FULL)
    claims = conclusion.build_claims(load_results(tmp_path))
    together = claims[0]["tests"][0]
    assert together["p_holm"] == pytest.approx(3 * together["p_value"]) and not together["holds"]
    assert claims[0]["verdict"] == "inconclusive"
    assert conclusion.correction_sentence(claims).startswith(
        "Each verdict rests on tests of which side of a bound an effect lies (two-sided at 5%, "
        "as a 95% interval decides), Holm-corrected over the 8 tests of the 3 judged claims: "
        "5 hold"
    )


def test_results_of_another_configuration_are_refused_with_the_reason(tmp_path):
    for name in ("02_distorted_images", "03_distorted_prompts", "06_negation"):
        save_results(tmp_path, name, negation(0.02, 0.98) | sweep({"blur": 0.67}),
                     segmenter=MINI, seed=0, parameters=FULL)
    save_results(tmp_path, "08_absent_objects", absent(0.4, 0.0, 0.0), segmenter=MINI, seed=0,
                 parameters={"n_cases": 4, "quick": True, "threshold": 0.5})
    save_results(tmp_path, "05_specific_word", choice(0.3, 0.5), segmenter=MINI, seed=0)
    save_results(tmp_path, "07_facial_expressions", choice(0.3, 0.5), seed=0,
                 segmenter=FakeSegmenter("mini", "cd" * 32), parameters=FULL)
    problems = run_configuration.configuration_problems(load_results(tmp_path))
    assert problems == {
        "05_specific_word": "05_specific_word.json records no parameters (written by an older "
                            "version): rerun it",
        "07_facial_expressions": "07_facial_expressions.json comes from another run "
                                 f"configuration: weights_sha256 {'cd' * 32} (expected "
                                 f"{'ab' * 32}); rerun it with the others' settings",
        "08_absent_objects": "08_absent_objects.json comes from another run configuration: "
                             "quick True (expected False); rerun it with the others' settings",
    }
    claims = conclusion.build_claims(load_results(tmp_path))
    refused = {c["notebook"]: c["reason"] for c in claims if c["verdict"] == "not measured"}
    assert refused == problems
    other_model = run_configuration.configuration_problems(load_results(tmp_path), model="big")
    assert "model mini (expected big)" in other_model["06_negation"]


def test_markdown_table_shows_evidence_control_and_the_verdict_on_the_model(tmp_path):
    save_results(tmp_path, "07_facial_expressions", choice(0.338, 0.001), segmenter=MINI,
                 seed=0, parameters=FULL)
    claims = conclusion.build_claims(load_results(tmp_path))
    table = conclusion.markdown_table(claims).splitlines()
    header = [cell.strip() for cell in table[0].split("|")[1:-1]]
    assert header == ["Claim", "Evidence (mean [95% interval] (n))", "Control", "Verdict"]
    assert len(table) == 2 + 6
    faces = next(line for line in table if "facial" in line)
    assert "composite prompts: mIoU 0.880 [0.830, 0.930] (n=40)" in faces
    assert faces.rstrip(" |").endswith("on mini: mixed")
    assert "(no 02_distorted_images.json in the output dir)" in table[2]
    assert table[2].rstrip(" |").endswith("not measured")
    figure = conclusion.plot_verdicts(claims)
    assert [t.get_text() for t in figure.axes[0].texts][4] == "on mini: mixed"
    plt.close(figure)



def test_readme_holds_the_conclusion_notebooks_table():
    cells = json.loads(CONCLUSION_NOTEBOOK.read_text())["cells"]
    printed = ["".join(output.get("text", "")) for cell in cells if cell["cell_type"] == "code"
               for output in cell.get("outputs", [])]
    table = next(text for text in printed if text.startswith("| Claim"))
    assert table.strip() in README.read_text()


def test_the_conclusion_reads_the_experiments_only() -> None:
    loaded = {name: {"name": name} for name in ("00_architecture", "09_mitigations",
                                               "12_benchmarks", "13_finetuning", "conclusion")}
    experiments = run_configuration.experiment_results(loaded)
    assert list(experiments) == ["00_architecture", "09_mitigations"]
