"""The CLIPSeg paper's benchmark metrics, with the original repository's definitions.

The original (timojl/clipseg, ``metrics.FixedIntervalMetrics``) scores probability maps at 49
fixed thresholds ``linspace(0, 1, 51)[1:-1]`` (0.02 .. 0.98; a pixel is foreground where
``prob > t``). For each prediction it keeps the pixel counts ``[tp, fp, fn, tn]`` per
threshold, ignoring the pixels of an ignore mask, and from the counts summed over a dataset:

- IoU_FG (``fgiou``): ``tp / (1 + tp + fp + fn)`` of the summed counts (large objects weigh
  more); the ``1 +`` smoothing is the original's, on every ratio below too.
- mIoU (``miou``): the same ratio per class (counts summed within the class), then the mean
  over classes. A class is a Pascal class; for PhraseCut each task (one phrase on one image)
  is its own class, as the original passes the sample index as the class.
- IoU_BIN (``biniou``, FB-IoU): the mean of the foreground ratio and the background ratio
  ``tn / (1 + tn + fn + fp)``.
- AP (the paper's foreground AP, printed "AP_FG" to keep it apart from the step-wise pixel AP
  of `clipseg_lib.analysis.metrics.average_precision`): precision ``tp / (1 + tp + fp)``
  against recall ``tp / (1 + tp + fn)`` at the thresholds where anything is predicted;
  distinct (recall, precision) pairs sorted by recall and integrated with Simpson's rule
  (``scipy.integrate.simpson``). It is undefined (None; NaN in a bootstrap resample) when no
  threshold predicts any pixel.

Predictions are resized bilinearly (``align_corners=True``) to the ground truth's size before
counting (:func:`resize_probabilities`). The paper reports PhraseCut and Pascal-5i at t = 0.3
(``PHRASECUT_THRESHOLD``; the original's ``Tables.ipynb`` prints ``pas_h2_miou_0.3``); each
curve's best threshold is the original's "without fixed thresholds" column.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.integrate import simpson

from clipseg_lib.analysis.metrics import _as_mask, _as_probs
from clipseg_lib.analysis.stats import Estimate, percentile_interval

THRESHOLDS = np.linspace(0.0, 1.0, 51)[1:-1]
"""The 49 fixed thresholds 0.02 .. 0.98 of the original's FixedIntervalMetrics."""
PHRASECUT_THRESHOLD = 0.3
"""The threshold at which the paper reports PhraseCut and Pascal-5i mIoU, IoU_FG, IoU_BIN."""
COUNT_NAMES = ("tp", "fp", "fn", "tn")
"""Order of the last axis of a counts array."""


