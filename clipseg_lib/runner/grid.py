"""Papermill batches: the study once per combination of settings, and an index comparing them.

A grid maps setting names to values: ``model`` and ``dtype`` are the runner's own, any other name
is a notebook parameter (as ``-p``). Each combination runs as a complete study (its own
``run.json`` and report) into ``OUTPUT/<combination>/``; ``OUTPUT/index.html`` sets the
combinations' conclusions (``conclusion.json`` claims) side by side, and ``OUTPUT/grid.json``
records the combinations (no ``run.json`` there: the grid folder is not a study, and
``clipseg-study compare OUTPUT`` takes its subfolders). Every combination is checked, and every
distinct model loaded once, before the first notebook runs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from clipseg_lib.experiments.budget import image_gflop
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.runner.run_study import StudyPlan, StudyRun, execute_plan, plan_study
from clipseg_lib.runner.warm_up import Speed
from clipseg_lib.study.output_dir import OwnedOutputDir, read_manifest, run_lock
from clipseg_lib.study.parameters import StudyConfigError
from clipseg_lib.study.results import write_json_atomic

CONCLUSION_FILE = "conclusion.json"
RUNNER_SETTINGS = ("model", "dtype", "device")
INDEX_STYLE = (
    "body { font-family: sans-serif; margin: 2rem; } table { border-collapse: collapse; } "
    "td, th { border: 1px solid #999; padding: 0.4rem; vertical-align: top; } "
    ".failed { color: #a00; } small { color: #555; }"
)


@dataclass(frozen=True)
class Combination:
    """One point of the grid: its directory name and its settings (name -> value text)."""

    name: str
    settings: dict[str, str]


def split_values(text: str) -> list[str]:
    """``"a,[1, 2],b"`` -> ``["a", "[1, 2]", "b"]``: commas inside brackets or quotes stay."""
    values, current, depth, quote = [], "", 0, ""
    for character in text:
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
        elif character == "," and depth == 0:
            values.append(current.strip())
            current = ""
            continue
        current += character
    values.append(current.strip())
    return values


def parse_grid(assignments: Sequence[str], grid_file: Path | None = None) -> dict[str, list[str]]:
    """Setting name -> values, from ``--grid name=v1,v2`` texts and a JSON grid file
    (``{"model": ["mini", "DIR"], "seed": [0, 1]}``); StudyConfigError if malformed."""
    grid: dict[str, list[str]] = {}
    if grid_file is not None:
        try:
            document = json.loads(Path(grid_file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StudyConfigError(f"grid file {grid_file}: {error}") from error
        if not isinstance(document, dict) or not all(
            isinstance(values, list) and values for values in document.values()
        ):
            raise StudyConfigError(
                f"grid file {grid_file}: expected an object of non-empty lists, "
                '{"seed": [0, 1]} for example'
            )
        for name, values in document.items():
            grid[name] = [
                value if isinstance(value, str) else json.dumps(value) for value in values
            ]
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        values = split_values(text)
        if not separator or not name.strip() or not all(values):
            raise StudyConfigError(f"--grid expects name=value1,value2, got {assignment!r}")
        grid[name.strip()] = values
    if "output_dir" in grid:
        raise StudyConfigError("--grid output_dir: each combination gets OUTPUT/<combination>/")
    return grid


def _slug(value: str) -> str:
    tail = Path(value).name if ("/" in value or "\\" in value) and Path(value).name else value
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", tail).strip("-.") or "value"


def combinations(grid: Mapping[str, Sequence[str]]) -> list[Combination]:
    """Every combination, the last setting varying fastest, each with a unique directory name
    such as ``model-mini_seed-1``."""
    names = list(grid)
    found: list[Combination] = []
    used: set[str] = set()
    for values in itertools.product(*(grid[name] for name in names)):
        base = "_".join(f"{name}-{_slug(value)}" for name, value in zip(names, values, strict=True))
        directory, counter = base, 2
        while directory in used:
            directory, counter = f"{base}-{counter}", counter + 1
        used.add(directory)
        found.append(Combination(directory, dict(zip(names, values, strict=True))))
    return found


def plan_grid(
    notebooks_dir: Path,
    output_dir: Path,
    grid: Mapping[str, Sequence[str]],
    *,
    model: str = "auto",
    parameters: Sequence[str] = (),
    dtype: str | None = None,
    device: str | None = None,
    force: bool = False,
    **options: Any,
) -> tuple[OwnedOutputDir, list[tuple[Combination, StudyPlan]]]:
    """Check the grid directory and every combination's study (see `plan_study`; each distinct
    model is loaded and timed once) and forecast each; write nothing."""
    owned = OwnedOutputDir.claim(
        Path(output_dir), kind="grid", identity="grid", sources=Path(notebooks_dir), force=force
    )
    plans: list[tuple[Combination, StudyPlan]] = []
    checked: dict[tuple, tuple[Segmenter, Speed]] = {}  # model load -> model, its warm-up
    for combination in combinations(grid):
        settings = combination.settings
        study_parameters = [*parameters]
        study_parameters += [f"{k}={v}" for k, v in settings.items() if k not in RUNNER_SETTINGS]
        plan = plan_study(
            notebooks_dir,
            owned.path / combination.name,
            model=settings.get("model", model),
            parameters=study_parameters,
            dtype=settings.get("dtype", dtype),
            device=settings.get("device", device),
            force=force,
            check_model=False,
            **options,
        )
        model_load = (plan.model_resolved, plan.dtype, plan.device,
                      tuple(sorted(plan.model_options.items())))
        if model_load not in checked:
            segmenter = plan.check_model()
            checked[model_load] = segmenter, plan.measure_speed(segmenter)
        segmenter, speed = checked[model_load]
        plan.skip_training(image_gflop(segmenter))
        plan.forecast(segmenter, speed)
        plans.append((combination, plan))
    return owned, plans


def execute_grid(
    owned: OwnedOutputDir,
    grid: Mapping[str, Sequence[str]],
    plans: Sequence[tuple[Combination, StudyPlan]],
) -> list[tuple[Combination, StudyRun]]:
    """Run every planned combination's study (`plan_grid`) into its own folder, one after
    another (each with the notebook concurrency of its options), then write the grid's
    ``index.html``."""
    with run_lock(owned.path):
        owned.prepare(rerun=[])
        runs = [(combination, execute_plan(plan)) for combination, plan in plans]
        write_index(owned.path, runs)
        _write_grid_manifest(owned, grid, runs)
    return runs


def _write_grid_manifest(
    owned: OwnedOutputDir,
    grid: Mapping[str, Sequence[str]],
    runs: list[tuple[Combination, StudyRun]],
) -> None:
    """``grid.json``: the grid, each combination's failed notebooks and the files written."""
    write_json_atomic(
        owned.manifest_path,
        {
            "kind": "grid",
            "identity": "grid",
            "grid": {name: list(values) for name, values in grid.items()},
            "combinations": [
                {"name": c.name, "settings": c.settings, "failed": [o.stem for o in run.failed]}
                for c, run in runs
            ],
            "written_files": owned.written_files([]),
        },
    )


