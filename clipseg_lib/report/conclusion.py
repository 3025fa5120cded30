"""The report's conclusion section: the forest plot, then one row per claim (its headline, the
full evidence in a ``<details>``, its verdict coloured, n), then the verdict counts. A quick run
shows none of it: its cells hold too few cases for any verdict, and a banner says so."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from clipseg_lib.experiments.conclusion import MIN_CASES
from clipseg_lib.report.claim_headline import claim_headline
from clipseg_lib.report.forest_plot import forest_alt, forest_svg
from clipseg_lib.report.html import enlargeable_figure, format_value, verdict_class
from clipseg_lib.study.results import write_text_atomic
from clipseg_lib.study.run_records import ClaimRecord, Conclusion, RunRecord, conclusion_of

FOREST_PLOT = "forest_plot.svg"
CLAIM_COLUMNS = ("Claim", "Headline", "Verdict", "n")
TEST_COLUMNS = ("test", "effect [95% interval]", "bound", "margin", "Holm p", "holds", "rule")


def conclusion_section(run: RunRecord, report_dir: Path) -> tuple[str, str | None]:
    """(the conclusion section's HTML, the stem of the notebook that wrote it, if any); writes
    the forest plot into `report_dir` when it shows one."""
    conclusion = conclusion_of(run)
    heading = (f'<h2 id="conclusion">Conclusion: the poster\'s claims on '
               f"{escape(str(run.model))}</h2>")
    if run.quick:
        return heading + _quick_banner(run, conclusion), conclusion.stem if conclusion else None
    if conclusion is None:
        return ('<h2 id="conclusion">Conclusion</h2><p class="stale">No conclusion from this run '
                "(the conclusion notebook did not run, failed, or its results are not current)."
                "</p>", None)
    parts = [heading, _forest_figure(conclusion, report_dir), _claims_table(conclusion, run.model)]
    stale = sum(not claim.current for claim in conclusion.claims)
    summary = conclusion.results.get("summary")
    if stale:
        parts.append(f'<p class="stale">The conclusion\'s summary is not shown: {stale} of its '
                     f"{len(conclusion.claims)} claims are not current.</p>")
    elif summary:
        parts.append(f"<p>{summary_text(summary)}</p>")
    return "\n".join(parts), conclusion.stem


def cases_per_cell(run: RunRecord, conclusion: Conclusion | None) -> int | None:
    """The fewest cases a claim reads, else the run's ``n_cases``, else None."""
    sizes = [claim.claim.get("n") for claim in conclusion.claims] if conclusion else []
    sizes = [n for n in sizes if isinstance(n, int) and n > 0]
    if sizes:
        return min(sizes)
    n_cases = run.shared_parameters.get("n_cases")
    return n_cases if isinstance(n_cases, int) else None


def not_judged_reason(run: RunRecord, conclusion: Conclusion | None) -> str:
    """Why a quick run shows no verdicts: "n = 4 per cell; the conclusion needs 40"."""
    n = cases_per_cell(run, conclusion)
    size = f"n = {n} per cell" if n is not None else "a few cases per cell"
    return f"{size}; the conclusion needs {MIN_CASES}"


def _quick_banner(run: RunRecord, conclusion: Conclusion | None) -> str:
    return (f'<div class="box quick-banner" role="note"><b>Quick run: no verdicts.</b> '
            f"{not_judged_reason(run, conclusion)}. This run checks that every notebook "
            "runs end to end; run without <code>--quick</code> for the verdicts.</div>")


def _forest_figure(conclusion: Conclusion, report_dir: Path) -> str:
    claims = [record.claim for record in conclusion.claims if record.current]
    if not any(claim.get("tests") for claim in claims):
        return ""
    write_text_atomic(report_dir / FOREST_PLOT, forest_svg(claims))
    return enlargeable_figure(FOREST_PLOT, forest_alt(claims), "Each claim's tests: the effect "
                              "minus its control with its 95% interval; dashed, the declared "
                              "margin.", css_class="forest")


def _claims_table(conclusion: Conclusion, run_model: str | None) -> str:
    header = "".join(f"<th>{column}</th>" for column in CLAIM_COLUMNS)
    rows = "\n".join(_claim_row(claim, run_model) for claim in conclusion.claims)
    return f'<table class="claims">\n<tr>{header}</tr>\n{rows}\n</table>'


def _claim_row(record: ClaimRecord, run_model: str | None) -> str:
    claim, source = record.claim, record.source
    claim_text = escape(str(claim.get("claim")))
    if not record.current:
        return (f"<tr><td>{claim_text}</td>"
                f'<td colspan="3" class="stale">not current: {escape(record.why)}</td></tr>')
    earlier = " from an earlier run" if source.status == "earlier" else ""
    claim_text += (f' <small>(<a href="#{escape(source.stem)}">{escape(source.number)}</a>'
                   f"{earlier})</small>")
    verdict = str(claim.get("verdict"))
    on_model = escape(str(claim.get("model") or run_model))
    return (f"<tr><td>{claim_text}</td><td>{escape(claim_headline(claim))}"
            f"{_evidence_details(claim)}</td>"
            f'<td class="verdict {verdict_class(verdict)}">{escape(verdict)}'
            f"<br><small>on {on_model}</small></td>"
            f'<td class="number">{format_value(claim.get("n"))}</td></tr>')


def _evidence_details(claim: Mapping[str, Any]) -> str:
    """The claim's full evidence, control, reason, separate finding and tests, folded."""
    items = [("Evidence", claim.get("evidence")), ("Control", claim.get("control")),
             ("Reason", claim.get("reason")), ("Finding", claim.get("finding"))]
    listed = "".join(
        f"<li><b>{name}</b>: {escape(str(text))}</li>" if name != "Evidence" else
        f"<li><b>{name}</b>:<ul>"
        + "".join(f"<li>{escape(part)}</li>" for part in str(text).split("; ")) + "</ul></li>"
        for name, text in items if text)
    tests = claim.get("tests") or []
    table = ""
    if tests:
        header = "".join(f"<th>{column}</th>" for column in TEST_COLUMNS)
        body = "".join(
            f"<tr><td>{escape(str(test['name']))}</td>"
            f'<td class="number">{test["effect"]:.3f} [{test["ci_low"]:.3f}, '
            f'{test["ci_high"]:.3f}] n={test["n"]}</td>'
            f'<td class="number">{format_value(test.get("bound"))}</td>'
            f'<td class="number">{format_value(test.get("margin"))}</td>'
            f'<td class="number">{format_value(test.get("p_holm"))}</td>'
            f"<td>{format_value(test.get('holds'))}</td>"
            f"<td>{escape(str(test.get('rule', '')))}</td></tr>"
            for test in tests)
        table = f'<table class="tests"><tr>{header}</tr>{body}</table>'
    return f"<details><summary>Full evidence</summary><ul>{listed}</ul>{table}</details>"


def summary_text(summary: Any) -> str:
    """The conclusion's summary in words: text as is; verdict counts as "Verdicts: 3 mixed,
    3 reproduced" (zero counts and empty entries left out)."""
    if not isinstance(summary, dict):
        return escape(str(summary))
    sentences = []
    for key, value in summary.items():
        if isinstance(value, dict):
            counted = ", ".join(
                f"{count} {escape(str(name))}" if isinstance(count, int)
                else f"{escape(str(name))} ({escape(str(count))})"
                for name, count in value.items() if count)
            if counted:
                sentences.append(f"{escape(str(key)).replace('_', ' ').capitalize()}: {counted}.")
        elif value not in (None, "", [], {}):
            shown = format_value(value)
            sentences.append(f"{escape(str(key)).replace('_', ' ').capitalize()}: {shown}"
                             + ("" if str(shown).endswith(".") else "."))
    return " ".join(sentences)
