from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipseg_lib.analysis.metrics import (
    auroc,
    average_precision,
    binary_iou,
    foreground_iou,
    iou,
    mean_iou,
    presence_score,
)

mask_shapes = st.tuples(st.integers(1, 8), st.integers(1, 8))


@st.composite
def mask_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(mask_shapes)
    return draw(arrays(np.bool_, shape)), draw(arrays(np.bool_, shape))


def square(top: int, left: int, size: int = 2, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_iou_of_squares_overlapping_by_one_pixel_is_one_seventh() -> None:
    assert iou(square(0, 0), square(1, 1)) == pytest.approx(1 / 7)


def test_iou_empty_conventions() -> None:
    empty = np.zeros((3, 3), dtype=bool)
    assert iou(empty, empty) == 1.0
    assert iou(empty, square(0, 0, shape=(3, 3))) == 0.0
    assert iou(square(0, 0, shape=(3, 3)), empty) == 0.0


def test_iou_reads_integer_masks_as_nonzero() -> None:
    assert iou(square(0, 0).astype(np.uint8) * 7, square(1, 1).astype(np.int64)) == pytest.approx(
        1 / 7
    )


def test_iou_rejects_float_masks_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="target"):
        iou(square(0, 0), square(0, 0).astype(float))


def test_iou_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="same shape"):
        iou(np.ones((2, 2), bool), np.ones((2, 3), bool))


def test_iou_rejects_non_2d_masks() -> None:
    with pytest.raises(ValueError, match="pred"):
        iou(np.ones(4, bool), np.ones(4, bool))


@given(mask_pairs())
def test_iou_is_bounded_and_symmetric(pair: tuple[np.ndarray, np.ndarray]) -> None:
    first, second = pair
    value = iou(first, second)
    assert 0.0 <= value <= 1.0
    assert value == iou(second, first)


@given(arrays(np.bool_, mask_shapes))
def test_iou_of_mask_with_itself_is_one(mask: np.ndarray) -> None:
    assert iou(mask, mask) == 1.0


