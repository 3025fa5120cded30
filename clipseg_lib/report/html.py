"""HTML pieces shared by the report and the comparison page: values, tables, verdicts, the page.

Tables are read generically: any list of row dicts renders, and a value that is an interval
(`Estimate.as_dict()`: ``{"mean", "n", "ci_low", "ci_high"}``, or a hit rate with ``"rate"``)
shows as ``mean [low, high] n=N``. Pages are standalone: one inline style sheet, with print rules
(table rows unbroken, folded evidence opened), inside a ``<main>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from clipseg_lib.experiments.conclusion import VERDICT_COLOURS

#: Keys that name a results file's main table, most preferred first; else its first table.
MAIN_TABLE_KEYS = ("sweep", "rows", "mean_rows", "claims")
MAX_TABLE_ROWS = 15
#: A list of more numbers than this is raw data: a table cell says how many, and links to it.
MAX_LISTED = 4

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 1.5rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1d1d1d; overflow-wrap: break-word; word-break: normal;
       hyphens: manual; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.92rem; }
td, th { border: 1px solid #bbb; padding: 0.3rem 0.5rem; vertical-align: top; text-align: left; }
th { background: #f0f0f0; } td.number { text-align: right; }
.ci, .n { color: #555; font-size: 0.85em; }
.verdict { font-weight: 600; white-space: nowrap; }
.disagree { outline: 3px solid #7a1fa2; } .stale { color: #8a1c1c; }
.box { border: 2px solid #444; background: #f7f7f7; padding: 0.6rem 1rem; margin: 1rem 0; }
.caveat { border-color: #b36b00; background: #fff6e5; } .quick { color: #a00; font-weight: 600; }
.provenance dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.1rem 1rem;
                 margin: 0; font-size: 0.9rem; }
.provenance dt { font-weight: 600; } .provenance dd { margin: 0; }
.provenance h2 { font-size: 1.05rem; border: none; margin: 0 0 0.3rem; }
.side { display: flex; flex-wrap: wrap; gap: 1.5rem; align-items: flex-start; }
figure { margin: 0.5rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figure.forest img { border: none; }
figcaption { font-size: 0.85rem; color: #555; }
section { margin-bottom: 2rem; }
@media print {
  body { max-width: none; margin: 0; font-size: 10pt; } a { color: inherit; }
  section, figure, .box { break-inside: avoid; } nav { display: none; }
  tr, td, th { break-inside: avoid; } thead { display: table-header-group; }
  details::details-content { content-visibility: visible; display: block; }
  details > summary { list-style: none; font-weight: 600; }
  .verdict { print-color-adjust: exact; -webkit-print-color-adjust: exact; }
}
"""
#: Folded evidence prints open: browsers without ``::details-content`` hide a closed one's body.
PRINT_SCRIPT = ('<script>addEventListener("beforeprint", () => document.querySelectorAll('
                '"details").forEach(details => { details.open = true; }));</script>')


def _tint(colour: str, share: float = 0.25) -> str:
    """``colour`` (``#RRGGBB``) mixed with white, ``share`` of it kept: a background that
    keeps black text readable."""
    channels = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - share * (255 - c)):02x}" for c in channels)


VERDICT_STYLE = "\n".join(
    f".{'verdict-' + verdict.replace(' ', '-')} {{ background: {_tint(colour)}; "
    f"border-left: 0.4rem solid {colour}; }}"
    for verdict, colour in VERDICT_COLOURS.items()
) + "\n.verdict-other { background: #eeeeee; }"


def is_interval(value: Any) -> bool:
    """True for an `Estimate` or hit-rate dict: a centre, ``n``, ``ci_low`` and ``ci_high``."""
    return (
        isinstance(value, Mapping)
        and {"n", "ci_low", "ci_high"} <= value.keys()
        and ("mean" in value or "rate" in value)
    )


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.3f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def raw_data_summary(value: Any) -> str | None:
    """What a raw-data value holds, in words (``64 values``, ``49 points``, ``iou_gt: 64
    values``), or None for a value a table shows as it is (an interval, a number, a label,
    a short list of labels or up to `MAX_LISTED` numbers)."""
    if is_interval(value):
        return None
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, (list, tuple)) for item in value):
            return f"{len(value)} points"
        if any(isinstance(item, (dict, list, tuple)) for item in value):
            return f"{len(value)} records"
        numbers = sum(_is_number(item) for item in value)
        return f"{len(value)} values" if numbers > MAX_LISTED else None
    if isinstance(value, Mapping):
        return "; ".join(f"{key}: {_held(inner)}" for key, inner in value.items()) or "empty"
    return None


def _held(value: Any) -> str:
    return raw_data_summary(value) or ("1 interval" if is_interval(value) else "1 value")


def format_value(value: Any) -> str:
    """``value`` as escaped HTML: intervals with their n, floats at 3 decimals, None as a dash,
    raw data (lists of numbers, records) as `raw_data_summary` says."""
    summary = raw_data_summary(value)
    if summary is not None:
        return escape(summary)
    if is_interval(value):
        centre = value.get("mean", value.get("rate"))
        return (
            f"{_number(centre)} <span class=\"ci\">[{_number(value['ci_low'])}, "
            f"{_number(value['ci_high'])}]</span> <span class=\"n\">n={value['n']}</span>"
        )
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return escape(", ".join(str(item) for item in value))
    return escape(str(value))


