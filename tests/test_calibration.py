"""Threshold sweeps and reliability (ECE) of probability maps, on maps with known answers."""

import numpy as np
import pytest

from clipseg_lib.analysis.calibration import (
    N_BINS,
    best_threshold,
    calibration_figure,
    reliability,
    threshold_sweep,
)


def test_a_constant_map_is_off_by_its_gap_to_the_foreground_share():
    target = np.zeros((10, 10), bool)
    target[:5] = True  # half the pixels are foreground
    found = reliability([np.full((10, 10), 0.75)] * 3, [target] * 3, n_resamples=50)
    assert found.ece.mean == pytest.approx(0.25) and found.ece.n == 3
    assert found.pixels[7] == 300 and sum(found.pixels) == 300
    assert found.confidence[7] == pytest.approx(0.75) and found.frequency[7] == pytest.approx(0.5)
    assert found.confidence[0] is None and len(found.frequency) == N_BINS


def test_calibrated_maps_have_a_small_ece_and_overconfident_ones_a_large_one():
    rng = np.random.default_rng(0)
    maps = [rng.uniform(0, 1, (32, 32)) for _ in range(20)]
    targets = [rng.uniform(0, 1, m.shape) < m for m in maps]  # foreground with probability p
    calibrated = reliability(maps, targets, seed=0)
    assert calibrated.ece.mean < 0.02 and calibrated.ece.ci_low <= calibrated.ece.mean
    sharpened = reliability([np.clip((m - 0.5) * 3 + 0.5, 0, 1) for m in maps], targets)
    assert sharpened.ece.mean > 0.15 and sharpened.ece.ci_low > calibrated.ece.ci_high


def test_threshold_sweep_reads_the_iou_of_each_threshold():
    ramp = np.tile(np.linspace(0.05, 0.95, 10), (10, 1))  # columns 0.05, 0.15, .., 0.95
    target = ramp > 0.5  # the right half
    sweep = threshold_sweep([ramp, ramp], [target, target], thresholds=(0.3, 0.5, 0.7))
    assert sweep[0.5].mean == 1.0 and sweep[0.5].n == 2
    assert sweep[0.3].mean == pytest.approx(5 / 7)  # 7 columns marked, 5 right
    assert sweep[0.7].mean == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="one target per map"):
        threshold_sweep([ramp], [])


def test_the_figure_has_a_sweep_and_a_diagram_per_condition():
    ramp = np.tile(np.linspace(0.05, 0.95, 10), (10, 1))
    target = ramp > 0.5
    figure = calibration_figure(
        {"a": threshold_sweep([ramp], [target]), "b": threshold_sweep([ramp], [target])},
        {"a": reliability([ramp], [target], n_resamples=20),
         "b": reliability([ramp], [target], n_resamples=20)}, threshold=0.5)
    assert len(figure.axes) == 4 and figure.axes[2].get_title().startswith("ECE ")


def test_the_best_threshold_comes_with_an_interval_over_cases():
    ramp = np.tile(np.linspace(0.05, 0.95, 10), (10, 1))
    sharp = best_threshold([ramp] * 12, [ramp > 0.5] * 12)
    assert (sharp.mean, sharp.ci_low, sharp.ci_high, sharp.n) == (0.5, 0.5, 0.5, 12)
    split = best_threshold([ramp] * 40, [ramp > 0.3] * 20 + [ramp > 0.7] * 20, seed=3)
    assert split.n == 40 and split.ci_low < split.ci_high
    assert split.ci_low <= split.mean <= split.ci_high
    assert 0.3 <= split.ci_low and split.ci_high <= 0.7
    with pytest.raises(ValueError, match="one target per map"):
        best_threshold([ramp], [])
