"""Segmentation and detection metrics on numpy arrays.

Conventions used throughout:

- A mask is a ``(H, W)`` bool array (integer 0/1 arrays are accepted and read as ``!= 0``;
  float arrays are rejected so that probabilities are never silently treated as masks).
- A probability map is a ``(H, W)`` float array with values in ``[0, 1]``.
- A "set" of masks or maps is a sequence of ``(H, W)`` arrays or one ``(N, H, W)`` array;
  pairs must have equal shapes, different pairs may differ.
- A probability map becomes a mask where ``probs > threshold``.
- IoU of two empty masks is 1.0: nothing to find and nothing found is a perfect answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_THRESHOLD = 0.5
"""The probability above which a pixel is foreground, everywhere a mask is read."""

ArraySet = Sequence[np.ndarray] | np.ndarray


def _as_mask(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as a ``(H, W)`` bool mask, or raise naming ``name``."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) mask, got shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if np.issubdtype(array.dtype, np.integer):
        return array != 0
    raise ValueError(f"{name} must be a bool or integer 0/1 mask, got dtype {array.dtype}")


def _as_probs(array: np.ndarray, name: str) -> np.ndarray:
    """Return ``array`` as a ``(H, W)`` float map in ``[0, 1]``, or raise naming ``name``."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) probability map, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be a float probability map, got dtype {array.dtype}")
    if not np.all((array >= 0.0) & (array <= 1.0)):
        raise ValueError(f"{name} must hold finite values in [0, 1]")
    return array


def _check_same_shape(first: np.ndarray, second: np.ndarray, names: str) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{names} must have the same shape, got {first.shape} and {second.shape}")


def _as_list(arrays: ArraySet, name: str) -> list[np.ndarray]:
    """Split a set (sequence or ``(N, H, W)`` array) into a non-empty list of arrays."""
    if isinstance(arrays, np.ndarray) and arrays.ndim != 3:
        raise ValueError(f"{name} must be a sequence of (H, W) arrays or one (N, H, W) array")
    items = list(arrays)
    if not items:
        raise ValueError(f"{name} must not be empty")
    return items


def _paired(
    values: ArraySet, targets: ArraySet, name: str, convert
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(converted value, bool target) pairs of equal shape; ValueError naming the bad index."""
    value_list, target_list = _as_list(values, name), _as_list(targets, "targets")
    if len(value_list) != len(target_list):
        raise ValueError(
            f"{name} and targets must have the same length, got {len(value_list)} and "
            f"{len(target_list)}"
        )
    pairs = []
    for index, (value, target) in enumerate(zip(value_list, target_list, strict=True)):
        value = convert(value, f"{name}[{index}]")
        target = _as_mask(target, f"targets[{index}]")
        _check_same_shape(value, target, f"{name}[{index}] and targets[{index}]")
        pairs.append((value, target))
    return pairs


def _paired_masks(preds: ArraySet, targets: ArraySet) -> list[tuple[np.ndarray, np.ndarray]]:
    return _paired(preds, targets, "preds", _as_mask)


def _paired_probs(probs: ArraySet, targets: ArraySet) -> list[tuple[np.ndarray, np.ndarray]]:
    return _paired(probs, targets, "probs", _as_probs)


def _ratio(intersection: int, union: int) -> float:
    return 1.0 if union == 0 else intersection / union


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two ``(H, W)`` masks, in ``[0, 1]``.

    Both empty gives 1.0; exactly one empty gives 0.0.
    """
    pred, target = _as_mask(pred, "pred"), _as_mask(target, "target")
    _check_same_shape(pred, target, "pred and target")
    return _ratio(int(np.sum(pred & target)), int(np.sum(pred | target)))


def mean_iou(preds: ArraySet, targets: ArraySet) -> float:
    """Mean of the per-pair :func:`iou` over a set of masks (this project's mIoU)."""
    return float(np.mean([iou(pred, target) for pred, target in _paired_masks(preds, targets)]))


def _dataset_iou(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    intersection = sum(int(np.sum(pred & target)) for pred, target in pairs)
    union = sum(int(np.sum(pred | target)) for pred, target in pairs)
    return _ratio(intersection, union)


def foreground_iou(preds: ArraySet, targets: ArraySet) -> float:
    """Dataset-level foreground IoU: summed intersections over summed unions (IoU_FG).

    Large objects weigh more than in :func:`mean_iou`. All masks empty gives 1.0.
    """
    return _dataset_iou(_paired_masks(preds, targets))


def binary_iou(preds: ArraySet, targets: ArraySet) -> float:
    """Mean of dataset-level foreground IoU and background IoU (the paper's IoU_BIN)."""
    pairs = _paired_masks(preds, targets)
    background_pairs = [(~pred, ~target) for pred, target in pairs]
    return (_dataset_iou(pairs) + _dataset_iou(background_pairs)) / 2.0


def _pooled_pixels(probs: ArraySet, targets: ArraySet) -> tuple[np.ndarray, np.ndarray]:
    """Flatten a set of ``(H, W)`` maps and masks (or a single pair) into 1-D pixel arrays."""
    if isinstance(probs, np.ndarray) and probs.ndim == 2:
        probs, targets = [probs], [np.asarray(targets)]
    pairs = _paired_probs(probs, targets)
    scores = np.concatenate([prob.ravel() for prob, _ in pairs]).astype(np.float64)
    labels = np.concatenate([target.ravel() for _, target in pairs])
    return scores, labels


def average_precision(probs: ArraySet, targets: ArraySet) -> float:
    """Step-wise pixel AP of probability maps against masks, in ``[0, 1]``: printed "pixel AP
    (step-wise)", not the paper's foreground AP ("AP_FG", `benchmark_metrics`).

    ``probs`` and ``targets`` are one ``(H, W)`` pair or a set of pairs whose pixels are pooled.
    AP is the step-wise area under the precision-recall curve,
    ``sum_n (R_n - R_{n-1}) * P_n`` over distinct thresholds, as in scikit-learn's
    ``average_precision_score``; tied probabilities form one threshold.
    Returns nan when no target pixel is positive (recall is undefined).
    """
    scores, labels = _pooled_pixels(probs, targets)
    if not labels.any():
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    true_positives = np.cumsum(sorted_labels)[last_of_each_score]
    predicted_positives = last_of_each_score + 1
    precision = true_positives / predicted_positives
    recall = true_positives / true_positives[-1]
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def presence_score(probs: np.ndarray) -> float:
    """How strongly a ``(H, W)`` probability map says the object is there: its maximum."""
    return float(np.max(_as_probs(probs, "probs")))


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve of 1-D ``scores`` for binary ``labels``, in ``[0, 1]``.

    Computed as the Mann-Whitney U statistic with average ranks for ties, so a tie between a
    positive and a negative counts one half. Returns nan when only one class is present.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D, got {scores.shape} and {labels.shape}")
    if scores.size != labels.size:
        raise ValueError(
            f"scores and labels must have the same length, got {scores.size} and {labels.size}"
        )
    if scores.size == 0:
        raise ValueError("scores must not be empty")
    if not (np.issubdtype(scores.dtype, np.number) and np.all(np.isfinite(scores))):
        raise ValueError("scores must be finite real numbers")
    if labels.dtype != np.bool_:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be bool or integer 0/1, got dtype {labels.dtype}")
        labels = labels != 0
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    _, first_rank, tie_counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(first_rank + (tie_counts + 1) / 2.0, tie_counts)
    u_statistic = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u_statistic / (positives * negatives))
