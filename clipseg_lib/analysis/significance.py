"""One-sided tests behind the verdicts, and Holm's correction of a family of them.

A verdict test asks whether an effect lies beyond a bound ("the change is above -0.05", "the
asked object's mIoU is below the control's"). For means the p-value reads the side of the 95%
interval that faces the bound as 1.96 standard errors, so that without correction p < 0.025
exactly when that end of the interval lies beyond the bound; for rates it is exact (binomial
against a bound, Fisher's test between two rates). `holm` adjusts the p-values of all the
verdict tests read together, and a test holds when its adjusted p-value is below `LEVEL`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from clipseg_lib.analysis.stats import CONFIDENCE, Estimate

LEVEL = (1 - CONFIDENCE) / 2
"""0.025: a one-sided test at the level at which one end of a 95% interval decides."""
_Z = float(stats.norm.ppf(1 - LEVEL))


def _p_beyond(distance: float, standard_error: float) -> float:
    """P(Z > distance / standard_error); a zero-width interval decides by the sign alone."""
    if standard_error <= 0:
        return 0.0 if distance > 0 else 1.0
    return float(stats.norm.sf(distance / standard_error))


def p_above(estimate: Estimate, bound: float) -> float:
    """One-sided p-value of "the mean is above ``bound``" (lower half of the interval)."""
    return _p_beyond(estimate.mean - bound, (estimate.mean - estimate.ci_low) / _Z)


def p_below(estimate: Estimate, bound: float) -> float:
    """One-sided p-value of "the mean is below ``bound``" (upper half of the interval)."""
    return _p_beyond(bound - estimate.mean, (estimate.ci_high - estimate.mean) / _Z)


def p_difference_below(first: Estimate, second: Estimate, bound: float = 0.0) -> float:
    """One-sided p-value of "first - second < bound" for independent estimates: the halves
    of their intervals that face each other, combined as independent standard errors."""
    error = math.hypot((first.ci_high - first.mean) / _Z, (second.mean - second.ci_low) / _Z)
    return _p_beyond(bound - (first.mean - second.mean), error)


def p_difference_above(first: Estimate, second: Estimate, bound: float = 0.0) -> float:
    """One-sided p-value of "first - second > bound" (see `p_difference_below`)."""
    error = math.hypot((first.mean - first.ci_low) / _Z, (second.ci_high - second.mean) / _Z)
    return _p_beyond((first.mean - second.mean) - bound, error)


def _count(rate: Estimate) -> int:
    return round(rate.mean * rate.n)


def p_rate_below(rate: Estimate, bound: float) -> float:
    """Exact binomial p-value of "the rate is below ``bound``" (a rate of 0/1 outcomes)."""
    return float(stats.binomtest(_count(rate), rate.n, bound, alternative="less").pvalue)


def p_rate_above(rate: Estimate, other: Estimate) -> float:
    """Fisher's exact one-sided p-value of "``rate`` is above ``other``" (two 0/1 rates)."""
    table = [[_count(rate), rate.n - _count(rate)], [_count(other), other.n - _count(other)]]
    return float(stats.fisher_exact(table, alternative="greater").pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: the family-wise error of
    calling every test with an adjusted p-value below a level stays below that level."""
    values = np.asarray(p_values, dtype=np.float64)
    if values.size == 0:
        return []
    order = np.argsort(values, kind="stable")
    factors = values.size - np.arange(values.size)
    adjusted = np.minimum(np.maximum.accumulate(factors * values[order]), 1.0)
    result = np.empty_like(values)
    result[order] = adjusted
    return result.tolist()