@given(mask_pairs())
def test_iou_with_empty_mask_is_zero_unless_both_empty(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    mask = pair[0]
    empty = np.zeros_like(mask)
    assert iou(mask, empty) == (1.0 if not mask.any() else 0.0)


def test_mean_iou_averages_per_pair_values() -> None:
    preds = [square(0, 0), square(0, 0)]
    targets = [square(1, 1), square(0, 0)]
    assert mean_iou(preds, targets) == pytest.approx((1 / 7 + 1) / 2)
    assert mean_iou(np.stack(preds), np.stack(targets)) == pytest.approx((1 / 7 + 1) / 2)


def test_mean_iou_accepts_pairs_of_different_sizes() -> None:
    preds = [square(0, 0), np.ones((2, 5), bool)]
    targets = [square(1, 1), np.ones((2, 5), bool)]
    assert mean_iou(preds, targets) == pytest.approx((1 / 7 + 1) / 2)


def test_set_metrics_reject_empty_and_mismatched_sets() -> None:
    with pytest.raises(ValueError, match="empty"):
        mean_iou([], [])
    with pytest.raises(ValueError, match="same length"):
        foreground_iou([square(0, 0)], [square(0, 0), square(1, 1)])
    with pytest.raises(ValueError, match=r"preds\[1\]"):
        binary_iou([square(0, 0), square(0, 0).astype(float)], [square(0, 0), square(0, 0)])


def test_foreground_iou_weighs_large_objects_more_than_mean_iou() -> None:
    big_pred = np.zeros((10, 10), bool)
    big_pred[:, :9] = True
    big_target = np.ones((10, 10), bool)
    small_pred = np.zeros((10, 10), bool)
    small_target = square(0, 0, size=1, shape=(10, 10))
    # intersections 90 + 0, unions 100 + 1
    assert foreground_iou([big_pred, small_pred], [big_target, small_target]) == pytest.approx(
        90 / 101
    )
    assert mean_iou([big_pred, small_pred], [big_target, small_target]) == pytest.approx(0.45)


def test_foreground_iou_of_all_empty_set_is_one() -> None:
    empty = np.zeros((3, 3), bool)
    assert foreground_iou([empty, empty], [empty, empty]) == 1.0


def test_binary_iou_averages_foreground_and_background() -> None:
    pred, target = square(0, 0), square(1, 1)
    # foreground 1/7; background: intersection 16 - 7 = 9, union 16 - 1 = 15
    assert binary_iou([pred], [target]) == pytest.approx((1 / 7 + 9 / 15) / 2)


def test_binary_iou_of_all_foreground_is_one() -> None:
    full = np.ones((2, 2), bool)
    assert binary_iou([full], [full]) == 1.0


def test_average_precision_hand_example() -> None:
    probs = np.array([[0.9, 0.8], [0.7, 0.6]])
    target = np.array([[True, False], [True, False]])
    # precision at the two positives: 1/1 and 2/3, each adding recall 1/2
    assert average_precision(probs, target) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_average_precision_treats_ties_as_one_threshold() -> None:
    probs = np.array([[0.5, 0.5, 0.2]])
    target = np.array([[True, False, True]])
    # threshold 0.5: precision 1/2 at recall 1/2; threshold 0.2: precision 2/3 at recall 1
    assert average_precision(probs, target) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_average_precision_pools_pixels_over_a_set() -> None:
    probs = [np.array([[0.9, 0.8]]), np.array([[0.7], [0.6]])]
    targets = [np.array([[True, False]]), np.array([[True], [False]])]
    assert average_precision(probs, targets) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_average_precision_is_one_for_perfect_ranking_and_nan_without_positives() -> None:
    probs = np.array([[0.1, 0.9], [0.2, 0.8]])
    assert average_precision(probs, probs > 0.5) == pytest.approx(1.0)
    assert math.isnan(average_precision(probs, np.zeros((2, 2), bool)))


def test_average_precision_rejects_out_of_range_probabilities() -> None:
    with pytest.raises(ValueError, match=r"probs\[0\]"):
        average_precision(np.array([[1.5, 0.2]]), np.array([[True, False]]))


@given(
    arrays(np.float64, (3, 4), elements=st.floats(0, 1)),
    arrays(np.bool_, (3, 4)),
)
def test_average_precision_is_bounded(probs: np.ndarray, target: np.ndarray) -> None:
    value = average_precision(probs, target)
    if target.any():
        assert 0.0 <= value <= 1.0 + 1e-12
    else:
        assert math.isnan(value)


def test_presence_score_is_the_maximum_probability() -> None:
    assert presence_score(np.array([[0.1, 0.7], [0.3, 0.2]])) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="probs"):
        presence_score(np.array([[1, 0]]))


def test_auroc_known_values() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0


def test_auroc_counts_ties_between_classes_as_one_half() -> None:
    assert auroc([0.5, 0.5], [0, 1]) == 0.5
    # positive 0.5 beats 0.2, ties 0.5: (1 + 0.5) / 2
    assert auroc([0.2, 0.5, 0.5], [0, 0, 1]) == pytest.approx(0.75)


def test_auroc_with_one_class_is_nan() -> None:
    assert math.isnan(auroc([0.1, 0.9], [1, 1]))


def test_auroc_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="same length"):
        auroc([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        auroc([], [])
    with pytest.raises(ValueError, match="labels"):
        auroc([0.1, 0.2], [0.0, 1.0])


@given(
    st.lists(st.tuples(st.floats(-5, 5), st.booleans()), min_size=2, max_size=30).filter(
        lambda rows: len({label for _, label in rows}) == 2
    )
)
@settings(max_examples=50)
def test_auroc_is_bounded_and_flips_with_negated_scores(rows: list[tuple[float, bool]]) -> None:
    scores = np.array([score for score, _ in rows])
    labels = np.array([label for _, label in rows])
    value = auroc(scores, labels)
    assert 0.0 <= value <= 1.0
    assert auroc(-scores, labels) == pytest.approx(1.0 - value)
