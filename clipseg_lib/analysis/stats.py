"""Intervals for every reported number: bootstrap means and binomial hit rates (scipy).

Every mean a reader sees is an `Estimate` (mean, n, 95% interval); every "picked the right one"
rate is a `HitRate` tested against its chance level. Both are seeded and print at fixed precision.
A mean of `SMALL_SAMPLE` values or more gets a percentile-bootstrap interval; of fewer, a
Student-t interval, which covers where the percentile bootstrap is too narrow (about 89% for
8 normal values). Rates get exact Clopper-Pearson intervals.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000
SMALL_SAMPLE = 40
"""Below this many values a mean's interval is a Student-t interval, not a bootstrap one."""


@dataclass(frozen=True)
class Estimate:
    """A mean over `n` cases with its 95% bootstrap interval [ci_low, ci_high]."""

    mean: float
    n: int
    ci_low: float
    ci_high: float

    def as_dict(self) -> dict[str, float | int]:
        """``{"mean", "n", "ci_low", "ci_high"}``: the form every results JSON stores."""
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] (n={self.n})"

    def separated_from(self, other: Estimate) -> bool:
        """True when the two intervals do not overlap."""
        return self.clearly_below(other) or other.clearly_below(self)

    def clearly_below(self, other: Estimate) -> bool:
        """True when this interval lies entirely under `other`'s (upper end < its lower end)."""
        return self.ci_high < other.ci_low


def percentile_interval(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """The central `CONFIDENCE` interval of bootstrap resamples: their 2.5th and 97.5th
    percentiles."""
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mean_ci(
    values: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    clusters: Sequence[Hashable] | None = None,
) -> Estimate:
    """The mean of `values` with a seeded 95% percentile-bootstrap interval (a Student-t
    interval for fewer than `SMALL_SAMPLE` values).

    ``clusters`` (one id per value, e.g. the image a prompt asks about) resamples whole
    clusters: the prompts of one image are not independent cases (`cluster_mean_ci`); without
    it, or when every cluster holds one value, each value is resampled alone.
    One value (or identical values) gives a zero-width interval; no values raise ValueError.
    NaN values are refused: they would hide a failed case.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not np.all(np.isfinite(data)):
        raise ValueError("mean_ci got a NaN or infinite value")
    mean = float(data.mean())
    if data.size == 1 or np.all(data == data[0]):
        return Estimate(mean, int(data.size), mean, mean)
    if clusters is not None and len(set(clusters)) < data.size:
        return cluster_mean_ci(data, clusters, seed=seed)
    if data.size < SMALL_SAMPLE:
        low, high = stats.t.interval(CONFIDENCE, data.size - 1, loc=mean, scale=stats.sem(data))
        return Estimate(mean, int(data.size), float(low), float(high))
    result = stats.bootstrap(
        (data,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=N_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return Estimate(mean, int(data.size), float(interval.low), float(interval.high))


def cluster_mean_ci(
    values: Sequence[float] | np.ndarray, clusters: Sequence[Hashable], *, seed: int = 0
) -> Estimate:
    """The mean of `values` with a seeded 95% percentile interval of a cluster bootstrap:
    clusters drawn with replacement, a cluster drawn k times counting its values k times."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if len(clusters) != data.size:
        raise ValueError(f"{len(clusters)} cluster ids for {data.size} values")
    if data.size == 0 or not np.all(np.isfinite(data)):
        raise ValueError("cluster_mean_ci needs finite values")
    _, cluster_of = np.unique(np.asarray([repr(c) for c in clusters]), return_inverse=True)
    sums, sizes = np.bincount(cluster_of, weights=data), np.bincount(cluster_of)
    count = sizes.size
    draws = np.random.default_rng(seed).multinomial(count, np.full(count, 1 / count), N_RESAMPLES)
    means = (draws @ sums) / (draws @ sizes)
    low, high = percentile_interval(means)
    return Estimate(float(data.mean()), int(data.size), float(low), float(high))


def proportion_ci(outcomes: Sequence[bool] | np.ndarray) -> Estimate:
    """The share of True `outcomes` with its exact (Clopper-Pearson) 95% interval.

    An Estimate, so a rate is stored like every mean: ``{"mean", "n", "ci_low", "ci_high"}``.
    """
    data = np.asarray(outcomes, dtype=bool).ravel()
    if data.size == 0:
        raise ValueError("proportion_ci needs at least one outcome")
    count = int(data.sum())
    interval = stats.binomtest(count, int(data.size)).proportion_ci(
        confidence_level=CONFIDENCE, method="exact"
    )
    return Estimate(count / data.size, int(data.size), float(interval.low), float(interval.high))


def paired_difference_ci(
    after: Sequence[float] | np.ndarray,
    before: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
    clusters: Sequence[Hashable] | None = None,
) -> Estimate:
    """Mean of ``after - before`` over paired cases, with its bootstrap interval (`mean_ci`,
    cases of one cluster resampled together)."""
    after_values = np.asarray(after, dtype=np.float64).ravel()
    before_values = np.asarray(before, dtype=np.float64).ravel()
    if after_values.shape != before_values.shape:
        raise ValueError(
            f"paired values differ in number: {after_values.size} vs {before_values.size}"
        )
    return mean_ci(after_values - before_values, seed=seed, clusters=clusters)


@dataclass(frozen=True)
class HitRate:
    """`hits` of `n` cases right, against `chance`; Clopper-Pearson 95% interval, one-sided p."""

    hits: int
    n: int
    rate: float
    chance: float
    ci_low: float
    ci_high: float
    p_value: float

    def as_dict(self) -> dict[str, float | int]:
        """Every field, for the results JSON."""
        return asdict(self)

    @property
    def above_chance(self) -> bool:
        """True when the rate is significantly above chance (p < 0.05)."""
        return self.p_value < 1 - CONFIDENCE

    def __str__(self) -> str:
        return (
            f"{self.rate:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}] ({self.hits}/{self.n}; "
            f"chance {self.chance:.3f}, one-sided p={self.p_value:.3g})"
        )


def hit_rate(hits: Sequence[bool] | np.ndarray, chance: float | Sequence[float]) -> HitRate:
    """Binomial test of `hits` against `chance` (``scipy.stats.binomtest``, greater).

    `chance` may be one level or one per case (e.g. 1 / number of candidates); per-case levels
    are averaged, which is exact for the expected count.
    """
    outcomes = np.asarray(hits, dtype=bool).ravel()
    if outcomes.size == 0:
        raise ValueError("hit_rate needs at least one case")
    level = float(np.mean(chance))
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"chance level {level} is outside [0, 1]")
    count = int(outcomes.sum())
    test = stats.binomtest(count, int(outcomes.size), level, alternative="greater")
    two_sided = stats.binomtest(count, int(outcomes.size), level)
    interval = two_sided.proportion_ci(confidence_level=CONFIDENCE, method="exact")
    return HitRate(
        count,
        int(outcomes.size),
        count / outcomes.size,
        level,
        float(interval.low),
        float(interval.high),
        float(test.pvalue),
    )