def resize_probabilities(probs: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (align_corners=True, as the original) of (h, w) or (N, h, w) float maps
    to ``size`` = (H, W); returns float32 of shape (H, W) or (N, H, W)."""
    maps = torch.as_tensor(np.asarray(probs, dtype=np.float32))
    single = maps.ndim == 2
    batch = maps[None, None] if single else maps[:, None]
    resized = F.interpolate(batch, size=tuple(size), mode="bilinear", align_corners=True)[:, 0]
    return (resized[0] if single else resized).numpy()


def confusion_counts(
    probs: np.ndarray, target: np.ndarray, ignore: np.ndarray | None = None
) -> np.ndarray:
    """``[tp, fp, fn, tn]`` pixel counts of ``probs > t`` for each of the 49 `THRESHOLDS`.

    probs (H, W) float in [0, 1]; target (H, W) bool; ignore (H, W) bool marks pixels left
    out. Returns int64 (49, 4).
    """
    probs = _as_probs(probs, "probs")
    target = _as_mask(target, "target")
    if probs.shape != target.shape:
        raise ValueError(f"probs {probs.shape} and target {target.shape} differ in shape")
    if ignore is not None:
        keep = ~_as_mask(ignore, "ignore")
        if keep.shape != target.shape:
            raise ValueError(f"ignore {keep.shape} and target {target.shape} differ in shape")
        probs, target = probs[keep], target[keep]
    # A pixel is predicted at threshold j iff it lies above THRESHOLDS[j], i.e. iff more than
    # j thresholds lie below it: a histogram over "thresholds below" counts every threshold
    # at once, exactly, without sorting the pixels.
    thresholds_below = np.searchsorted(THRESHOLDS, probs.ravel(), side="left")
    bins = THRESHOLDS.size + 1
    predicted = _counts_above(np.bincount(thresholds_below, minlength=bins))
    true_positives = _counts_above(
        np.bincount(thresholds_below[target.ravel()], minlength=bins)
    )
    positives, pixels = int(target.sum()), int(target.size)
    false_positives = predicted - true_positives
    false_negatives = positives - true_positives
    true_negatives = pixels - predicted - false_negatives
    return np.stack(
        [true_positives, false_positives, false_negatives, true_negatives], axis=1
    ).astype(np.int64)


def _counts_above(histogram: np.ndarray) -> np.ndarray:
    """For each threshold j, the pixels with more than j thresholds below them."""
    return np.cumsum(histogram[::-1])[::-1][1:]


def _smoothed(numerator: np.ndarray, *others: np.ndarray) -> np.ndarray:
    return numerator / (1.0 + numerator + sum(others))


def _iou_curves(summed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground IoU, binary IoU) of (..., 4) summed counts, each of shape (...)."""
    tp, fp, fn, tn = np.moveaxis(np.asarray(summed, dtype=np.float64), -1, 0)
    foreground = _smoothed(tp, fp, fn)
    return foreground, 0.5 * foreground + 0.5 * _smoothed(tn, fn, fp)


def average_precision(summed: np.ndarray) -> tuple[float, list[tuple[float, float]]]:
    """(AP, the sorted distinct (recall, precision) pairs) of (49, 4) summed counts."""
    tp, fp, fn, _ = np.asarray(summed, dtype=np.float64).T
    predicted = tp + fp > 0
    if not predicted.any():
        raise ValueError("no threshold predicts any pixel: AP is undefined")
    precision = _smoothed(tp, fp)[predicted]
    recall = _smoothed(tp, fn)[predicted]
    curve = sorted(set(zip(recall.tolist(), precision.tolist(), strict=True)))
    recalls, precisions = zip(*curve, strict=True)
    return float(simpson(np.array(precisions), x=np.array(recalls))), curve


def threshold_index(threshold: float) -> int:
    """Index of ``threshold`` in `THRESHOLDS` (one of 0.02, 0.04, .., 0.98)."""
    matches = np.flatnonzero(np.isclose(THRESHOLDS, threshold))
    if matches.size != 1:
        raise ValueError(f"threshold {threshold!r} is not one of the 49 fixed thresholds")
    return int(matches[0])


def benchmark_scores(counts: np.ndarray, class_ids: Sequence[Hashable]) -> dict:
    """The paper's metrics of N predictions' counts (N, 49, 4) and their N class ids.

    Returns ``{"ap", "fgiou", "miou", "biniou"}`` (float curves over `THRESHOLDS` for the
    three IoUs; "ap" None when no threshold predicts any pixel), ``"pr_curve"`` (distinct
    (recall, precision) pairs), ``"n"`` and ``"n_classes"``.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 3 or counts.shape[1:] != (THRESHOLDS.size, 4) or counts.shape[0] == 0:
        raise ValueError(f"counts must be a non-empty (N, 49, 4) array, got {counts.shape}")
    if len(class_ids) != counts.shape[0]:
        raise ValueError(f"{len(class_ids)} class ids for {counts.shape[0]} predictions")
    summed = counts.sum(axis=0)
    fgiou, biniou = _iou_curves(summed)
    classes = sorted(set(class_ids), key=repr)
    index_of = {class_id: index for index, class_id in enumerate(classes)}
    per_class = np.zeros((len(classes), *summed.shape), dtype=np.int64)
    np.add.at(per_class, [index_of[class_id] for class_id in class_ids], counts)
    miou = np.mean([_iou_curves(class_counts)[0] for class_counts in per_class], axis=0)
    ap, curve = _defined_ap(summed)
    return {
        "ap": ap,
        "fgiou": fgiou.tolist(),
        "miou": miou.tolist(),
        "biniou": biniou.tolist(),
        "pr_curve": curve,
        "n": int(counts.shape[0]),
        "n_classes": len(classes),
    }


def _defined_ap(summed: np.ndarray) -> tuple[float | None, list[tuple[float, float]]]:
    """`average_precision`, or (None, []) when no threshold predicts any pixel."""
    if not (summed[:, 0] + summed[:, 1] > 0).any():
        return None, []
    return average_precision(summed)


IOU_NAMES = ("miou", "fgiou", "biniou")
BOOTSTRAP_RESAMPLES = 1000
_RESAMPLES_PER_CHUNK = 100


def reported_indices(scores: dict, threshold: float | str) -> dict[str, int]:
    """Threshold index at which each IoU of `benchmark_scores` is reported: that of
    ``threshold`` (one of `THRESHOLDS`) or, with "best", each curve's own best."""
    if threshold == "best":
        return {name: int(np.argmax(scores[name])) for name in IOU_NAMES}
    index = threshold_index(float(threshold))
    return dict.fromkeys(IOU_NAMES, index)


def reported_scores(scores: dict, threshold: float | str) -> dict[str, float]:
    """``{"miou", "fgiou", "biniou", "ap"}`` read off `benchmark_scores` at ``threshold``
    ("ap" None when undefined)."""
    indices = reported_indices(scores, threshold)
    return {
        **{name: float(scores[name][indices[name]]) for name in IOU_NAMES},
        "ap": None if scores["ap"] is None else float(scores["ap"]),
    }


def bootstrap_resamples(
    counts: np.ndarray,
    class_ids: Sequence[Hashable],
    image_ids: Sequence[Hashable],
    threshold: float | str,
    *,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """`reported_scores` of ``n_resamples`` resamples of the images (all samples of one image
    together, drawn with replacement); IoUs are read at the thresholds at which the full data
    reports them. Returns {"miou", "fgiou", "biniou", "ap"}: float arrays (n_resamples,);
    "ap" is NaN in a resample where no threshold predicts any pixel.

    An image drawn k times counts k times everywhere: its pixel counts are weighted by k, and
    in mIoU's mean over classes each class weighs the mean draw count of its samples, so a
    class within one image (a PhraseCut task) drawn k times counts k times, and a class spread
    over many images (a Pascal class) weighs about 1.
    """
    counts = np.asarray(counts, dtype=np.int64)
    indices = reported_indices(benchmark_scores(counts, class_ids), threshold)
    images, image_of_sample = np.unique(np.asarray(image_ids, dtype=str), return_inverse=True)
    classes = sorted(set(class_ids), key=repr)
    class_index = {class_id: index for index, class_id in enumerate(classes)}
    class_of_sample = np.array([class_index[class_id] for class_id in class_ids])
    samples_per_class = np.bincount(class_of_sample, minlength=len(classes))[:, None]
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(images.size, np.full(images.size, 1.0 / images.size), n_resamples)
    resampled: dict[str, list[float]] = {name: [] for name in (*IOU_NAMES, "ap")}
    flat = counts.reshape(counts.shape[0], -1).astype(np.float64)
    for start in range(0, n_resamples, _RESAMPLES_PER_CHUNK):
        weights = draws[start : start + _RESAMPLES_PER_CHUNK][:, image_of_sample].astype(float)
        summed = (weights @ flat).reshape(-1, *counts.shape[1:])
        fgiou, biniou = _iou_curves(summed)
        resampled["fgiou"] += fgiou[:, indices["fgiou"]].tolist()
        resampled["biniou"] += biniou[:, indices["biniou"]].tolist()
        resampled["ap"] += [np.nan if ap is None else ap
                            for ap in (_defined_ap(one)[0] for one in summed)]
        per_class = np.zeros((len(classes), weights.shape[0], 4))
        np.add.at(
            per_class, class_of_sample, weights.T[:, :, None] * counts[:, indices["miou"], None, :]
        )
        class_weight = np.zeros((len(classes), weights.shape[0]))
        np.add.at(class_weight, class_of_sample, weights.T)
        class_weight /= samples_per_class
        class_iou = np.where(class_weight > 0, _iou_curves(per_class)[0], 0.0)
        resampled["miou"] += ((class_weight * class_iou).sum(0) / class_weight.sum(0)).tolist()
    return {name: np.array(values) for name, values in resampled.items()}


def estimates(point: dict[str, float | None], resampled: dict[str, np.ndarray], n: int
              ) -> dict[str, Estimate | None]:
    """{name: `Estimate`}: each point value with the 95% percentile interval of its resamples
    where it is defined (not NaN; see `undefined_resamples`); None for a point value that is
    undefined."""
    result: dict[str, Estimate | None] = {}
    for name, values in resampled.items():
        defined = values[~np.isnan(values)]
        if point[name] is None or defined.size == 0:
            result[name] = None
            continue
        low, high = percentile_interval(defined)
        result[name] = Estimate(float(point[name]), int(n), low, high)
    return result


def undefined_resamples(resampled: dict[str, np.ndarray]) -> dict[str, int]:
    """{name: how many resamples leave it undefined}, for the metrics that are in any."""
    counts = {name: int(np.isnan(values).sum()) for name, values in resampled.items()}
    return {name: count for name, count in counts.items() if count}
