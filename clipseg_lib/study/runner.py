"""The study's main command: execute the numbered notebooks with papermill, then build the report.

``clipseg-study run`` (or ``python -m clipseg_lib run``) executes ``notebooks/NN_*.ipynb`` in
order, each in its own kernel, writes the executed copies to ``<output_dir>/notebooks/``, the
manifest ``<output_dir>/run.json`` and the HTML report ``<output_dir>/report/``. A notebook that
fails, times out or kills its kernel is recorded and the run goes on with the next one.
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import papermill
from tqdm import tqdm

from clipseg_lib.study.report import build_report
from clipseg_lib.study.results import RUN_MANIFEST_NAME, provenance, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "results"
QUICK_CASES = 4
"""``n_cases`` under ``--quick``: enough to exercise every notebook, not to conclude anything."""
DEFAULT_CELL_TIMEOUT_S = 600
KERNEL_NAME = "python3"
"""jupyter_client maps the native ``python3`` kernel to the running interpreter."""
PLAYGROUND_MARKER = "playground"
"""Notebooks whose stem contains this are interactive and not part of the study."""
RUNNER_PARAMETERS = ("model", "output_dir")
"""Parameters the runner sets itself; ``-p`` may not override them."""


class StudyConfigError(ValueError):
    """The command line or the notebooks dir is invalid; raised before anything executes."""


@dataclass(frozen=True)
class NotebookRun:
    """Outcome of one notebook: ``status`` is ``"ok"`` or ``"failed"``."""

    stem: str
    status: str
    seconds: float
    parameters: dict[str, Any]
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class StudyRun:
    """Outcome of one ``run``: the model asked for and used, and each notebook's outcome."""

    model_requested: str
    model_resolved: str
    output_dir: Path
    quick: bool
    parameters: dict[str, str]
    notebooks: list[NotebookRun]

    @property
    def failed(self) -> list[NotebookRun]:
        return [run for run in self.notebooks if run.status != "ok"]


def discover_notebooks(notebooks_dir: Path, selected: Sequence[str] | None = None) -> list[Path]:
    """The study notebooks ``NN_*.ipynb`` of ``notebooks_dir`` in sorted order.

    Playground notebooks are left out. ``selected`` filters by stem (``03_distorted_images``)
    or number prefix (``03``); a selector that matches no study notebook is a StudyConfigError.
    """
    if not notebooks_dir.is_dir():
        raise StudyConfigError(f"notebooks dir {notebooks_dir} does not exist")
    notebooks = [
        path
        for path in sorted(notebooks_dir.glob("[0-9][0-9]_*.ipynb"))
        if PLAYGROUND_MARKER not in path.stem
    ]
    if not selected:
        return notebooks
    stems = [path.stem for path in notebooks]
    selectable = set(stems) | {stem[:2] for stem in stems}
    unmatched = [name for name in selected if name not in selectable]
    if unmatched:
        raise StudyConfigError(
            f"no study notebook matches {', '.join(unmatched)}; available: {', '.join(stems)}"
        )
    return [path for path in notebooks if path.stem in selected or path.stem[:2] in selected]


