"""Before/after comparisons of the mitigations in `experiments.mitigations` (notebook 09).

The notebook computes, for each mitigation, per-case scores before and after the fix on the
same cases; this module turns them into rows with intervals, a figure and the sentences that
depend on the numbers. A fix "helps" or "hurts" only when the paired bootstrap interval of the
per-case change excludes 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from clipseg_lib.analysis.plotting import MAX_WIDTH_INCHES, MIN_FONT_PT, OKABE_ITO
from clipseg_lib.analysis.stats import Estimate, mean_ci, paired_difference_ci


def before_after_rows(
    comparisons: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, seed: int = 0
) -> list[dict]:
    """A row per comparison name -> (per-case scores before, after, same cases in the same
    order): ``{"comparison", "before", "after", "change"}``, each an Estimate dict, the change
    the paired mean of after - before."""
    if not comparisons:
        raise ValueError("comparisons is empty: give at least one mitigation's before/after scores")
    rows = []
    for name, (before, after) in comparisons.items():
        if len(before) != len(after) or not len(before):
            raise ValueError(f"{name}: before ({len(before)}) and after ({len(after)}) must hold "
                             "the same, non-zero number of cases")
        rows.append({"comparison": name, "before": mean_ci(before, seed=seed).as_dict(),
                     "after": mean_ci(after, seed=seed).as_dict(),
                     "change": paired_difference_ci(after, before, seed=seed).as_dict()})
    return rows


def before_after_figure(rows: Sequence[Mapping]) -> Figure:
    """Grouped horizontal bars, before and after, with their 95% intervals, one pair per
    comparison, named in full beside it (top to bottom in the order of `rows`)."""
    positions = np.arange(len(rows))
    figure, ax = plt.subplots(figsize=(MAX_WIDTH_INCHES * 0.8, 0.5 * len(rows) + 1.2))
    for offset, moment, colour in ((-0.2, "before", OKABE_ITO[0]), (0.2, "after", OKABE_ITO[1])):
        means = np.array([row[moment]["mean"] for row in rows])
        errors = np.array([[row[moment]["mean"] - row[moment]["ci_low"] for row in rows],
                           [row[moment]["ci_high"] - row[moment]["mean"] for row in rows]])
        ax.barh(positions + offset, means, height=0.4, xerr=errors, capsize=3, label=moment,
                color=colour)
    ax.set_yticks(positions, [row["comparison"] for row in rows], fontsize=MIN_FONT_PT)
    ax.invert_yaxis()
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("IoU (mean, 95% interval)")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False,
              fontsize=MIN_FONT_PT)
    figure.tight_layout()
    return figure


def mitigation_finding(rows: Sequence[Mapping], *, model: str) -> str:
    """One sentence per comparison on `model`: helps, hurts or no detectable change, judged on
    the paired interval of the change."""
    sentences = []
    for row in rows:
        change = Estimate(**row["change"])
        verdict = ("helps" if change.ci_low > 0 else "hurts" if change.ci_high < 0
                   else "makes no detectable difference")
        sentences.append(f"On {model}, {row['comparison']} {verdict}: "
                         f"{Estimate(**row['before'])} -> {Estimate(**row['after'])}, "
                         f"change {change}.")
    return "\n".join(sentences)
