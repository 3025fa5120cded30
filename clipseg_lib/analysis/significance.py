"""Tests behind the verdicts, and Holm's correction of a family of them.

A verdict test asks on which side of a bound an effect lies ("the change is above -0.05", "the
asked object's mIoU is below the control's"): a two-sided test whose direction is the side the
effect lies on (`directional_p`). For means the one-sided p-value reads the side of the 95%
interval that faces the bound as 1.96 standard errors, so that without correction the test
holds (p < `LEVEL`) exactly when the interval lies wholly on one side of the bound
(`difference` gives two independent estimates' difference an interval of that kind); for
rates it is exact (binomial against a bound, Fisher's test between two rates). `holm` adjusts
the p-values of all the verdict tests read together, and a test holds when its adjusted
p-value is below `LEVEL`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from clipseg_lib.analysis.stats import CONFIDENCE, Estimate

LEVEL = 1 - CONFIDENCE
"""0.05: a two-sided test at the level at which a 95% interval decides."""
_Z = float(stats.norm.ppf(1 - LEVEL / 2))


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


def directional_p(estimate: Estimate, bound: float) -> float:
    """Two-sided p-value of "the mean is not ``bound``"; when it holds, the mean lies on the
    side of ``bound`` it is on (twice the smaller of `p_above` and `p_below`)."""
    return min(1.0, 2 * min(p_above(estimate, bound), p_below(estimate, bound)))


def difference(first: Estimate, second: Estimate) -> Estimate:
    """``first - second`` of two independent estimates, each end of its 95% interval the
    facing halves of theirs combined as independent standard errors (n: the smaller)."""
    effect = first.mean - second.mean
    return Estimate(
        effect, min(first.n, second.n),
        effect - math.hypot(first.mean - first.ci_low, second.ci_high - second.mean),
        effect + math.hypot(first.ci_high - first.mean, second.mean - second.ci_low),
    )


def _count(rate: Estimate) -> int:
    return round(rate.mean * rate.n)


def p_rate(rate: Estimate, bound: float) -> float:
    """Exact two-sided binomial p-value of "the rate (of 0/1 outcomes) is not ``bound``"."""
    return float(stats.binomtest(_count(rate), rate.n, bound).pvalue)


def p_rates(rate: Estimate, other: Estimate) -> float:
    """Fisher's exact two-sided p-value of "``rate`` and ``other`` differ" (two 0/1 rates)."""
    table = [[_count(rate), rate.n - _count(rate)], [_count(other), other.n - _count(other)]]
    return float(stats.fisher_exact(table).pvalue)


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
