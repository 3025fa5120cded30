"""``clipseg-study train-mini``: train `mini` on the synthetic world (see
:mod:`clipseg_lib.mini.train`)."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from clipseg_lib.mini import train as training
from clipseg_lib.mini.recipe import SMOKE_ARCHITECTURE, SMOKE_SCHEDULE, Architecture, Schedule
from clipseg_lib.mini.train import STATE_FILE
from clipseg_lib.mini.training_state import TrainingStateError

#: Schedule fields the command line may override.
OVERRIDES = (
    "steps_objects", "steps_pretrain", "steps_decoder", "steps_finetune", "batch_size", "seed",
    "threads",
)


def add_train_mini_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study train-mini``."""
    parser = commands.add_parser(
        "train-mini", help="train the small CLIPSeg `mini` on the synthetic world",
        description=training.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Schedule()
    for name in OVERRIDES:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            help=f"default {getattr(defaults, name)}")
    parser.add_argument("--output", type=Path, required=True,
                        help="directory to write the model into (new or empty, see --force)")
    parser.add_argument("--force", action="store_true",
                        help="write into OUTPUT even if it holds other files (overwriting a model)")
    parser.add_argument("--eval-queries", type=int, default=48,
                        help="held-out queries per kind scored after training (0: none)")
    parser.add_argument("--resume", action="store_true",
                        help=f"continue a killed run from OUTPUT/{STATE_FILE}")
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps (CI)")
    parser.set_defaults(handler=functools.partial(train_mini_command, parser=parser))


def check_arguments(arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Exit with status 2 (``parser.error``) before anything is written when a step count,
    the batch size or the thread count is out of range, or the output directory is not new,
    empty, or (with --resume) a killed run's, unless --force."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for name in (*OVERRIDES, "eval_queries"):
        value = getattr(arguments, name)
        minimum = 1 if name in ("batch_size", "threads") else 0
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
    if arguments.threads is not None and arguments.threads > (cpus or 1):
        parser.error(f"--threads must be <= {cpus} (the CPUs available), got {arguments.threads}")
    problem = training.output_problem(arguments.output, resume=arguments.resume,
                                      force=arguments.force)
    if problem:
        parser.error(problem)


def train_mini_command(arguments: argparse.Namespace, *, parser: argparse.ArgumentParser) -> int:
    """Train as the command line says and print the training summary: 0 trained, 2 bad
    arguments or a training state that cannot be resumed from (one line on stderr)."""
    check_arguments(arguments, parser)
    architecture = SMOKE_ARCHITECTURE if arguments.smoke else Architecture()
    schedule = SMOKE_SCHEDULE if arguments.smoke else Schedule()
    overrides = {n: getattr(arguments, n) for n in OVERRIDES if getattr(arguments, n) is not None}
    schedule = replace(schedule, **overrides)
    torch.set_num_threads(schedule.threads)
    try:
        summary = training.train(architecture, schedule, arguments.output,
                                 n_eval=arguments.eval_queries, resume=arguments.resume)
    except TrainingStateError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    shown = ("train_wall_seconds", "held_out_metrics", "weights_sha256")
    print(json.dumps({key: summary[key] for key in shown}, indent=1))
    return 0
