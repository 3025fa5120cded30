"""``clipseg-study run``: the command line of the study runner (one study, or a grid of them)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.model.hardware import bf16_warning, device_problem
from clipseg_lib.runner.execution import NotebookRun
from clipseg_lib.runner.forecast import plan_table
from clipseg_lib.runner.grid import execute_grid, parse_grid, plan_grid
from clipseg_lib.runner.run_study import (
    DEFAULT_CELL_TIMEOUT_S,
    DEFAULT_OUTPUT_DIR,
    NOTEBOOKS_DIR,
    StudyPlan,
    StudyRun,
    execute_plan,
    plan_study,
)
from clipseg_lib.study.parameters import QUICK_CASES, StudyConfigError
from clipseg_lib.study.results import load_results

DTYPES = ("float32", "bfloat16", "int8")


def add_run_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study run`` on the command line's subcommands."""
    run = commands.add_parser("run", help="execute the study notebooks and build the report")
    run.add_argument(
        "--model", default="auto", help="'auto', 'mini', a CLIPSeg id, a dir or a .pth"
    )
    run.add_argument(
        "--notebooks", nargs="+", metavar="NAME", help="stems or number prefixes (all)"
    )
    run.add_argument(
        "--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR, help="(results/ of the repo)"
    )
    run.add_argument(
        "--quick",
        action="store_true",
        help=f"n_cases={QUICK_CASES} and two photos (data/cases_quick.csv): a smoke test",
    )
    run.add_argument(
        "-p",
        dest="parameters",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a notebook parameter (repeatable); paths are relative to the current dir",
    )
    run.add_argument(
        "--dtype", choices=DTYPES,
        help="compute dtype, for the notebooks that declare dtype (int8: the vision backbone's "
             "linear layers quantized, CPU only)"
    )
    run.add_argument(
        "--device",
        help="cpu, cuda (cuda:N) or mps, for the notebooks that declare device (their default: "
        "cpu); refused at once where torch sees no such device",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan (each notebook's cases, encodings and estimated time from a short "
        "warm-up) and stop: nothing runs, nothing is written",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        default=DEFAULT_CELL_TIMEOUT_S,
        metavar="S",
        help="stop a cell after S whole seconds without using the CPU; a computing cell is "
        f"never stopped ({DEFAULT_CELL_TIMEOUT_S})",
    )
    run.add_argument(
        "--jobs", type=int, default=1, metavar="N", help="notebooks run at once, in processes (1)"
    )
    run.add_argument(
        "--scheduler", help="instead of --jobs: processes:N, local:N (Dask) or tcp://host:8786"
    )
    run.add_argument(
        "-g",
        "--grid",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="run the study once per combination into OUTPUT/<combination>/ (repeatable)",
    )
    run.add_argument("--grid-file", type=Path, help='JSON grid: {"model": ["mini", "DIR"], ...}')
    run.add_argument(
        "--force",
        action="store_true",
        help="use an output dir holding other files or another model's results (never deletes "
        "files the runner did not write)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the unfinished run of the same configuration in the output dir: keep "
        "its finished notebooks and finished cases, run the rest",
    )
    run.set_defaults(handler=run_command)


def _summary_line(outcome: NotebookRun, work: dict | None) -> str:
    """Status, notebook, wall time and, for a notebook that saved its backbone work, what it
    computed: encodings (distinct images + support images), GFLOP and the backbone's seconds."""
    line = f"{outcome.status.upper():<7}{outcome.stem:<40}{outcome.seconds:8.1f} s"
    if outcome.status != "ok":
        line += f"  {outcome.error_type}: {outcome.error_message}"
    elif work:
        line += (
            f"  {work['encodings']:5d} encodings ({work['distinct_images']} distinct images + "
            f"{work['supports']} supports), {work['gflop']:9,.0f} GFLOP in {work['seconds']:.1f} s"
        )
    return line


def _print_plan(plan: StudyPlan) -> None:
    if plan.speed is not None:
        print(plan_table(plan.forecasts, plan.speed, plan.workers), flush=True)
    for stem, reason in plan.skipped.items():
        print(f"  skipped: {stem}: {reason}", flush=True)


def _print_study(study: StudyRun) -> None:
    print(f"model: {study.model_resolved} (requested {study.model_requested})")
    saved = load_results(study.output_dir)
    for outcome in study.notebooks:
        work = saved.get(outcome.stem, {}).get("results", {}).get("work")
        print(_summary_line(outcome, work))
    for stem, reason in study.skipped.items():
        print(f"SKIPPED {stem:<39}{'':10}{reason}")
    print(f"report: {study.output_dir / 'report' / 'index.html'}")


def run_command(arguments: argparse.Namespace) -> int:
    """``clipseg-study run``: 0 all notebooks ok, 1 some failed, 2 invalid input or a run
    that could not go on (scheduler lost, disk full); an interrupted run (Ctrl-C) is a run
    that did not finish: 1."""
    options = dict(
        selected=arguments.notebooks,
        parameters=arguments.parameters,
        quick=arguments.quick,
        dtype=arguments.dtype,
        device=arguments.device,
        cell_timeout=arguments.cell_timeout,
        jobs=arguments.jobs,
        scheduler=arguments.scheduler,
        force=arguments.force,
    )
    try:
        grid = parse_grid(arguments.grid, arguments.grid_file)
        if grid and arguments.resume:
            raise StudyConfigError("--resume continues one study run, not a grid")
        dtypes = {arguments.dtype, *grid.get("dtype", [])}
        device = arguments.device or "cpu"
        slow_bf16 = "bfloat16" in dtypes and device_problem(device) is None
        warning = bf16_warning(device) if slow_bf16 else None
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
        if grid:
            owned, plans = plan_grid(
                NOTEBOOKS_DIR, arguments.output_dir, grid, model=arguments.model, **options
            )
            for combination, plan in plans:
                print(f"== {combination.name}")
                _print_plan(plan)
            if arguments.dry_run:
                return 0
            runs = execute_grid(owned, grid, plans)
        else:
            plan = plan_study(NOTEBOOKS_DIR, arguments.output_dir, model=arguments.model,
                              resume=arguments.resume, **options)
            _print_plan(plan)
            if arguments.dry_run:
                return 0
            runs = [(None, execute_plan(plan))]
    except StudyConfigError as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clipseg-study: interrupted; {arguments.output_dir / 'run.json'} marks the run "
              "interrupted: the same command with --resume continues it", file=sys.stderr)
        return 1
    for combination, study in runs:
        if combination is not None:
            print(f"== {combination.name}")
        _print_study(study)
    if grid:
        print(f"index: {Path(arguments.output_dir).resolve() / 'index.html'}")
    return 1 if any(study.failed for _, study in runs) else 0