def _declared_defaults(notebook: Path) -> dict[str, Any]:
    """Parameter name -> default value of ``notebook``'s parameters cell.

    A default that is not a Python literal is kept as its source text.
    """
    defaults = {}
    for name, spec in papermill.inspect_notebook(str(notebook)).items():
        try:
            defaults[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            defaults[name] = spec["default"]
    return defaults


def parse_parameter(raw: str, default: Any) -> Any:
    """``raw`` (command-line text) converted to the type of ``default``.

    bool accepts true/false/1/0; list and tuple are parsed with ``ast.literal_eval``; a ``None``
    default takes any Python literal, else the text. Raises ValueError when ``raw`` does not parse.
    """
    if isinstance(default, bool):
        words = {"true": True, "1": True, "false": False, "0": False}
        if raw.strip().lower() not in words:
            raise ValueError(f"{raw!r} is not a bool (true/false/1/0)")
        return words[raw.strip().lower()]
    if isinstance(default, (int, float)):
        return type(default)(raw)
    if isinstance(default, (list, tuple)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{raw!r} is not a Python literal") from error
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{raw!r} is not a list or tuple")
        return type(default)(value)
    if default is None:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    return raw


def _split_assignments(assignments: Sequence[str]) -> dict[str, str]:
    """``["name=value", ...]`` -> ``{name: value}`` (text values, later ones win)."""
    overrides = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator or not name.strip():
            raise StudyConfigError(f"-p expects name=value, got {assignment!r}")
        if name.strip() in RUNNER_PARAMETERS:
            raise StudyConfigError(
                f"-p {name.strip()} is set by the runner; use --{name.strip().replace('_', '-')}"
            )
        overrides[name.strip()] = value
    return overrides


def _notebook_parameters(
    notebooks: Sequence[Path], overrides: Mapping[str, str], *, quick: bool
) -> dict[str, dict[str, Any]]:
    """Stem -> parameters to inject (without the runner's ``model``/``output_dir``)."""
    defaults_by_stem = {path.stem: _declared_defaults(path) for path in notebooks}
    declared = set().union(*defaults_by_stem.values())
    unknown = sorted(set(overrides) - declared)
    if unknown:
        raise StudyConfigError(
            f"no selected notebook declares {', '.join(unknown)}; "
            f"valid names: {', '.join(sorted(declared - set(RUNNER_PARAMETERS)))}"
        )
    parameters_by_stem = {}
    for stem, defaults in defaults_by_stem.items():
        parameters = {"n_cases": QUICK_CASES} if quick and "n_cases" in defaults else {}
        for name, raw in overrides.items():
            if name not in defaults:
                continue
            try:
                parameters[name] = parse_parameter(raw, defaults[name])
            except ValueError as error:
                raise StudyConfigError(
                    f"parameter {name} of notebook {stem} expects {type(defaults[name]).__name__}: "
                    f"{error}"
                ) from error
        parameters_by_stem[stem] = parameters
    return parameters_by_stem


def _resolve_model(model: str) -> str:
    if model != "auto":
        return model
    from clipseg_lib.model.loading import resolve_model_source

    return resolve_model_source("auto")


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _execute(
    notebook: Path, executed: Path, parameters: dict[str, Any], cell_timeout: float
) -> NotebookRun:
    """Run ``notebook`` into ``executed``; any failure is recorded, not raised."""
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            notebook,
            executed,
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            cwd=notebook.parent,
            execution_timeout=cell_timeout,
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
        )
    # A failing notebook must not stop the study: record it and go on with the next one.
    except Exception as error:  # noqa: BLE001
        error_type = getattr(error, "ename", type(error).__name__)
        message = getattr(error, "evalue", None) or str(error)
        return NotebookRun(
            notebook.stem,
            "failed",
            time.perf_counter() - start,
            parameters,
            error_type=error_type,
            error_message=_one_line(message),
        )
    return NotebookRun(notebook.stem, "ok", time.perf_counter() - start, parameters)


def _remove_stale_outputs(output_dir: Path, stems: Sequence[str]) -> None:
    for stem in stems:
        (output_dir / "notebooks" / f"{stem}.ipynb").unlink(missing_ok=True)
        (output_dir / "report" / f"{stem}.html").unlink(missing_ok=True)


def run_study(
    notebooks_dir: Path,
    output_dir: Path,
    *,
    model: str = "auto",
    selected: Sequence[str] | None = None,
    parameters: Sequence[str] = (),
    quick: bool = False,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT_S,
) -> StudyRun:
    """Execute the selected notebooks of ``notebooks_dir`` into ``output_dir``; build the report.

    ``parameters`` are ``name=value`` texts, parsed by the type of each notebook's default.
    Everything is validated before the first notebook runs (StudyConfigError otherwise).
    """
    output_dir = Path(output_dir).resolve()
    if output_dir.exists() and not output_dir.is_dir():
        raise StudyConfigError(f"output dir {output_dir} exists and is not a directory")
    if cell_timeout <= 0:
        raise StudyConfigError(f"cell timeout must be positive, got {cell_timeout}")
    notebooks = discover_notebooks(Path(notebooks_dir).resolve(), selected)
    if not notebooks:
        raise StudyConfigError(f"no study notebooks (NN_*.ipynb) in {notebooks_dir}")
    overrides = _split_assignments(parameters)
    injected = _notebook_parameters(notebooks, overrides, quick=quick)
    model_resolved = _resolve_model(model)

    (output_dir / "notebooks").mkdir(parents=True, exist_ok=True)
    _remove_stale_outputs(output_dir, [path.stem for path in notebooks])
    runner_parameters = {"model": model_resolved, "output_dir": str(output_dir)}
    outcomes = []
    progress = tqdm(notebooks, desc="notebooks", unit="notebook", disable=None)
    for notebook in progress:
        progress.set_postfix_str(notebook.stem)
        executed = output_dir / "notebooks" / notebook.name
        outcome_parameters = {**injected[notebook.stem], **runner_parameters}
        outcomes.append(_execute(notebook, executed, outcome_parameters, cell_timeout))

    study = StudyRun(model, model_resolved, output_dir, quick, dict(overrides), outcomes)
    seed = next((values["seed"] for values in injected.values() if "seed" in values), None)
    manifest = {
        "model_requested": study.model_requested,
        "model_resolved": study.model_resolved,
        "quick": quick,
        "cell_timeout_s": cell_timeout,
        "parameters": study.parameters,
        "notebooks": [asdict(outcome) for outcome in outcomes],
        "provenance": provenance(seed=seed),
    }
    write_json_atomic(output_dir / f"{RUN_MANIFEST_NAME}.json", manifest)
    build_report(output_dir)
    return study


def _summary_line(outcome: NotebookRun) -> str:
    line = f"{outcome.status.upper():<7}{outcome.stem:<40}{outcome.seconds:8.1f} s"
    if outcome.status != "ok":
        line += f"  {outcome.error_type}: {outcome.error_message}"
    return line


def add_run_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study run`` on the command line's subcommands."""
    run = commands.add_parser("run", help="execute the study notebooks and build the report")
    run.add_argument("--model", default="auto", help="'auto', 'mini' or a CLIPSeg id (auto)")
    run.add_argument(
        "--notebooks", nargs="+", metavar="NAME", help="stems or number prefixes (all)"
    )
    run.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="(results/ of the repo)"
    )
    run.add_argument("--quick", action="store_true", help=f"set n_cases={QUICK_CASES}")
    run.add_argument(
        "-p",
        dest="parameters",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a notebook parameter (repeatable)",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT_S,
        metavar="S",
        help=f"per-cell timeout in seconds ({DEFAULT_CELL_TIMEOUT_S})",
    )
    run.set_defaults(handler=run_command)


def run_command(arguments: argparse.Namespace) -> int:
    """``clipseg-study run``: 0 all notebooks ok, 1 some failed, 2 invalid input."""
    try:
        study = run_study(
            NOTEBOOKS_DIR,
            arguments.output_dir,
            model=arguments.model,
            selected=arguments.notebooks,
            parameters=arguments.parameters,
            quick=arguments.quick,
            cell_timeout=arguments.cell_timeout,
        )
    except StudyConfigError as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    print(f"model: {study.model_resolved} (requested {study.model_requested})")
    for outcome in study.notebooks:
        print(_summary_line(outcome))
    print(f"report: {study.output_dir / 'report' / 'index.html'}")
    return 1 if study.failed else 0