def _is_numeric(value: Any) -> bool:
    return is_interval(value) or _is_number(value)


def rows_table(rows: Sequence[Mapping[str, Any]], *, max_rows: int = MAX_TABLE_ROWS,
               data_link: str | None = None) -> str:
    """An HTML table of ``rows``: label columns first, then numbers, each in order of first
    appearance (JSON files are written with sorted keys, which would put labels anywhere);
    nested records spread into columns of their own (`flat_row`).
    A column of raw data only (`raw_data_summary`) is left out and named under the table; a
    raw-data cell elsewhere says what it holds; both link to ``data_link`` (the results file)."""
    rows = [flat_row(row) for row in rows]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    raw = [key for key in keys if _raw_column(rows, key)]
    keys = [key for key in keys if key not in raw]
    numeric = {key for key in keys if any(_is_numeric(row.get(key)) for row in rows)}
    columns = [key for key in keys if key not in numeric] + [key for key in keys if key in numeric]
    # A spread column's name may break after each dot or underscore, an interval after its
    # parts: a wide table keeps to the page's width.
    header = "".join(
        f"<th>{escape(str(column)).replace('.', '.<wbr>').replace('_', '_<wbr>')}</th>"
        for column in columns)
    body = []
    for row in rows[:max_rows]:
        cells = "".join(
            f'<td class="number">{format_value(row.get(c))}</td>'
            if _is_numeric(row.get(c))
            else f"<td>{format_value(row.get(c))}{_data_link(row.get(c), data_link)}</td>"
            for c in columns
        )
        body.append(f"<tr>{cells}</tr>")
    more = len(rows) - max_rows
    if more > 0:
        body.append(f'<tr><td colspan="{len(columns)}">… {more} more rows in the notebook'
                    "</td></tr>")
    table = f"<table>\n<tr>{header}</tr>\n" + "\n".join(body) + "\n</table>"
    return table + _raw_note(rows, raw, data_link)


def flat_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with every nested record (a mapping that is not an interval) spread into one
    column per leaf, named by its path: ``{"best": {"miou": {"value": 0.8}}}`` becomes
    ``{"best.miou.value": 0.8}``, so its numbers show as numbers, not as "1 value"."""
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Mapping) and value and not is_interval(value):
            flat |= {f"{key}.{inner}": leaf for inner, leaf in flat_row(value).items()}
        else:
            flat[str(key)] = value
    return flat


def _raw_column(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    values = [row[key] for row in rows if row.get(key) is not None]
    return bool(values) and all(raw_data_summary(value) is not None for value in values)


def _raw_note(rows: Sequence[Mapping[str, Any]], raw: Sequence[str], data_link: str | None) -> str:
    """"Not in the table: per_case (iou_gt: 64 values) per row, in the results JSON."."""
    if not raw:
        return ""
    first = {key: next(row[key] for row in rows if row.get(key) is not None) for key in raw}
    named = "; ".join(f"{escape(str(key))} ({escape(str(raw_data_summary(value)))})"
                      for key, value in first.items())
    where = (f'<a href="{escape(data_link)}">the results JSON</a>' if data_link
             else "the results JSON")
    return f'<p class="note">Not in the table: {named} per row, in {where}.</p>'


def _data_link(value: Any, data_link: str | None) -> str:
    if data_link is None or raw_data_summary(value) is None:
        return ""
    return f' <a href="{escape(data_link)}">(JSON)</a>'


def tables_in(results: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every non-empty list of dicts in ``results`` (top level and one level down), by key."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key, value in results.items():
        candidates = value.items() if isinstance(value, Mapping) else [("", value)]
        for inner_key, inner in candidates:
            if isinstance(inner, list) and inner and all(isinstance(r, Mapping) for r in inner):
                found[f"{key}.{inner_key}" if inner_key else key] = inner
    return found


def main_table(results: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """(key, rows) of the table that best summarises ``results``, or None when it has none."""
    tables = tables_in(results)
    for key in MAIN_TABLE_KEYS:
        if key in tables:
            return key, tables[key]
    return next(iter(tables.items()), None)


def verdict_class(verdict: Any) -> str:
    """CSS class colouring a verdict: one of `VERDICT_COLOURS`' (the forest plot's), or other."""
    text = str(verdict).strip().lower()
    return "verdict-" + (text.replace(" ", "-") if text in VERDICT_COLOURS else "other")


def enlargeable_figure(src: str, alt: str, caption: str, *, css_class: str | None = None) -> str:
    """A ``<figure>`` of the image file at ``src`` (relative to the page) that links to the
    file itself: a click shows it at full size. ``alt`` and ``caption`` are plain text."""
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return (f'<figure{attribute}><a href="{escape(src)}"><img src="{escape(src)}" '
            f'alt="{escape(alt)}"></a><figcaption>{escape(caption)} (Click to enlarge.)'
            "</figcaption></figure>")


def page(title: str, body: Sequence[str]) -> str:
    """A standalone HTML5 document titled ``title``, the ``body`` fragments in its ``<main>``."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title>",
            f"<style>{STYLE}{VERDICT_STYLE}</style>{PRINT_SCRIPT}</head><body><main>",
            *body,
            "</main></body></html>",
        ]
    )
