"""Each claim's one-line headline: the decisive test with interval and n, then the reason."""

from __future__ import annotations

from pathlib import Path

from clipseg_lib.experiments.conclusion import build_claims
from clipseg_lib.report.claim_headline import MAX_HEADLINE, claim_headline, decisive_test
from clipseg_lib.study.results import load_results

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference"


def test_headlines_name_the_decisive_test_with_its_interval_and_n():
    headlines = {claim["claim"]: claim_headline(claim)
                 for claim in build_claims(load_results(REFERENCE))}
    assert headlines["Robust to slightly distorted input images"] == (
        "colour_jitter: -0.124 [-0.191, -0.065] against -0.05, n = 64. Change not shown above "
        "or below -0.05 after the Holm correction: blur, jpeg, rotation, scale_crop, occlusion, "
        "colour_jitter.")
    assert headlines["Fails on facial expressions"].startswith(
        "picked against chance: 0.600 [0.433, 0.751] against 0.352, n = 40. mIoU below the "
        "control; picked above chance")
    assert headlines["Fails when the object is absent"].startswith(
        "absent, unseen pair against the margin: 0.025 [0.001, 0.132] against 0.2, n = 40.")
    assert all(len(headline) <= MAX_HEADLINE for headline in headlines.values())


def test_a_long_reason_is_cut_and_a_claim_without_tests_keeps_its_reason():
    test = {"name": "blur", "effect": -0.2, "ci_low": -0.3, "ci_high": -0.1, "n": 40,
            "bound": -0.05, "p_value": 0.5, "holds": False}
    headline = claim_headline({"reason": "x" * 400, "tests": [test]})
    assert len(headline) == MAX_HEADLINE and headline.endswith("…")
    assert decisive_test({"reason": "none holds", "tests": [test, {**test, "name": "jpeg",
                                                                   "p_value": 0.1}]})["name"] \
        == "jpeg"
    assert claim_headline({"reason": "no 02_distorted_images.json in the output dir"}) == (
        "No 02_distorted_images.json in the output dir")
