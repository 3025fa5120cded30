"""The study's front page, ``<output_dir>/report/index.html``, and one page per notebook.

The front page holds a caveat naming the model with a link to its card, the conclusion (a
forest plot and one headline per claim: `report_conclusion`), the run's provenance
(`report_provenance`), then one section per notebook: its key figure, its main table (the
extract-layer table beside the poster's; raw data named, not listed), sample sizes and a link
to the notebook's page (`notebook_page`). Only results of the run
recorded in ``run.json`` are shown (see `run_records`): a notebook that failed shows as failed,
with no older numbers beside it. Figures are copied beside the page, as
SVG where the notebook saved one (`shown_figure`), each shown at its own size (its text as
large as saved) and a link to itself (click to enlarge), so the report is one folder that
reads offline and prints.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path
from typing import Any

import nh3
from nbconvert.filters import markdown2html

from clipseg_lib.report.conclusion import conclusion_section
from clipseg_lib.report.html import (
    enlargeable_figure,
    is_interval,
    main_table,
    page,
    rows_table,
)
from clipseg_lib.report.model_description import ModelDescription, describe_model
from clipseg_lib.report.notebook_page import notebook_title, render_notebook
from clipseg_lib.report.poster import poster_table_for
from clipseg_lib.report.provenance import first_provenance, provenance_box
from clipseg_lib.study.results import write_text_atomic
from clipseg_lib.study.run_records import NotebookRecord, RunRecord, read_run

REPORT_DIR_NAME = "report"
CARD_PAGE = "model_card.html"
SHOWN_STATUSES = ("ok", "earlier", "unverified")
CARD_ATTRIBUTES = nh3.ALLOWED_ATTRIBUTES | {
    f"h{level}": nh3.ALLOWED_ATTRIBUTES.get(f"h{level}", set()) | {"id"} for level in range(1, 7)}
"""What a model card's HTML may keep: nh3's allow-list, and ids on headings."""


def _run_notes(run: RunRecord) -> str:
    """What a reader must know before the numbers: no manifest, an interrupted later run,
    notebooks the runner left out; "" when there is nothing to say."""
    if run.manifest is None:
        return ('<div class="box caveat">No <code>run.json</code> here: which run produced '
                "these results, and with which parameters, is unknown.</div>")
    lines = []
    if run.interrupted:
        lines.append('<span class="quick">A later run in this directory did not finish: '
                     f"{escape('; '.join(run.interrupted))}. Its notebooks are not shown as ok."
                     "</span>")
    for stem, reason in (run.manifest.get("skipped") or {}).items():
        lines.append(escape(f"Not run: {stem}, which {reason}."))
    return '<div class="box">' + "<br>".join(lines) + "</div>" if lines else ""


def _caveat(description: ModelDescription, card_link: str | None) -> str:
    card = f' <a href="{escape(card_link)}">Model card</a>.' if card_link else ""
    return (f'<div class="box caveat"><b>Every verdict here is about one model:</b> '
            f"{escape(description.sentence.rstrip('.'))}.{card}</div>")


def _card_link(description: ModelDescription, report_dir: Path) -> str | None:
    """A link to the model's card: rendered into the report when it is a local file. A card
    comes with a model, maybe downloaded: its HTML is sanitized (an allow-list: no scripts,
    event handlers or javascript: links) before it reaches the page; headings keep their ids,
    which their own ¶ links point to."""
    if description.card_file is not None:
        markdown = description.card_file.read_text(encoding="utf-8")
        write_text_atomic(report_dir / CARD_PAGE, page(
            f"Model card: {description.card_file.parent.name}",
            [nh3.clean(markdown2html(markdown), attributes=CARD_ATTRIBUTES)],
        ))
        return CARD_PAGE
    return description.card_url


def _sample_sizes(record: NotebookRecord, shown_rows: list[dict[str, Any]]) -> str:
    """What the results say of their sample sizes: ``n_cases`` and the n of shown intervals."""
    cases = sorted({
        value for payload in record.results.values()
        for holder in (payload.get("parameters"), payload.get("results"))
        if isinstance(holder, dict)
        for key, value in holder.items()
        if key == "n_cases" and isinstance(value, int)
    })
    interval_sizes = sorted({value["n"] for row in shown_rows for value in row.values()
                             if is_interval(value) and isinstance(value["n"], int)})
    parts = []
    if cases:
        parts.append(f"Cases per condition: {', '.join(map(str, cases))}.")
    if interval_sizes:
        parts.append(f"Intervals are 95% over n = {', '.join(map(str, interval_sizes))}.")
    return " ".join(parts) or "These results record no sample size."


def shown_figure(png: Path, figures: list[Path]) -> Path:
    """The file the report shows for the figure saved as ``png``: its vector copy (the SVG
    `plotting.save_figure` writes beside it) when the results list it among their `figures`
    (written with them), else the PNG itself."""
    vector = png.with_suffix(".svg")
    return vector if vector in figures else png


def _section(record: NotebookRecord, title: str, page_name: str | None, with_table: bool,
             report_dir: Path) -> str:
    """The notebook's section; copies its key figure into `report_dir`."""
    heading = f'<h2 id="{escape(record.stem)}">{escape(title)}</h2>'
    link = f'<p><a href="{escape(page_name)}">The full notebook</a></p>' if page_name else ""
    notes = "".join(f'<li class="stale">left out: {escape(note)}</li>' for note in record.left_out)
    notes = f"<ul>{notes}</ul>" if notes else ""
    if record.status not in SHOWN_STATUSES:
        return (f"<section>{heading}<p class=\"stale\"><b>{escape(record.status)} in this run"
                f"</b>: {escape(record.detail)}. No results shown.</p>{notes}{link}</section>")
    parts = [heading]
    if record.status == "earlier":
        parts.append("<p><small>Not executed by this run: "
                     + ("results of an earlier run with the same parameters." if record.results
                        else "its earlier results do not match this run.") + "</small></p>")
    pngs = [path for path in record.figures if path.suffix == ".png"]
    if pngs:
        figure = shown_figure(pngs[0], record.figures)
        shutil.copyfile(figure, report_dir / figure.name)
        parts.append(enlargeable_figure(figure.name, f"Key figure of {title} ({figure.name})",
                                        figure.name))
    shown_rows: list[dict[str, Any]] = []
    for name, payload in record.results.items():
        table = main_table(payload.get("results", {})) if with_table else None
        if table is None:
            continue
        key, rows = table
        shown_rows += rows
        poster = poster_table_for(rows)
        heading = f"Ours ({escape(key)})" if poster else escape(f"{name}: {key}")
        table_html = rows_table(rows, data_link=f"../{name}.json")
        ours = f"<div><h3>{heading}</h3>{table_html}</div>"
        if poster is not None:
            ours += f"<div><h3>The poster's numbers</h3>{poster}</div>"
        parts.append(f'<div class="side">{ours}</div>')
    if record.results:
        parts.append(f"<p>{_sample_sizes(record, shown_rows)}</p>")
    elif record.status == "ok":
        parts.append("<p>This notebook saved no results.</p>")
    return "<section>" + "".join(parts) + notes + link + "</section>"


