"""``clipseg-study verify``: does a run reproduce the reference within tolerance?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.report.pages import REPORT_DIR_NAME, build_report
from clipseg_lib.report.verify import (
    REFERENCE_DIR,
    VerifyError,
    record_verification,
    report,
    verify,
)


def add_verify_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study verify`` on the command line's subcommands."""
    command = commands.add_parser(
        "verify", help="check that a run's results reproduce the reference within tolerance"
    )
    command.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run's output dir")
    command.add_argument("--against", type=Path, default=REFERENCE_DIR, metavar="DIR",
                         help="another run's output dir (the committed reference results)")
    command.add_argument("--all", action="store_true", help="list every quantity, not only "
                         "those that differ")
    command.set_defaults(handler=verify_command)


def verify_command(arguments: argparse.Namespace) -> int:
    """``clipseg-study verify``: 0 everything agrees, 1 some quantity differs, 2 bad input."""
    run_dir, against = Path(arguments.run_dir), Path(arguments.against)
    verification = None
    try:
        verification = verify(run_dir, against)
    except VerifyError as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        status, outcome = 2, f"not comparable: {error}"
    else:
        print(report(verification, show_all=arguments.all))
        status = 1 if verification.failures else 0
        outcome = verification.summary().removeprefix("verify: ")
    if record_verification(run_dir, against, verification, status, outcome) is not None:
        if (run_dir / REPORT_DIR_NAME / "index.html").is_file():
            print(f"report: {build_report(run_dir)}")
    return status
