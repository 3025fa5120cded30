"""The paper's metrics on hand-computed cases (definitions of the original FixedIntervalMetrics)."""

from __future__ import annotations

import numpy as np
import pytest

from clipseg_lib.analysis import benchmark_metrics as bm

PROBS = np.array([[0.9, 0.1], [0.6, 0.2]])
TARGET = np.array([[True, False], [True, True]])
AT_03 = bm.threshold_index(0.3)


def test_thresholds_are_the_originals_49():
    assert bm.THRESHOLDS.size == 49
    assert bm.THRESHOLDS[0] == pytest.approx(0.02) and bm.THRESHOLDS[-1] == pytest.approx(0.98)
    assert AT_03 == 14 and bm.threshold_index(0.5) == 24
    with pytest.raises(ValueError, match="not one of the 49"):
        bm.threshold_index(0.31)


def test_counts_by_hand():
    counts = bm.confusion_counts(PROBS, TARGET)
    assert counts.shape == (49, 4)
    # t=0.02: everything predicted; t=0.1: 0.1 itself is not above; t=0.3: 0.9 and 0.6; t=0.7: 0.9.
    assert counts[0].tolist() == [3, 1, 0, 0]
    assert counts[bm.threshold_index(0.1)].tolist() == [3, 0, 0, 1]
    assert counts[AT_03].tolist() == [2, 0, 1, 1]
    assert counts[bm.threshold_index(0.7)].tolist() == [1, 0, 2, 1]


def test_ignored_pixels_leave_every_count():
    ignore = np.array([[False, False], [False, True]])
    assert bm.confusion_counts(PROBS, TARGET, ignore)[AT_03].tolist() == [2, 0, 0, 1]


def test_counts_equal_thresholding_every_pixel():
    rng = np.random.default_rng(3)
    probs, target = rng.random((17, 23)), rng.random((17, 23)) > 0.7
    counts = bm.confusion_counts(probs, target)
    for index, threshold in enumerate(bm.THRESHOLDS):
        pred = probs > threshold
        expected = [(pred & target).sum(), (pred & ~target).sum(), (~pred & target).sum(),
                    (~pred & ~target).sum()]
        assert counts[index].tolist() == expected


def test_ious_are_smoothed_by_one():
    scores = bm.benchmark_scores(bm.confusion_counts(PROBS, TARGET)[None], ["a"])
    assert scores["fgiou"][AT_03] == pytest.approx(2 / (1 + 2 + 0 + 1))
    assert scores["biniou"][AT_03] == pytest.approx(0.5 * 2 / 4 + 0.5 * 1 / (1 + 1 + 1 + 0))
    assert scores["miou"][AT_03] == pytest.approx(0.5)


def test_miou_sums_within_a_class_and_averages_over_classes():
    second = bm.confusion_counts(np.array([[0.8, 0.8], [0.0, 0.0]]),
                                 np.array([[True, False], [False, False]]))
    counts = np.stack([bm.confusion_counts(PROBS, TARGET), second])  # at 0.3: (2,0,1,1), (1,1,0,2)
    same_class = bm.benchmark_scores(counts, ["a", "a"])
    two_classes = bm.benchmark_scores(counts, ["a", "b"])
    assert same_class["miou"][AT_03] == pytest.approx(3 / (1 + 3 + 1 + 1))
    assert two_classes["miou"][AT_03] == pytest.approx((2 / 4 + 1 / 3) / 2)
    assert two_classes["fgiou"][AT_03] == pytest.approx(3 / 6) == same_class["fgiou"][AT_03]
    assert two_classes["n_classes"] == 2 and two_classes["n"] == 2


def _summed(levels: list[tuple[int, int, int, int]]) -> np.ndarray:
    """49 thresholds split into len(levels) equal runs of the given counts."""
    runs = np.array_split(np.arange(49), len(levels))
    summed = np.zeros((49, 4), dtype=np.int64)
    for run, level in zip(runs, levels, strict=True):
        summed[run] = level
    return summed


