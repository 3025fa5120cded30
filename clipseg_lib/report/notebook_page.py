"""A notebook's page in the report: its title, and its executed copy as HTML without inputs,
readable offline, every figure a file in ``<stem>_files/`` beside the page that the page links
to (click to enlarge), with alt text (`add_alt_text`, written by the template)."""

from __future__ import annotations

import warnings
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import ExtractOutputPreprocessor
from nbformat import NotebookNode

from clipseg_lib.study.results import write_text_atomic

#: nbconvert's lab template without CDN scripts and without mid-word wrapping of output text.
NOTEBOOK_PAGE_TEMPLATE = Path(__file__).parent / "templates" / "offline_page.html.j2"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
MAX_CONTEXT = 120


def add_alt_text(notebook: NotebookNode, title: str) -> int:
    """Give every image output without alt text one (nbconvert writes it as ``alt``): "Figure
    <k> of <title>", and the first line of the Markdown cell before it; return how many."""
    count, context = 0, ""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            context = cell.source.strip().splitlines()[0].lstrip("#").strip()[:MAX_CONTEXT]
        for output in cell.get("outputs", []):
            for kind in (kind for kind in IMAGE_TYPES if kind in output.get("data", {})):
                metadata = output.setdefault("metadata", {}).setdefault(kind, {})
                if not metadata.get("alt"):
                    count += 1
                    metadata["alt"] = f"Figure {count} of {title}" + (
                        f", after: {context}" if context else "")
    return count


def notebook_title(executed: Path, fallback: str) -> str:
    """The first Markdown heading of ``executed`` (``05 · A specific word``), else ``fallback``."""
    try:
        notebook = nbformat.read(executed, as_version=4)
    except (OSError, ValueError, AttributeError) as error:
        warnings.warn(f"could not read {executed}: {error}", stacklevel=2)
        return fallback
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip() or fallback
    return fallback


def render_notebook(executed: Path, target: Path, title: str) -> bool:
    """Write ``executed`` as HTML titled ``title``, inputs and prompts hidden, its figures into
    ``<target stem>_files/``; False on failure."""
    exporter = HTMLExporter(
        template_file=str(NOTEBOOK_PAGE_TEMPLATE), exclude_input=True, exclude_input_prompt=True,
        exclude_output_prompt=True, embed_images=True,
    )
    exporter.register_preprocessor(
        ExtractOutputPreprocessor(extract_output_types=set(IMAGE_TYPES)), enabled=True)
    figures_dir = f"{target.stem}_files"
    # A half-written notebook from a killed run must not take the whole report down.
    try:
        notebook = nbformat.read(executed, as_version=4)
        add_alt_text(notebook, title)
        body, resources = exporter.from_notebook_node(notebook, resources={
            "metadata": {"name": title}, "output_files_dir": figures_dir})
    except Exception as error:  # noqa: BLE001
        warnings.warn(f"could not render {executed}: {error}", stacklevel=2)
        return False
    for name, data in resources.get("outputs", {}).items():
        path = target.parent / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    write_text_atomic(target, body)
    return True
