"""``clipseg-study evaluate``: score a model on PhraseCut, Pascal-5i or RefCOCO."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.datasets import DatasetError
from clipseg_lib.evaluation.evaluate import (
    REPORT_THRESHOLDS,
    SHARD_SIZE,
    EvaluationError,
    evaluate,
)
from clipseg_lib.evaluation.paper_benchmarks import results_table
from clipseg_lib.model.images import ImageError
from clipseg_lib.runner.executor import SchedulerError


def add_evaluate_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study evaluate``."""
    parser = commands.add_parser(
        "evaluate", help="score a model on PhraseCut, Pascal-5i or RefCOCO"
    )
    parser.add_argument("--dataset", required=True, choices=sorted(REPORT_THRESHOLDS))
    parser.add_argument("--root", required=True, type=Path, help="the dataset's directory")
    parser.add_argument("--split", help="default: phrasecut test, pascal5i val, refcoco val")
    parser.add_argument("--model", required=True, help='"mini", a Hugging Face id or a path')
    parser.add_argument("--fold", type=int, action="append", dest="folds",
                        help="Pascal-5i fold (repeatable; default: all four, averaged)")
    parser.add_argument("--shots", type=int, help="Pascal-5i: 1 one-shot (default), 0 text")
    parser.add_argument("--limit", type=int, help="at most this many images per fold")
    parser.add_argument("--output", required=True, type=Path, help="results JSON")
    parser.add_argument("--scheduler", help="serial (default), local:N or a Dask address")
    parser.add_argument("--shard-size", type=int, default=SHARD_SIZE, help="images per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", help="bfloat16 or int8 (default float32)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda (cuda:N) or mps")
    parser.add_argument("--force", action="store_true", help="replace another evaluation's output")
    parser.set_defaults(handler=_evaluate_command)


def _evaluate_command(arguments: argparse.Namespace) -> int:
    try:
        result = evaluate(
            arguments.dataset, arguments.root, model=arguments.model, output=arguments.output,
            split=arguments.split, folds=arguments.folds, shots=arguments.shots,
            limit=arguments.limit, seed=arguments.seed, dtype=arguments.dtype,
            device=arguments.device, scheduler=arguments.scheduler,
            shard_size=arguments.shard_size, force=arguments.force,
        )
    except (EvaluationError, DatasetError, ImageError, SchedulerError, OSError) as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    print(results_table(result))
    print(f"wrote {arguments.output}")
    return 0