def _claims(study_dir: Path) -> list[dict[str, Any]]:
    """The claims of a study's ``conclusion.json`` (under ``results`` or at the top), or []."""
    try:
        document = json.loads((study_dir / CONCLUSION_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    if not isinstance(document, dict):
        return []
    claims = document.get("results", document).get("claims", document.get("claims"))
    return [claim for claim in claims or [] if isinstance(claim, dict) and "claim" in claim]


def _cell(claim: dict[str, Any] | None) -> str:
    if claim is None:
        return "<td>-</td>"
    evidence = escape(str(claim.get("evidence", "")))
    return f"<td>{escape(str(claim.get('verdict', '?')))}<br><small>{evidence}</small></td>"


def write_index(grid_dir: Path, runs: Sequence[tuple[Combination, StudyRun]]) -> Path:
    """``grid_dir/index.html``: one column per combination (its settings, its notebooks' status,
    a link to its report), one row per claim of the conclusions, verdict and evidence."""
    claims_by_run = [
        {str(claim["claim"]): claim for claim in _claims(run.output_dir)} for _, run in runs
    ]
    claim_texts = list(dict.fromkeys(text for claims in claims_by_run for text in claims))
    header = ["<th>Claim</th>"]
    for combination, run in runs:
        settings = "<br>".join(escape(f"{k} = {v}") for k, v in combination.settings.items())
        manifest = read_manifest(run.output_dir) or {}
        status = (
            f'<span class="failed">failed: {escape(", ".join(o.stem for o in run.failed))}</span>'
            if run.failed
            else f"{len(run.notebooks)} notebooks ok"
        )
        model = escape(str(manifest.get("model_resolved", run.model_resolved)))
        link = f"{escape(combination.name)}/report/index.html"
        header.append(
            f'<th><a href="{link}">{escape(combination.name)}</a><br><small>{settings}<br>'
            f"model: {model}<br>{status}</small></th>"
        )
    rows = [f"<tr>{''.join(header)}</tr>"]
    for text in claim_texts:
        cells = "".join(_cell(claims.get(text)) for claims in claims_by_run)
        rows.append(f"<tr><td>{escape(text)}</td>{cells}</tr>")
    if not claim_texts:
        rows.append(f'<tr><td colspan="{len(runs) + 1}">No conclusion.json in any study.</td></tr>')
    index = grid_dir / "index.html"
    index.write_text(
        "\n".join(
            [
                "<!DOCTYPE html>",
                '<html lang="en"><head><meta charset="utf-8">',
                f"<title>CLIPSeg study grid</title><style>{INDEX_STYLE}</style></head><body>",
                f"<h1>CLIPSeg study grid: {len(runs)} combinations</h1>",
                "<table>",
                *rows,
                "</table>",
                "</body></html>",
            ]
        ),
        encoding="utf-8",
    )
    return index
