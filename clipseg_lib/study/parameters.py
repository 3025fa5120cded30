"""What the study runner injects into each notebook: discovery, parsing and checks of parameters.

Every check runs before anything executes; a bad value raises `StudyConfigError` naming the
parameter, the notebook and the problem. Paths given on the command line resolve against the
current directory (notebooks run with ``notebooks/`` as their working directory, so the runner
passes them on as absolute paths).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import papermill

from clipseg_lib.experiments.cases import QUICK_CASES_FILE
from clipseg_lib.experiments.question_sets import QUICK_CASES

PLAYGROUND_MARKER = "playground"
"""Notebooks whose stem contains this are interactive and not part of the study."""
RUNNER_PARAMETERS = {
    "model": "--model", "output_dir": "--output-dir", "dtype": "--dtype", "device": "--device",
}
"""Parameters the runner sets itself -> the flag that sets them; ``-p`` may not override them."""
PATH_SUFFIXES = ("_file", "_dir", "_path", "_root", "_weights")
"""A parameter whose name ends so names a file or folder that must exist."""
MODEL_OPTIONS = ("clip_weights", "processor")
"""Parameters that say how to load the model; the runner's model check uses them too."""
MAX_CELL_TIMEOUT_S = 7 * 24 * 3600


class StudyConfigError(ValueError):
    """The command line or the notebooks dir is invalid; raised before anything executes."""


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
    if not notebooks:
        raise StudyConfigError(f"no study notebooks (NN_*.ipynb) in {notebooks_dir}")
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


def declared_defaults(notebook: Path) -> dict[str, Any]:
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


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(item) for item in value)
    return False


def parse_parameter(raw: str, default: Any) -> Any:
    """``raw`` (command-line text) converted to the type of ``default``.

    bool accepts true/false/1/0; list and tuple are parsed with ``ast.literal_eval``; a ``None``
    default takes any Python literal, else the text. inf and nan (also ``1e999``) are refused
    unless the default holds one. Raises ValueError when ``raw`` does not parse.
    """
    if isinstance(default, bool):
        words = {"true": True, "1": True, "false": False, "0": False}
        if raw.strip().lower() not in words:
            raise ValueError(f"{raw!r} is not a bool (true/false/1/0)")
        return words[raw.strip().lower()]
    if isinstance(default, (int, float)):
        value = type(default)(raw)
    elif isinstance(default, (list, tuple)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{raw!r} is not a Python literal") from error
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{raw!r} is not a list or tuple")
        value = type(default)(value)
    elif default is None:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
    else:
        value = raw
    if _has_non_finite(value) and not _has_non_finite(default):
        raise ValueError(f"{raw!r} is not finite")
    return value


def split_assignments(assignments: Sequence[str], flag: str = "-p") -> dict[str, str]:
    """``["name=value", ...]`` -> ``{name: value}`` (text values, later ones win)."""
    overrides = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        name = name.strip()
        if not separator or not name:
            raise StudyConfigError(f"{flag} expects name=value, got {assignment!r}")
        if name in RUNNER_PARAMETERS:
            raise StudyConfigError(
                f"{flag} {name} is set by the runner; use {RUNNER_PARAMETERS[name]}"
            )
        overrides[name] = value
    return overrides


def resolve_path(raw: str, what: str) -> str:
    """``raw`` resolved against the current directory; StudyConfigError if nothing is there."""
    path = Path(raw).expanduser()
    if not path.exists():
        raise StudyConfigError(f"{what}: {raw} does not exist (relative to {Path.cwd()})")
    return str(path.resolve())


def resolve_model_source(raw: str, what: str = "--model") -> str:
    """A model name or hub id as given; a path that exists (from the current directory) made
    absolute; StudyConfigError for text that is plainly a path but names nothing."""
    path = Path(raw).expanduser()
    if path.exists():
        return str(path.resolve())
    plainly_a_path = raw.startswith((".", "/", "~")) or path.suffix in (".pth", ".pt", ".bin")
    if plainly_a_path or raw.count("/") > 1:
        raise StudyConfigError(f"{what}: {raw} does not exist (relative to {Path.cwd()})")
    return raw


def _resolved_override(name: str, raw: str) -> str:
    if name.endswith(PATH_SUFFIXES):
        return resolve_path(raw, f"-p {name}")
    if name in MODEL_OPTIONS:
        return resolve_model_source(raw, f"-p {name}")
    return raw


def model_options(overrides: Mapping[str, str]) -> dict[str, str]:
    """The `MODEL_OPTIONS` among ``overrides``, paths resolved (for the runner's model check)."""
    return {
        name: _resolved_override(name, overrides[name])
        for name in MODEL_OPTIONS
        if name in overrides
    }


def check_cell_timeout(seconds: float) -> int:
    """``seconds`` as the whole number of seconds nbclient takes, or StudyConfigError."""
    if not math.isfinite(seconds) or seconds <= 0:
        raise StudyConfigError(
            f"--cell-timeout must be a positive number of seconds, got {seconds}"
        )
    if seconds != int(seconds) or seconds > MAX_CELL_TIMEOUT_S:
        raise StudyConfigError(
            f"--cell-timeout must be whole seconds from 1 to {MAX_CELL_TIMEOUT_S}, got {seconds}"
        )
    return int(seconds)


def notebook_parameters(
    notebooks: Sequence[Path],
    overrides: Mapping[str, str],
    *,
    quick: bool = False,
    dtype: str | None = None,
    device: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Stem -> parameters to inject (without the runner's ``model``/``output_dir``).

    ``overrides`` are ``-p`` texts, parsed by the type of each notebook's default; each name must
    be declared by at least one notebook. ``quick`` sets ``n_cases`` and ``cases_file`` (two
    photos instead of six) where declared and not overridden; ``dtype`` and ``device`` go to
    the notebooks that declare them.
    """
    defaults_by_stem = {path.stem: declared_defaults(path) for path in notebooks}
    declared = set().union(*defaults_by_stem.values())
    runner_set = {"dtype": dtype, "device": device}
    wanted = set(overrides) | {name for name, value in runner_set.items() if value is not None}
    unknown = sorted(wanted - declared)
    if unknown:
        raise StudyConfigError(
            f"no selected notebook declares {', '.join(unknown)}; "
            f"valid names: {', '.join(sorted(declared - set(RUNNER_PARAMETERS)))}"
        )
    texts = {name: _resolved_override(name, raw) for name, raw in overrides.items()}
    if quick:
        texts = {"n_cases": str(QUICK_CASES), "cases_file": str(QUICK_CASES_FILE), **texts}
    texts.update({name: value for name, value in runner_set.items() if value is not None})
    parameters_by_stem = {}
    for stem, defaults in defaults_by_stem.items():
        parameters = {}
        for name, raw in texts.items():
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


def effective_parameters(notebook: Path, injected: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter ``notebook`` runs with: its declared defaults with ``injected`` on top."""
    return {**declared_defaults(notebook), **injected}
