"""Verdict tests' p-values agree with the 95% intervals they are read from; Holm's correction."""

from __future__ import annotations

import pytest
from clipseg_lib.analysis import significance
from clipseg_lib.analysis.stats import Estimate


def test_p_values_decide_as_the_end_of_the_interval_facing_the_bound():
    change = Estimate(-0.036, 64, -0.074, -0.009)  # the prompt-JPEG change of issue 27
    assert significance.p_above(change, -0.05) > 0.2  # its interval reaches below -0.05
    assert significance.p_below(change, 0.0) == pytest.approx(0.0045, abs=2e-4)
    edge = Estimate(0.1, 40, 0.0, 0.3)
    assert significance.p_above(edge, 0.0) == pytest.approx(significance.LEVEL)
    assert significance.p_below(edge, 0.3) == pytest.approx(significance.LEVEL)
    assert significance.p_above(Estimate(0.5, 40, 0.5, 0.5), 0.4) == 0.0


def test_difference_of_two_estimates():
    asked, control = Estimate(0.326, 40, 0.288, 0.366), Estimate(0.882, 40, 0.837, 0.920)
    assert significance.p_difference_below(asked, control) < 1e-30
    assert significance.p_difference_above(asked, control, -0.05) == pytest.approx(1.0)
    close = Estimate(0.86, 40, 0.82, 0.90)
    assert 0.2 < significance.p_difference_below(close, control) < 0.5


def test_rates_are_tested_exactly():
    none = Estimate(0.0, 40, 0.0, 0.088)
    assert significance.p_rate_below(none, 0.15) == pytest.approx(0.85 ** 40)
    one = Estimate(0.025, 40, 0.001, 0.132)
    assert significance.p_rate_below(one, 0.15) == pytest.approx(
        0.85 ** 40 + 40 * 0.15 * 0.85 ** 39)
    half = Estimate(0.5, 40, 0.34, 0.66)
    assert significance.p_rate_above(half, none) < 1e-6
    assert significance.p_rate_above(none, half) == pytest.approx(1.0)


def test_holm_steps_down_and_keeps_the_order():
    # Sorted: 0.001 x 5, 0.01 x 4, 0.03 x 3, 0.04 x 2 (raised to 0.09, monotone), 0.5 x 1.
    p_values = [0.01, 0.04, 0.001, 0.03, 0.5]
    assert significance.holm(p_values) == pytest.approx([0.04, 0.09, 0.005, 0.09, 0.5])
    assert significance.holm([0.01, 0.04, 0.001]) == pytest.approx([0.02, 0.04, 0.003])
    assert significance.holm([]) == []
