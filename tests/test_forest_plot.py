"""The forest plot of the conclusion, drawn from the committed reference results: a row per
test minus its control, margins where declared, markers coloured by verdict."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex

from clipseg_lib.experiments.conclusion import VERDICT_COLOURS, build_claims
from clipseg_lib.report.forest_plot import (
    forest_alt,
    forest_rows,
    forest_svg,
    plot_forest,
    plot_runs_forest,
)
from clipseg_lib.study.results import load_results

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference"


@pytest.fixture(scope="module")
def claims() -> list[dict]:
    return build_claims(load_results(REFERENCE))


def test_each_test_is_read_against_its_control_and_same_intervals_share_a_row(claims):
    rows = forest_rows(claims)
    by_label = {(row.claim, row.label): row for row in rows}
    jpeg = by_label[("Robust to slightly distorted input images", "jpeg")]
    assert (round(jpeg.effect, 3), round(jpeg.ci_low, 3), round(jpeg.ci_high, 3)) == (
        -0.043, -0.072, -0.017)
    assert jpeg.control == 0.0 and jpeg.margin_at == pytest.approx(-0.05)
    picked = by_label[("Fails on facial expressions", "picked against chance, minus 0.352")]
    assert picked.effect == pytest.approx(0.6 - 0.352, abs=1e-3) and picked.margin_at is None
    negation = [row for row in rows if row.claim.startswith("Fails on negated")]
    # "against the control" and "against the margin" test one gap: one row, the margin drawn
    assert [row.label for row in negation] == ["against the control", "overlap with X, minus 0.500"]
    assert negation[0].margin_at == pytest.approx(-0.05)
    absent = [row for row in rows if row.claim == "Fails when the object is absent"]
    assert [row.margin_at for row in absent] == [pytest.approx(0.2)] * 2
    assert len(rows) == 8 + 8 + 2 + 2 + 2 + 2


def test_markers_are_coloured_by_verdict_and_not_judged_is_hollow(claims):
    claims = [dict(claim) for claim in claims]
    claims[5]["verdict"] = "not judged"
    figure = plot_forest(claims)
    markers = [line for line in figure.axes[0].lines if line.get_marker() == "o"]
    assert len(markers) == len(forest_rows(claims))
    absent = markers[-1]
    assert to_hex(absent.get_markeredgecolor()) == VERDICT_COLOURS["not judged"].lower()
    assert to_hex(absent.get_markerfacecolor()) == "#ffffff"
    jpeg = markers[2]
    assert to_hex(jpeg.get_markerfacecolor()) == VERDICT_COLOURS[claims[0]["verdict"]].lower()
    headings = [tick.get_text() for tick in figure.axes[0].get_yticklabels()
                if tick.get_fontweight() == "bold"]
    assert headings[-1] == "Fails when the object is absent: not judged"
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "not judged" in legend and legend[-1] == "declared margin"
    assert min(tick.get_fontsize() for tick in figure.axes[0].get_yticklabels()) >= 9
    plt.close(figure)


def test_the_plot_is_an_svg_with_alt_text_naming_each_verdict(claims):
    svg = forest_svg(claims)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    alt = forest_alt(claims)
    assert alt.startswith("Forest plot")
    assert "Robust to slightly distorted input images: inconclusive (8 tests)" in alt


def test_several_runs_share_one_axis_each_marker_on_its_own_labelled_row(claims):
    other = [dict(claim) for claim in claims]
    other[0] = {**other[0], "verdict": "mixed"}
    figure = plot_runs_forest({"mini": claims, "seed 1": other})
    ax = figure.axes[0]
    assert len(figure.axes) == 1
    markers = [line for line in ax.lines if line.get_marker() == "o"]
    assert len(markers) == 2 * len(forest_rows(claims)) == 48
    # the first test of the first claim: mini's marker one row above seed 1's, each labelled
    first, second = markers[0], markers[1]
    assert (first.get_ydata()[0], second.get_ydata()[0]) == (1.0, 2.0)
    assert [text.get_text() for text in ax.texts[:2]] == ["mini", "seed 1"]
    assert to_hex(first.get_color()) == VERDICT_COLOURS[claims[0]["verdict"]].lower()
    assert to_hex(second.get_color()) == VERDICT_COLOURS["mixed"].lower()
    ticks = [(tick.get_text(), tick.get_position()[1]) for tick in ax.get_yticklabels()]
    assert ticks[:2] == [
        (f"{claims[0]['claim']}: {claims[0]['verdict']} (mini), mixed (seed 1)", 0.0),
        (forest_rows(claims)[0].label, 1.5),  # between its two runs' rows
    ]
    assert min(text.get_fontsize() for text in ax.texts) >= 9
    plt.close(figure)
