"""``clipseg-study``: the project's command line, one subcommand per task.

Each subcommand is a thin adapter, in its own module of this package, over the library
function it drives; it registers itself with an ``add_*_command(commands)`` function that
sets ``handler`` (a function of the parsed arguments returning the exit status: 0 success,
1 some work failed, 2 invalid input).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from clipseg_lib.cli.compare import add_compare_command
from clipseg_lib.cli.evaluate import add_evaluate_command
from clipseg_lib.cli.export_world import add_export_world_command
from clipseg_lib.cli.finetune import add_finetune_command
from clipseg_lib.cli.random_model import add_random_model_command
from clipseg_lib.cli.run import add_run_command
from clipseg_lib.cli.train_mini import add_train_mini_command
from clipseg_lib.cli.verify import add_verify_command


def build_parser() -> argparse.ArgumentParser:
    """The ``clipseg-study`` parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="clipseg-study", description="A reproducible study of CLIPSeg."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_run_command(commands)
    add_evaluate_command(commands)
    add_export_world_command(commands)
    add_finetune_command(commands)
    add_compare_command(commands)
    add_verify_command(commands)
    add_train_mini_command(commands)
    add_random_model_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``clipseg-study`` and ``python -m clipseg_lib``."""
    arguments = build_parser().parse_args(argv)
    return arguments.handler(arguments)
