"""Verdict rules on hand-made summaries; claims built from results files."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from clipseg_lib.experiments import conclusion
from clipseg_lib.study.results import load_results, save_results


def robust(clean: float, severity1: float, vs_clean: float) -> dict[str, float]:
    return {"iou_gt_clean": clean, "iou_gt_severity1": severity1, "iou_gt_severity5": 0.3,
            "iou_vs_clean_severity1": vs_clean, "iou_vs_clean_severity5": 0.4}


def fails(miou: float, hit_rate: float, chance: float = 0.3) -> dict[str, float]:
    return {"miou": miou, "hit_rate": hit_rate, "chance": chance}


def negation(miou_negation_gt: float, overlap: float) -> dict[str, float]:
    return {"miou_negation_gt": miou_negation_gt, "iou_not_x_vs_x": overlap, "miou_x": 0.8}


def absent(auroc: float, area: float) -> dict[str, float]:
    return {"false_positive_area": area, "presence_auroc": auroc, "calibrated_threshold": 0.4,
            "present_miou": 0.7}


@pytest.mark.parametrize(("kind", "summary", "verdict"), [
    ("robust", robust(0.8, 0.78, 0.9), "confirmed"),
    ("robust", robust(0.8, 0.70, 0.9), "mixed"),
    ("robust", robust(0.8, 0.60, 0.9), "not confirmed"),
    ("robust", robust(0.8, 0.79, 0.4), "not confirmed"),
    ("robust", robust(0.3, 0.30, 1.0), "mixed"),
    ("fails", fails(0.3, 0.9), "confirmed"),
    ("fails", fails(0.9, 0.4), "confirmed"),
    ("fails", fails(0.6, 0.9), "mixed"),
    ("fails", fails(0.9, 0.9), "not confirmed"),
    ("negation", negation(0.3, 0.1), "confirmed"),
    ("negation", negation(0.9, 0.6), "confirmed"),
    ("negation", negation(0.6, 0.1), "mixed"),
    ("negation", negation(0.9, 0.1), "not confirmed"),
    ("absent", absent(0.8, 0.0), "confirmed"),
    ("absent", absent(0.99, 0.02), "confirmed"),
    ("absent", absent(0.92, 0.0), "mixed"),
    ("absent", absent(0.99, 0.001), "not confirmed"),
])
def test_each_verdict_is_reachable(kind, summary, verdict):
    assert conclusion.judge(kind, summary)[0] == verdict


def test_the_rule_that_decided_is_reported_with_its_numbers():
    assert conclusion.judge("fails", fails(0.25, 0.9)) == ("confirmed", "miou 0.250 < 0.500")
    verdict, rule = conclusion.judge("absent", absent(0.99, 0.001))
    assert verdict == "not confirmed"
    assert rule == "presence_auroc 0.990 >= 0.950 and false_positive_area 0.001 <= 0.005"


def test_undefined_values_are_not_measured_and_missing_keys_are_errors():
    assert conclusion.judge("absent", absent(None, 0.0)) == (
        "not measured", "undefined: presence_auroc"
    )
    assert conclusion.judge("fails", fails(float("nan"), 0.5))[0] == "not measured"
    with pytest.raises(ValueError, match="lacks \\['chance'\\]"):
        conclusion.judge("fails", {"miou": 0.4, "hit_rate": 0.5})
    with pytest.raises(ValueError, match="claim kind 'magic'"):
        conclusion.judge("magic", {})


def test_evidence_gives_the_numbers_with_three_decimals():
    text = conclusion.evidence("fails", {**fails(0.25, 0.5), "control_miou": 0.8})
    assert text == ("mIoU 0.250 (composite prompts: 0.800); the asked object scores highest in "
                    "0.500 of the cases (chance 0.300)")
    assert "AUROC 0.812" in conclusion.evidence("absent", absent(0.8123, 0.02))


class FakeSegmenter:
    def __init__(self, name: str, digest: str) -> None:
        self.provenance = {"model": name, "weights_sha256": digest}


def test_claims_from_results_files(tmp_path):
    mini = FakeSegmenter("mini", "ab" * 32)
    save_results(tmp_path, "02_distorted_images", {"summary": robust(0.8, 0.78, 0.9)},
                 segmenter=mini, seed=0)
    save_results(tmp_path, "08_absent_objects", {"summary": absent(0.7, 0.05)},
                 segmenter=FakeSegmenter("CIDAS/clipseg-rd64-refined", "cd" * 32), seed=0)
    claims = conclusion.build_claims(load_results(tmp_path))
    by_source = {claim["source"]: claim for claim in claims}
    assert len(claims) == len(conclusion.CLAIMS) == 6
    assert by_source["02_distorted_images"]["verdict"] == "confirmed"
    assert by_source["02_distorted_images"]["weights"] == "ab" * 6
    assert by_source["08_absent_objects"]["verdict"] == "confirmed"
    assert by_source["05_specific_word"]["verdict"] == "not measured"
    assert conclusion.verdict_counts(claims) == {
        "confirmed": 2, "not confirmed": 0, "mixed": 0, "not measured": 4,
    }
    sentence = conclusion.finding(claims, model="mini")
    assert sentence.startswith("Of the poster's 6 claims: 2 confirmed, 4 not measured")
    assert "another model than 'mini' (CIDAS/clipseg-rd64-refined)" in sentence
    assert [row["results"] for row in conclusion.sources(load_results(tmp_path))] == [
        "02_distorted_images", "08_absent_objects",
    ]


def test_a_results_file_without_summary_is_an_error(tmp_path):
    save_results(tmp_path, "06_negation", {"rows": []}, seed=0)
    with pytest.raises(ValueError, match="06_negation.json has no results\\['summary'\\]"):
        conclusion.build_claims(load_results(tmp_path))


def test_markdown_table_has_a_row_per_claim(tmp_path):
    claims = conclusion.build_claims({})
    table = conclusion.markdown_table(claims).splitlines()
    assert table[0].split("|")[1].strip() == "Claim"
    assert len(table) == 2 + 6
    assert all("not measured" in line for line in table[2:])
    assert conclusion.finding(claims, model="mini").endswith("no results were found.")
    figure = conclusion.plot_verdicts(claims)
    assert [t.get_text() for t in figure.axes[0].texts] == ["not measured"] * 6
    plt.close(figure)
