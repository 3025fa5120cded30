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

from clipseg_lib.analysis.plotting import MIN_FONT_PT
from clipseg_lib.experiments.conclusion import VERDICT_COLOURS

FONT_PT = MIN_FONT_PT
"""The figure's text size, in points: readable when the SVG is shown at its size."""
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
    return plot_runs_forest({"": claims})


def _claims_in_order(claims_by_run: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    return list(dict.fromkeys(str(claim["claim"]) for claims in claims_by_run.values()
                              for claim in claims))


def plot_runs_forest(claims_by_run: Mapping[str, Sequence[Mapping[str, Any]]]) -> Figure:
    """The forest plot of several runs' claims on one axis: per claim a heading, per test a
    group of rows, one per run that has it, each run's marker on its own row and labelled with
    the run's name, coloured by that run's verdict. One run named "" is `plot_forest`."""
    runs = {run: ({str(claim["claim"]): claim for claim in claims}, forest_rows(claims))
            for run, claims in claims_by_run.items()}
    several = len(runs) > 1
    labels: list[tuple[float, str, bool]] = []  # (y, text, is a claim heading)
    count = sum(len(rows) for _, rows in runs.values())
    claims = _claims_in_order(claims_by_run)
    figure, ax = plt.subplots(figsize=(9.0, 0.23 * (count + len(claims)) + 1.2),
                              layout="constrained")
    y = 0.0
    for claim in claims:
        verdicts = {run: str(by_claim[claim].get("verdict"))
                    for run, (by_claim, _) in runs.items() if claim in by_claim}
        heading = ", ".join(f"{verdict} ({run})" if several else verdict
                            for run, verdict in verdicts.items())
        labels.append((y, f"{claim}: {heading}", True))
        y += 1
        tests = dict.fromkeys(row.label for _, rows in runs.values() for row in rows
                              if row.claim == claim)
        for label in tests:
            first = y
            for run, (_, rows) in runs.items():
                for row in (row for row in rows if (row.claim, row.label) == (claim, label)):
                    _draw_row(ax, row, y)
                    if several:
                        ax.annotate(run, (row.ci_high, y), xytext=(4, 0),
                                    textcoords="offset points", va="center", fontsize=FONT_PT,
                                    color="#333333")
                    y += 1
            labels.append(((first + y - 1) / 2, label, False))
    ax.axvline(0.0, color="#333333", linewidth=0.8)
    ax.set_yticks([position for position, _, _ in labels], [text for _, text, _ in labels],
                  fontsize=FONT_PT)
    for tick, (_, _, heading) in zip(ax.get_yticklabels(), labels, strict=True):
        tick.set_fontweight("bold" if heading else "normal")
    ax.set_ylim(y - 0.5, -0.7)
    ax.tick_params(axis="x", labelsize=FONT_PT)
    ax.set_xlabel("effect minus its control (0 = no change), 95% interval", fontsize=FONT_PT)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    _legend(figure, {str(claim.get("verdict")) for claims in claims_by_run.values()
                     for claim in claims})
    return figure


def _draw_row(ax: Any, row: ForestRow, y: float) -> None:
    """The row's interval and point, coloured by its verdict (hollow when not judged), and
    its margin dashed."""
    colour = VERDICT_COLOURS.get(row.verdict, "#555555")
    hollow = row.verdict in HOLLOW_VERDICTS
    ax.plot([row.ci_low, row.ci_high], [y, y], color=colour, linewidth=1.6)
    ax.plot(row.effect, y, marker="o", markersize=6, color=colour,
            markerfacecolor="white" if hollow else colour, markeredgewidth=1.5)
    if row.margin_at is not None:
        ax.plot([row.margin_at] * 2, [y - 0.45, y + 0.45], color="#333333",
                linestyle="--", linewidth=1.0)


def _legend(figure: Figure, verdicts: set[str]) -> None:
    """The shown verdicts' colours, then the margin's dash, above the axes."""
    handles = [Line2D([], [], marker="o", linestyle="", color=VERDICT_COLOURS[v],
                      markerfacecolor="white" if v in HOLLOW_VERDICTS else VERDICT_COLOURS[v],
                      label=v) for v in VERDICT_COLOURS if v in verdicts]
    handles.append(Line2D([], [], color="#333333", linestyle="--", label="declared margin"))
    figure.legend(handles=handles, loc="outside upper center", ncol=len(handles),
                  fontsize=FONT_PT, frameon=False)


def forest_svg(claims: Sequence[Mapping[str, Any]]) -> str:
    """`plot_forest` as SVG text (vector, text kept as paths so it looks the same offline)."""
    return figure_svg(plot_forest(claims))


def figure_svg(figure: Figure) -> str:
    """`figure` as SVG text, closed after."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(figure)
    return buffer.getvalue()


def runs_forest_alt(claims_by_run: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Alt text of `plot_runs_forest`: "Forest plot of ..." and per run each claim's verdict."""
    parts = [f"{run}: " + ", ".join(f"{claim['claim']} {claim.get('verdict')}"
                                    for claim in claims)
             for run, claims in claims_by_run.items()]
    return (f"Forest plot of the tests of {len(claims_by_run)} runs on one axis, each run's "
            "marker on its own row labelled with the run, each effect minus its control with "
            "its 95% interval (0 = no change), declared margins dashed, coloured by verdict. "
            + "; ".join(parts) + ".")


def forest_alt(claims: Sequence[Mapping[str, Any]]) -> str:
    """Alt text: "Forest plot of ..." with each claim's verdict and its number of tests."""
    parts = [f"{claim['claim']}: {claim.get('verdict')} ({len(claim.get('tests') or [])} tests)"
             for claim in claims]
    return ("Forest plot of every claim's tests, each effect minus its control with its 95% "
            "interval (0 = no change), declared margins dashed, coloured by verdict. "
            + "; ".join(parts) + ".")
