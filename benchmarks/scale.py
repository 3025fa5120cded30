"""Parallel runs: the study with `--jobs 2` vs serially, `evaluate` on `local:2` vs serially.

Each figure is the wall time of a fresh `clipseg-study` process (imports, model loading and
worker start-up included, as a user waits for them). A command this checkout does not have
(`run --jobs`, `evaluate`) gives a row saying so instead of a figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVALUATE_IMAGES = {True: 4, False: 48}


def _study_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "clipseg_lib", *arguments]


def _has(command: str, option: str | None = None) -> bool:
    """Whether `clipseg-study <command>` exists here (and takes `option`)."""
    shown = subprocess.run(
        _study_command(command, "--help"), cwd=ROOT, capture_output=True, text=True, check=False
    )
    return shown.returncode == 0 and (option is None or option in shown.stdout)


def timed(command: list[str], environment: dict[str, str] | None = None) -> dict:
    """{"seconds": wall time, "returncode": exit status (not 0: the time does not count)}."""
    variables = {**os.environ, **(environment or {})}
    start = time.perf_counter()
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, check=False, env=variables)
    return {"seconds": time.perf_counter() - start, "returncode": finished.returncode}


def study_jobs(model: str = "mini", jobs: int = 2, notebooks: list[str] | None = None) -> dict:
    """{"serial": timed run, "jobs": timed run with `--jobs`, "jobs_count"}; {"missing": why}
    where the runner has no --jobs."""
    if not _has("run", "--jobs"):
        return {"missing": "clipseg-study run has no --jobs here"}
    selection = ["--notebooks", *notebooks] if notebooks else []
    runs = {}
    for label, extra in (("serial", []), ("jobs", ["--jobs", str(jobs)])):
        with tempfile.TemporaryDirectory(prefix=f"bench-study-{label}-") as output:
            command = ["run", "--model", model, "--output-dir", output, *selection, *extra]
            runs[label] = timed(_study_command(*command))
    return {**runs, "jobs_count": jobs}


def evaluate_throughput(model: str, environment: dict[str, str], smoke: bool) -> dict:
    """Images per second of `evaluate` on an exported PhraseCut-format world, serially and on
    `local:2`: {"images", "serial": timed run, "local2": timed run}; {"missing": why} where
    this checkout has no evaluate command."""
    if not _has("evaluate"):
        return {"missing": "clipseg-study evaluate is not in this checkout"}
    images = EVALUATE_IMAGES[smoke]
    with tempfile.TemporaryDirectory(prefix="bench-evaluate-") as work:
        dataset = Path(work) / "phrasecut"
        export = ["export-world", str(dataset), "--format", "phrasecut", "--images", str(images)]
        subprocess.run(_study_command(*export), cwd=ROOT, check=True, capture_output=True)
        runs = {"images": images}
        for label, scheduler in (("serial", "serial"), ("local2", "local:2")):
            command = [
                "evaluate", "--dataset", "phrasecut", "--root", str(dataset), "--model", model,
                "--output", str(Path(work) / f"{label}.json"), "--scheduler", scheduler,
                "--shard-size", "4",
            ]
            runs[label] = timed(_study_command(*command), environment)
    return runs


def full_size_hub(directory: str | os.PathLike) -> dict[str, str]:
    """Write the random full-size CIDAS model into an HF cache under `directory`; returns the
    environment that makes `--model CIDAS/clipseg-rd64-refined` load it offline."""
    from clipseg_lib.model.random_models import write_hub_cache

    write_hub_cache(directory)
    return {"HF_HOME": str(directory), "HF_HUB_OFFLINE": "1"}
