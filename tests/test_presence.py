"""Presence as SAM 3 measures it: IL_MCC, pmF1 and cgF1 on hand-computed cases."""

import numpy as np
import pytest

from clipseg_lib.analysis.presence import il_mcc, positive_micro_f1, presence_scores


def test_il_mcc_matches_the_hand_computed_correlation():
    # tp 2, fn 1, fp 1, tn 1: (2 * 1 - 1 * 1) / sqrt(3 * 3 * 2 * 2) = 1 / 6
    assert il_mcc([1, 1, 1, 0, 0], [1, 1, 0, 1, 0]) == pytest.approx(1 / 6)
    assert il_mcc([1, 1, 0, 0], [1, 1, 0, 0]) == 1.0
    assert il_mcc([1, 1, 0, 0], [0, 0, 1, 1]) == -1.0


def test_il_mcc_is_undefined_for_a_constant_answer_or_truth():
    assert il_mcc([1, 1, 0, 0], [1, 1, 1, 1]) is None  # marks everything: says nothing
    assert il_mcc([1, 1, 1], [1, 0, 1]) is None
    with pytest.raises(ValueError, match="equal-length"):
        il_mcc([1, 0], [1])


def test_positive_micro_f1_averages_over_iou_thresholds_0_5_to_0_95():
    # tau 0.50-0.60 (3): tp 2, fp 1, fn 1 -> 2/3; tau 0.65-0.90 (6): tp 1, fp 2, fn 2 -> 1/3;
    # tau 0.95: tp 0, fp 3, fn 3 -> 0; mean (3 * 2/3 + 6 * 1/3) / 10 = 0.4
    assert positive_micro_f1([0.9, 0.6, 0.3], [True, True, True]) == pytest.approx(0.4)
    # an empty mask is a false negative only, not also a false positive
    assert positive_micro_f1([1.0, 0.0], [True, False]) == pytest.approx(2 / 3)


def test_presence_scores_give_cgf1_with_intervals_and_undefined_when_constant():
    rng = np.random.default_rng(0)
    ious = rng.uniform(0.55, 1.0, 40)
    scores = presence_scores(ious, [True] * 40, [False] * 30 + [True] * 10, seed=0)
    # tp 40, fn 0, fp 10, tn 30: 30 * 40 / sqrt(50 * 40 * 40 * 30) = 0.7746
    assert scores.il_mcc == pytest.approx(0.774597, abs=1e-6)
    assert scores.cg_f1 == pytest.approx(100 * scores.pm_f1 * scores.il_mcc)
    assert scores.il_mcc_ci[0] < scores.il_mcc < scores.il_mcc_ci[1]
    assert scores.cg_f1_ci[0] < scores.cg_f1 < scores.cg_f1_ci[1]
    assert (scores.n_present, scores.n_absent) == (40, 40)
    always = presence_scores(ious, [True] * 40, [True] * 40)
    assert always.il_mcc is None and always.cg_f1 is None and always.cg_f1_ci is None
    assert str(always).startswith("IL_MCC undefined, pmF1 ")
    assert always.as_dict()["pm_f1_ci"] == list(always.pm_f1_ci)
