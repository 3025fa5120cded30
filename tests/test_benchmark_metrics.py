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


def _tasks_with_known_mean(rng: np.random.Generator, n_images: int = 40, per_image: int = 3):
    """PhraseCut-like data: each sample its own class, IoU x / 100 exactly at every threshold,
    x = 50 + an image effect + a sample effect (uniform integers): the mean mIoU is 0.5."""
    counts, classes, images = [], [], []
    for image in range(n_images):
        shared = rng.integers(-25, 26)
        for sample in range(per_image):
            x = 50 + shared + rng.integers(-20, 21)
            counts.append(np.tile([x, 99 - x, 0, 500], (49, 1)))
            classes.append(f"{image}_{sample}")
            images.append(image)
    return np.array(counts), classes, images


@pytest.mark.slow
def test_image_bootstrap_of_miou_covers_the_known_mean_about_95_percent():
    # Counting each class of an image drawn twice once (the old resample) covered 0.5 in
    # about 85% of repetitions; weighting by draw count covers it in about 95%.
    rng, repetitions, covered = np.random.default_rng(0), 200, 0
    for repetition in range(repetitions):
        counts, classes, images = _tasks_with_known_mean(rng)
        point = bm.reported_scores(bm.benchmark_scores(counts, classes), 0.3)
        resampled = bm.bootstrap_resamples(counts, classes, images, 0.3, n_resamples=400,
                                           seed=repetition)
        miou = bm.estimates(point, resampled, len(classes))["miou"]
        covered += miou.ci_low <= 0.5 <= miou.ci_high
    assert 0.90 <= covered / repetitions <= 0.99


def test_a_class_of_an_image_drawn_twice_counts_twice_in_miou():
    ious = np.array([0.2, 0.5, 0.9])  # 1000-fold pixel counts: the smoothing's 1 is negligible
    counts = np.array([np.tile([1e5 * iou, 1e5 * (1 - iou), 0, 0], (49, 1)) for iou in ious])
    resampled = bm.bootstrap_resamples(counts, ["a", "b", "c"], [0, 1, 2], 0.3, n_resamples=50)
    # Each resample is the mean of three drawn classes, repeats included (k_a + k_b + k_c = 3);
    # counting each distinct class once would give e.g. (0.2 + 0.5) / 2 = 0.35 for (a, a, b).
    draws = np.array([(i, j, 3 - i - j) for i in range(4) for j in range(4 - i)])
    expected = draws @ ious / 3
    assert all(np.isclose(expected, value, atol=1e-4).any() for value in resampled["miou"])
    assert len(np.unique(np.round(resampled["miou"], 4))) > 3
