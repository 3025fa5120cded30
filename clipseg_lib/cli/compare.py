"""``clipseg-study compare``: the conclusions of two or more runs side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.report.compare import PAGE_NAME, CompareError, compare_runs


def add_compare_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study compare`` on the command line's subcommands."""
    compare = commands.add_parser("compare", help="put the conclusions of two or more runs "
                                  "(or the runs of a grid) side by side")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="output dirs of runs, or grids")
    compare.add_argument("--output", required=True, type=Path, metavar="DIR",
                         help=f"where to write {PAGE_NAME}")
    compare.add_argument("--vary", action="append", default=[], metavar="PARAMETER",
                         help="a parameter the runs may differ in (repeatable), e.g. threshold")
    compare.add_argument("--force", action="store_true",
                         help=f"replace a {PAGE_NAME} this command did not write")
    compare.set_defaults(handler=compare_command)


def compare_command(arguments: argparse.Namespace) -> int:
    """``clipseg-study compare``: 0 page written, 2 invalid input."""
    try:
        target, disagreements = compare_runs(arguments.runs, arguments.output,
                                             force=arguments.force, vary=arguments.vary)
    except CompareError as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    print("the runs disagree on: " + "; ".join(disagreements) if disagreements
          else "the runs agree on every claim")
    print(f"comparison: {target}")
    return 0
