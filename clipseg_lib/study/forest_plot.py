"""The conclusion as one picture: every claim's tests as a point and 95% interval against its
control, on one axis where 0 is no change, the declared margins dashed, coloured by verdict.

A test (`verdicts.VerdictTest.as_dict`) compares its effect with a bound. Its control is the
bound (a control's mean, chance) or, for a margin test, the bound less the margin (no change):
a row shows the effect minus that control, so every row reads "how far from the control". Two
tests of one claim that show the same interval (a gap tested against the control and against
the margin) share a row.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clipseg_lib.experiments.conclusion import VERDICT_COLOURS

FONT_PT = 9
"""The smallest text in the figure, in points: readable when the SVG is shown at its size."""
HOLLOW_VERDICTS = ("not judged",)


@dataclass(frozen=True)
class ForestRow:
    """One row: a test's effect and 95% interval minus its control (``control``), the
    claim's verdict and the margin line's position on the same axis (None without one)."""

    claim: str
    label: str
    effect: float
    ci_low: float
    ci_high: float
    control: float
    margin_at: float | None
    verdict: str


def _control(test: Mapping[str, Any]) -> float:
    """The value a test's effect is read against: its bound, or for a margin test the bound
    less the margin, towards zero change (-0.05 + 0.05 = 0; 0.2 - 0.2 = 0)."""
    margin = test.get("margin")
    bound = float(test["bound"])
    return bound - math.copysign(float(margin), bound) if margin else bound


def forest_rows(claims: Sequence[Mapping[str, Any]]) -> list[ForestRow]:
    """The rows of every claim with tests, in claim order; same-interval tests merged."""
    rows: list[ForestRow] = []
    for claim in claims:
        merged: dict[tuple[float, float, float], ForestRow] = {}
        for test in claim.get("tests") or []:
            control = _control(test)
            key = tuple(round(float(test[k]) - control, 9) for k in ("effect", "ci_low", "ci_high"))
            margin_at = float(test["bound"]) - control if test.get("margin") else None
            label = str(test["name"]) + (f", minus {control:.3f}" if control else "")
            earlier = merged.get(key)
            if earlier is not None:
                merged[key] = ForestRow(earlier.claim, earlier.label, earlier.effect,
                                        earlier.ci_low, earlier.ci_high, earlier.control,
                                        earlier.margin_at if margin_at is None else margin_at,
                                        earlier.verdict)
                continue
            merged[key] = ForestRow(str(claim["claim"]), label, *key, control, margin_at,
                                    str(claim.get("verdict")))
        rows += merged.values()
    return rows


def plot_forest(claims: Sequence[Mapping[str, Any]]) -> Figure:
    """The forest plot of `claims` (`conclusion.build_claims` rows): a heading per claim with
    its verdict, a row per test; "not judged" claims' markers hollow."""
    rows = forest_rows(claims)
    labels: list[tuple[float, str, bool]] = []  # (y, text, is a claim heading)
    figure, ax = plt.subplots(figsize=(9.0, 0.23 * (len(rows) + len(claims)) + 1.2),
                              layout="constrained")
    y = 0.0
    for claim in claims:
        verdict = str(claim.get("verdict"))
        labels.append((y, f"{claim['claim']}: {verdict}", True))
        y += 1
        for row in (row for row in rows if row.claim == claim["claim"]):
            colour = VERDICT_COLOURS.get(verdict, "#555555")
            hollow = verdict in HOLLOW_VERDICTS
            ax.plot([row.ci_low, row.ci_high], [y, y], color=colour, linewidth=1.6)
            ax.plot(row.effect, y, marker="o", markersize=6, color=colour,
                    markerfacecolor="white" if hollow else colour, markeredgewidth=1.5)
            if row.margin_at is not None:
                ax.plot([row.margin_at] * 2, [y - 0.45, y + 0.45], color="#333333",
                        linestyle="--", linewidth=1.0)
            labels.append((y, row.label, False))
            y += 1
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_yticks([position for position, _, _ in labels], [text for _, text, _ in labels],
                  fontsize=FONT_PT)
    for tick, (_, _, heading) in zip(ax.get_yticklabels(), labels, strict=True):
        tick.set_fontweight("bold" if heading else "normal")
    ax.set_ylim(y - 0.5, -0.7)
    ax.tick_params(axis="x", labelsize=FONT_PT)
    ax.set_xlabel("effect minus its control (0 = no change), 95% interval", fontsize=FONT_PT)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    shown = [v for v in VERDICT_COLOURS if any(str(c.get("verdict")) == v for c in claims)]
    handles = [Line2D([], [], marker="o", linestyle="", color=VERDICT_COLOURS[v],
                      markerfacecolor="white" if v in HOLLOW_VERDICTS else VERDICT_COLOURS[v],
                      label=v) for v in shown]
    handles.append(Line2D([], [], color="#333333", linestyle="--", label="declared margin"))
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles),
                  fontsize=FONT_PT, frameon=False)
    return figure


def forest_svg(claims: Sequence[Mapping[str, Any]]) -> str:
    """`plot_forest` as SVG text (vector, text kept as paths so it looks the same offline)."""
    figure = plot_forest(claims)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def forest_alt(claims: Sequence[Mapping[str, Any]]) -> str:
    """Alt text: "Forest plot of ..." with each claim's verdict and its number of tests."""
    parts = [f"{claim['claim']}: {claim.get('verdict')} ({len(claim.get('tests') or [])} tests)"
             for claim in claims]
    return ("Forest plot of every claim's tests, each effect minus its control with its 95% "
            "interval (0 = no change), declared margins dashed, coloured by verdict. "
            + "; ".join(parts) + ".")
