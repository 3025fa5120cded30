"""Verdict tests' p-values agree with the 95% intervals they are read from; Holm's correction."""

from __future__ import annotations

import pytest

from clipseg_lib.analysis import significance
from clipseg_lib.analysis.stats import Estimate


def test_p_values_decide_as_the_interval_does():
    change = Estimate(-0.036, 64, -0.074, -0.009)  # the prompt-JPEG change of issue 27
    assert significance.p_above(change, -0.05) > 0.2  # its interval reaches below -0.05
    assert significance.directional_p(change, -0.05) > 0.4
    # Below 0: upper half 0.027 = 1.96 standard errors, 0.036 / 0.0138 = 2.61 of them.
    assert significance.p_below(change, 0.0) == pytest.approx(0.0045, abs=2e-4)
    assert significance.directional_p(change, 0.0) == pytest.approx(0.009, abs=4e-4)
    edge = Estimate(0.1, 40, 0.0, 0.3)  # each end exactly on a bound: p at the level
    assert significance.directional_p(edge, 0.0) == pytest.approx(significance.LEVEL)
    assert significance.directional_p(edge, 0.3) == pytest.approx(significance.LEVEL)
    assert significance.directional_p(Estimate(0.5, 40, 0.5, 0.5), 0.4) == 0.0


def test_difference_of_two_estimates():
    asked, control = Estimate(0.326, 40, 0.288, 0.366), Estimate(0.882, 40, 0.837, 0.920)
    gap = significance.difference(asked, control)
    # -0.556, lower end -0.556 - hypot(0.038, 0.038), upper end -0.556 + hypot(0.040, 0.045).
    assert (gap.mean, gap.n) == (pytest.approx(-0.556), 40)
    assert gap.ci_low == pytest.approx(-0.556 - 0.0537, abs=1e-4)
    assert gap.ci_high == pytest.approx(-0.556 + 0.0602, abs=1e-4)
    assert significance.directional_p(gap, 0.0) < 1e-30
    close = significance.difference(Estimate(0.86, 40, 0.82, 0.90), control)
    assert 0.4 < significance.directional_p(close, 0.0) < 1.0


def test_rates_are_tested_exactly():
    none, one = Estimate(0.0, 40, 0.0, 0.088), Estimate(0.025, 40, 0.001, 0.132)
    # Two-sided exact binomial: 0/40 and 1/40 against 20%.
    assert significance.p_rate(none, 0.2) == pytest.approx(2.18e-4, rel=1e-2)
    assert significance.p_rate(one, 0.2) == pytest.approx(2.45e-3, rel=1e-2)
    assert significance.p_rate(one, 0.025) == pytest.approx(1.0)
    half = Estimate(0.5, 40, 0.34, 0.66)
    assert significance.p_rates(half, none) < 1e-6
    assert significance.p_rates(none, none) == pytest.approx(1.0)


def test_holm_steps_down_and_keeps_the_order():
    # Sorted: 0.001 x 5, 0.01 x 4, 0.03 x 3, 0.04 x 2 (raised to 0.09, monotone), 0.5 x 1.
    p_values = [0.01, 0.04, 0.001, 0.03, 0.5]
    assert significance.holm(p_values) == pytest.approx([0.04, 0.09, 0.005, 0.09, 0.5])
    assert significance.holm([0.01, 0.04, 0.001]) == pytest.approx([0.02, 0.04, 0.003])
    assert significance.holm([]) == []