def test_ap_integrates_distinct_points_with_simpson():
    # recalls tp/(1+tp+fn) = 0.9, 0.5, 0.1; precisions tp/(1+tp+fp) = 0.75, 5/6, 0.5;
    # the last run predicts nothing and is left out.
    summed = _summed([(9, 2, 0, 0), (5, 0, 4, 0), (1, 0, 8, 0), (0, 0, 9, 0)])
    ap, curve = bm.average_precision(summed)
    assert [r for r, _ in curve] == pytest.approx([0.1, 0.5, 0.9])
    simpson = 0.4 / 3 * (0.5 + 4 * 5 / 6 + 0.75)
    assert ap == pytest.approx(simpson)
    assert ap != pytest.approx(0.4 * (0.5 + 5 / 6) / 2 + 0.4 * (5 / 6 + 0.75) / 2)  # trapezoid


def test_ap_of_no_prediction_is_refused():
    with pytest.raises(ValueError, match="AP is undefined"):
        bm.average_precision(_summed([(0, 0, 5, 5)]))


def test_reported_scores_at_a_threshold_and_at_the_best():
    counts = bm.confusion_counts(PROBS, TARGET)[None]
    scores = bm.benchmark_scores(counts, [0])
    at_03 = bm.reported_scores(scores, 0.3)
    best = bm.reported_scores(scores, "best")
    assert at_03["fgiou"] == pytest.approx(0.5)
    # best fgiou: t = 0.1 predicts exactly the target, 3 / (1 + 3).
    assert best["fgiou"] == pytest.approx(0.75)
    assert at_03["ap"] == best["ap"] == scores["ap"]


def test_resize_is_bilinear_with_aligned_corners():
    resized = bm.resize_probabilities(np.array([[0.0, 1.0], [1.0, 0.0]]), (3, 3))
    np.testing.assert_allclose(resized, [[0, 0.5, 1], [0.5, 0.5, 0.5], [1, 0.5, 0]], atol=1e-6)
    batch = bm.resize_probabilities(np.zeros((2, 4, 4)), (8, 6))
    assert batch.shape == (2, 8, 6)


def test_bootstrap_interval_holds_the_point_and_is_seeded():
    rng = np.random.default_rng(0)
    counts, classes, images = [], [], []
    for index in range(20):
        target = rng.random((12, 12)) > 0.6
        probs = np.clip(target * 0.5 + rng.random((12, 12)) * 0.6, 0, 1)
        counts.append(bm.confusion_counts(probs, target))
        classes.append(index % 4)
        images.append(index // 2)
    counts = np.array(counts)
    point = bm.reported_scores(bm.benchmark_scores(counts, classes), 0.3)
    resampled = bm.bootstrap_resamples(counts, classes, images, 0.3, n_resamples=200, seed=1)
    again = bm.bootstrap_resamples(counts, classes, images, 0.3, n_resamples=200, seed=1)
    estimates = bm.estimates(point, resampled, 20)
    for name, estimate in estimates.items():
        assert estimate.ci_low <= estimate.mean <= estimate.ci_high, name
        assert estimate.ci_high - estimate.ci_low > 0.001, name
        assert np.array_equal(resampled[name], again[name])
    assert estimates["miou"].n == 20


def test_resamples_without_a_prediction_leave_ap_undefined_not_the_evaluation():
    marked = bm.confusion_counts(PROBS, TARGET)
    nothing = bm.confusion_counts(np.zeros_like(PROBS), TARGET)
    counts = np.array([marked, nothing, nothing, nothing])
    resampled = bm.bootstrap_resamples(counts, [0, 1, 2, 3], ["a", "b", "c", "d"], 0.3,
                                       n_resamples=400, seed=0)
    undefined = bm.undefined_resamples(resampled)
    assert set(undefined) == {"ap"} and 0 < undefined["ap"] < 400  # (3/4)^4 of them: ~127
    point = bm.reported_scores(bm.benchmark_scores(counts, [0, 1, 2, 3]), 0.3)
    ap = bm.estimates(point, resampled, 4)["ap"]
    assert ap.ci_low <= ap.mean <= ap.ci_high and not np.isnan(ap.ci_low)
    none = bm.benchmark_scores(np.array([nothing, nothing]), [0, 1])
    assert np.isnan(none["ap"]) and none["pr_curve"] == []
    empty = bm.bootstrap_resamples(np.array([nothing, nothing]), [0, 1], ["a", "b"], 0.3,
                                   n_resamples=10)
    assert np.isnan(bm.estimates(bm.reported_scores(none, 0.3), empty, 2)["ap"].ci_low)
