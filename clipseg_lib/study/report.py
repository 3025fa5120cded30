"""The study's HTML report: executed notebooks without their code, and an index page.

``<output_dir>/report/index.html`` names the model that was actually used (from ``run.json``),
shows the conclusion table (from ``conclusion.json``) and links to one page per notebook.
Pages are self-contained: figures are embedded as data URIs.
"""

from __future__ import annotations

import json
import warnings
from html import escape
from pathlib import Path
from typing import Any

import nbformat
from nbconvert import HTMLExporter

from clipseg_lib.study.results import RUN_MANIFEST_NAME

CONCLUSION_NAME = "conclusion"
CLAIM_COLUMNS = ("claim", "evidence", "verdict")
MODEL_DESCRIPTIONS = {"mini": "mini (bundled, trained on the synthetic world)"}

_STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; line-height: 1.4; }
.banner { padding: 1rem; border: 2px solid #444; background: #f3f3f3; font-size: 1.3rem; }
.quick { color: #a00; }
table { border-collapse: collapse; } td, th { border: 1px solid #999; padding: 0.4rem; }
.failed { color: #a00; }
"""


def _render_notebook(notebook: Path, page: Path) -> bool:
    """Write ``notebook`` as HTML without inputs to ``page``; False when it cannot be rendered."""
    exporter = HTMLExporter(
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True
    )
    # A partially written notebook from a killed run must not take the whole report down.
    try:
        body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"could not render {notebook}: {error}", stacklevel=2)
        return False
    page.write_text(body, encoding="utf-8")
    return True


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None (with a warning) when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        warnings.warn(f"could not read {path}: {error}", stacklevel=2)
        return None
    return document if isinstance(document, dict) else None


def _banner(manifest: dict[str, Any] | None) -> str:
    if manifest is None:
        return '<p class="banner">Model: unknown (no run.json in this output dir)</p>'
    model = str(manifest.get("model_resolved"))
    description = MODEL_DESCRIPTIONS.get(model, f"{model} (pretrained CLIPSeg weights)")
    requested = str(manifest.get("model_requested"))
    lines = [f"Model: {escape(description)}"]
    if requested != model:
        lines.append(f"<small>(requested: {escape(requested)})</small>")
    if manifest.get("quick"):
        lines.append(
            '<br><span class="quick">Quick run: too few cases to conclude anything.</span>'
        )
    return f'<p class="banner">{" ".join(lines)}</p>'


def _claims_table(conclusion: dict[str, Any]) -> str:
    """The claims of ``conclusion.json`` as an HTML table (ValueError if they are malformed)."""
    claims = conclusion.get("results", {}).get("claims")
    if not isinstance(claims, list) or not all(
        isinstance(claim, dict) and set(CLAIM_COLUMNS) <= claim.keys() for claim in claims
    ):
        raise ValueError(f"results['claims'] must be a list of dicts with keys {CLAIM_COLUMNS}")
    header = "".join(f"<th>{column.capitalize()}</th>" for column in CLAIM_COLUMNS)
    rows = [
        "<tr>"
        + "".join(f"<td>{escape(str(claim[column]))}</td>" for column in CLAIM_COLUMNS)
        + "</tr>"
        for claim in claims
    ]
    return f"<table>\n<tr>{header}</tr>\n" + "\n".join(rows) + "\n</table>"


def _conclusion_section(output_dir: Path) -> str:
    conclusion = _read_json(output_dir / f"{CONCLUSION_NAME}.json")
    if conclusion is None:
        return ""
    try:
        table = _claims_table(conclusion)
    except (ValueError, AttributeError) as error:
        table = f"<p>conclusion.json could not be shown: {escape(str(error))}</p>"
    return f"<h2>Conclusion</h2>\n{table}"


def _status_text(stem: str, outcomes: dict[str, dict[str, Any]]) -> str:
    outcome = outcomes.get(stem)
    if outcome is None:
        return "from an earlier run"
    if outcome.get("status") == "ok":
        return f"ok ({outcome.get('seconds', 0):.1f} s)"
    return (
        f'<span class="failed">failed: {escape(str(outcome.get("error_type")))}: '
        f"{escape(str(outcome.get('error_message')))}</span>"
    )


def build_report(output_dir: str | Path) -> Path:
    """Render ``<output_dir>/notebooks/*.ipynb`` to ``<output_dir>/report/``; return index.html."""
    output_dir = Path(output_dir)
    report_dir = output_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_json(output_dir / f"{RUN_MANIFEST_NAME}.json")
    outcomes = {
        outcome["stem"]: outcome
        for outcome in (manifest or {}).get("notebooks", [])
        if isinstance(outcome, dict) and "stem" in outcome
    }
    executed = {path.stem: path for path in (output_dir / "notebooks").glob("*.ipynb")}
    items = []
    for stem in sorted(executed.keys() | outcomes.keys()):
        page = report_dir / f"{stem}.html"
        link = escape(stem)
        if stem not in executed:
            link += " (no executed notebook)"
        elif _render_notebook(executed[stem], page):
            link = f'<a href="{escape(page.name)}">{link}</a>'
        else:
            link += " (could not be rendered)"
        items.append(f"<li>{link}: {_status_text(stem, outcomes)}</li>")
    index = report_dir / "index.html"
    index.write_text(
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                "<title>CLIPSeg study report</title>",
                f"<style>{_STYLE}</style></head><body>",
                "<h1>CLIPSeg study report</h1>",
                _banner(manifest),
                _conclusion_section(output_dir),
                "<h2>Notebooks</h2>",
                "<ul>",
                *items,
                "</ul>",
                "</body></html>",
            ]
        ),
        encoding="utf-8",
    )
    return index
