"""Intervals: bootstrap means, exact proportions, binomial hit rates."""

from __future__ import annotations

import numpy as np
import pytest

from clipseg_lib.analysis import stats


def test_mean_ci_is_seeded_and_brackets_the_mean() -> None:
    values = np.linspace(0.0, 1.0, 41)
    first, second = stats.mean_ci(values, seed=1), stats.mean_ci(values, seed=1)
    assert first == second
    assert first.n == 41 and first.mean == pytest.approx(0.5)
    assert 0.40 < first.ci_low < 0.5 < first.ci_high < 0.60
    assert str(stats.mean_ci([0.25])) == "0.250 [0.250, 0.250] (n=1)"


def test_proportion_ci_is_clopper_pearson() -> None:
    none = stats.proportion_ci([False] * 40)
    assert (none.mean, none.n, none.ci_low) == (0.0, 40, 0.0)
    assert none.ci_high == pytest.approx(0.0881, abs=1e-4)
    half = stats.proportion_ci([True, False] * 20)
    assert (half.ci_low, half.ci_high) == pytest.approx((0.3380, 0.6620), abs=1e-4)
    with pytest.raises(ValueError, match="at least one outcome"):
        stats.proportion_ci([])


def test_clearly_below_needs_disjoint_intervals() -> None:
    low, high = stats.Estimate(0.3, 40, 0.25, 0.35), stats.Estimate(0.5, 40, 0.36, 0.6)
    overlapping = stats.Estimate(0.4, 40, 0.34, 0.45)
    assert low.clearly_below(high) and not high.clearly_below(low)
    assert not low.clearly_below(overlapping) and not low.separated_from(overlapping)
    assert low.separated_from(high) and high.separated_from(low)


def test_hit_rate_tests_against_chance() -> None:
    picked = stats.hit_rate([True] * 24 + [False] * 16, chance=0.352)
    assert (picked.hits, picked.n, picked.rate) == (24, 40, 0.6)
    assert picked.above_chance and picked.p_value < 0.002
    assert not stats.hit_rate([True] * 15 + [False] * 25, chance=0.354).above_chance
    with pytest.raises(ValueError, match="outside"):
        stats.hit_rate([True], chance=1.5)


def test_prompts_of_one_image_are_resampled_together() -> None:
    # 20 images, 4 prompts each: the prompts of an image share its value (an image effect).
    rng = np.random.default_rng(0)
    values = np.repeat(rng.random(20), 4)
    images = np.repeat(np.arange(20), 4).tolist()
    alone, clustered = stats.mean_ci(values), stats.mean_ci(values, clusters=images)
    assert clustered.mean == alone.mean and clustered.n == alone.n == 80
    # 20 independent images, not 80 cases: the interval is about twice as wide (sqrt(4)).
    ratio = (clustered.ci_high - clustered.ci_low) / (alone.ci_high - alone.ci_low)
    assert 1.6 < ratio < 2.4
    assert stats.mean_ci(values, clusters=range(80)) == alone
    change = stats.paired_difference_ci(values + 0.1, values, clusters=images)
    assert (change.mean, change.ci_low, change.ci_high) == pytest.approx((0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="3 cluster ids for 80 values"):
        stats.cluster_mean_ci(values, [0, 1, 2])


def test_cluster_bootstrap_covers_a_known_mean_about_95_percent() -> None:
    rng, repetitions, covered = np.random.default_rng(1), 300, 0
    for repetition in range(repetitions):
        image_effect = np.repeat(rng.normal(0.0, 1.0, 30), 3)
        values = 0.5 + image_effect + rng.normal(0.0, 0.5, 90)
        estimate = stats.mean_ci(values, seed=repetition, clusters=np.repeat(np.arange(30), 3))
        covered += estimate.ci_low <= 0.5 <= estimate.ci_high
    assert 0.90 <= covered / repetitions <= 0.99


def test_small_samples_get_a_t_interval_that_covers() -> None:
    # 8 normal values: the percentile bootstrap covered the mean in about 89% of repetitions.
    rng, repetitions, covered = np.random.default_rng(2), 400, 0
    for _ in range(repetitions):
        estimate = stats.mean_ci(rng.normal(0.5, 0.2, 8))
        covered += estimate.ci_low <= 0.5 <= estimate.ci_high
    assert 0.93 <= covered / repetitions <= 0.97
    small = stats.mean_ci([0.4, 0.6, 0.8])
    assert (small.ci_low, small.ci_high) == pytest.approx((0.6 - 0.4968, 0.6 + 0.4968), abs=1e-4)