def build_report(output_dir: str | Path) -> Path:
    """Write ``<output_dir>/report/index.html`` and the notebook pages; return index.html."""
    output_dir = Path(output_dir)
    report_dir = output_dir / REPORT_DIR_NAME
    report_dir.mkdir(parents=True, exist_ok=True)
    run = read_run(output_dir)
    description = describe_model(run.model, first_provenance(run, "weights_sha256"))
    conclusion, conclusion_stem = conclusion_section(run, report_dir)
    sections, contents = [], []
    for record in run.notebooks:
        title = notebook_title(record.executed, record.stem) if record.executed else record.stem
        page_name = None
        if record.executed is not None and record.status != "interrupted":
            target = report_dir / f"{record.stem}.html"
            page_name = target.name if render_notebook(record.executed, target, title) else None
        sections.append(_section(record, title, page_name, record.stem != conclusion_stem,
                                 report_dir))
        contents.append(f'<li><a href="#{escape(record.stem)}">{escape(title)}</a>: '
                        f"{escape(record.status)}</li>")
    left_out = "".join(f'<li class="stale">{escape(note)}</li>' for note in run.left_out)
    index = report_dir / "index.html"
    write_text_atomic(index, page("CLIPSeg study report", [
        "<h1>CLIPSeg study report</h1>",
        "<p>Does CLIPSeg (Lüddecke &amp; Ecker, CVPR 2022) behave as the student poster "
        "says? Its claims, each judged against a control, then the experiments behind "
        "them.</p>",
        _run_notes(run),
        _caveat(description, _card_link(description, report_dir)),
        conclusion,
        provenance_box(run),
        f"<nav><h2>Experiments</h2><ul>{''.join(contents)}</ul></nav>",
        *sections,
        f"<h2>Not from this run</h2><ul>{left_out}</ul>" if left_out else "",
    ]))
    return index
