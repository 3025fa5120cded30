"""What ``clipseg-study run --resume`` saves: a study killed halfway and resumed, against one run
without interruption.

    python -m benchmarks.resume                                  # 02 on mini, 48 cases
    python -m benchmarks.resume --model mini --notebooks 02      # or the options of `run`

The same study runs three times from a temporary folder: uninterrupted; killed (SIGKILL to the
runner and its kernel at once, as a power loss) once half of the notebook's cases are
checkpointed; then resumed with ``--resume``. It prints and writes
``benchmarks/results/resume.json``: the wall seconds of the uninterrupted run and of the resumed
one, their ratio, the cases the resumed run reused, and whether its results equal the
uninterrupted run's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from clipseg_lib.model.hardware import machine_record
from clipseg_lib.study.output_dir import CHECKPOINTS_DIR

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_distorted_images"
DEFAULT_OPTIONS = [
    "--model", "mini", "--notebooks", "02", "-p", "n_cases=48",
    "-p", 'distortions=["gaussian_noise","rotation","occlusion","colour_jitter"]',
    "-p", "severities=[0,1,5]",
]
KILL_TIMEOUT_S = 1800


def _command(output_dir: Path, options: list[str]) -> list[str]:
    return [sys.executable, "-m", "clipseg_lib", "run", "--output-dir", str(output_dir), *options]


def timed_run(output_dir: Path, options: list[str]) -> float:
    """Run the study with `options` into `output_dir`; its wall seconds (CalledProcessError
    when it does not finish with every notebook ok)."""
    start = time.perf_counter()
    subprocess.run(_command(output_dir, options), cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def checkpointed_cases(output_dir: Path, notebook: str) -> int:
    """How many cases of `notebook` have a checkpoint in `output_dir`."""
    return len(list((output_dir / CHECKPOINTS_DIR / notebook).glob("*/*.json")))


def killed_run(output_dir: Path, options: list[str], notebook: str, cases: int) -> int:
    """Start the study and kill its runner and kernel (SIGKILL) once `cases` cases of
    `notebook` are checkpointed; return how many are then (RuntimeError if the study ends
    or KILL_TIMEOUT_S pass first)."""
    run = subprocess.Popen(_command(output_dir, options), cwd=ROOT, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while checkpointed_cases(output_dir, notebook) < cases:
        if run.poll() is not None or time.monotonic() > deadline:
            run.kill()
            raise RuntimeError(f"the study ended (status {run.returncode}) or took over "
                               f"{KILL_TIMEOUT_S} s before {cases} cases of {notebook} were done")
        time.sleep(0.05)
    runner = psutil.Process(run.pid)
    processes = [runner, *runner.children(recursive=True)]
    for process in processes:
        process.kill()
    psutil.wait_procs(processes, timeout=30)
    run.wait()
    return checkpointed_cases(output_dir, notebook)


def results_of(output_dir: Path, notebook: str) -> dict:
    """The notebook's results without ``work`` (what this execution computed, which a resumed
    run does less of by design)."""
    payload = json.loads((output_dir / f"{notebook}.json").read_text(encoding="utf-8"))
    return {key: value for key, value in payload["results"].items() if key != "work"}


def measure(options: list[str], notebook: str, n_cases: int, folder: Path) -> dict:
    """Uninterrupted, killed at half of `n_cases`, resumed: the figures of the module doc."""
    uninterrupted = timed_run(folder / "uninterrupted", options)
    reused = killed_run(folder / "resumed", options, notebook, n_cases // 2)
    resumed = timed_run(folder / "resumed", [*options, "--resume"])
    return {
        "options": options,
        "n_cases": n_cases,
        "uninterrupted_s": round(uninterrupted, 1),
        "resumed_s": round(resumed, 1),
        "ratio": round(resumed / uninterrupted, 3),
        "cases_reused": reused,
        "identical_results": results_of(folder / "uninterrupted", notebook)
        == results_of(folder / "resumed", notebook),
    }


def n_cases_of(options: list[str]) -> int:
    """The ``n_cases`` that `options` give the notebook (its default, 64, if none)."""
    given = [option.split("=", 1)[1] for option in options if option.startswith("n_cases=")]
    return int(given[-1]) if given else 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results")
    arguments, options = parser.parse_known_args()
    options = options or DEFAULT_OPTIONS
    with tempfile.TemporaryDirectory() as folder:
        figures = measure(options, NOTEBOOK, n_cases_of(options), Path(folder))
    figures["machine"] = machine_record()
    figures["load_average"] = os.getloadavg()
    arguments.output.mkdir(parents=True, exist_ok=True)
    (arguments.output / "resume.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
