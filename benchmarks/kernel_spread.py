"""How far the study's results move between kernel paths: the measurement behind the tolerances.

    python -m benchmarks.kernel_spread            # runs the study three times (~12 min, 2 cores)
    python -m benchmarks.kernel_spread DIR ...    # or measures runs already made

Each run executes every notebook with `mini` under one set of environment variables (the CPU's
best kernels; AVX2 kernels for torch, MKL and oneDNN; torch's default kernels on one thread)
and is compared with data/reference/ quantity by quantity. For each tolerance rule of
`clipseg_lib.report.tolerances` it prints the largest difference seen and that rule's tolerance,
and writes the figures to benchmarks/results/kernel_spread.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from clipseg_lib.model.hardware import machine_record
from clipseg_lib.report import verify
from clipseg_lib.report.tolerances import EXACT, TOLERANCES

ROOT = Path(__file__).resolve().parents[1]
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "best kernels": {},
    "AVX2 kernels": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                     "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default kernels, 1 thread": {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1",
                                  "MKL_NUM_THREADS": "1"},
}


def run_study(output_dir: Path, environment: dict[str, str]) -> None:
    """The whole study on mini into `output_dir`, under `environment` added to this one's."""
    subprocess.run(
        [sys.executable, "-m", "clipseg_lib", "run", "--model", "mini", "--jobs", "1",
         "--output-dir", str(output_dir)],
        cwd=ROOT, env={**os.environ, **environment}, check=True,
    )


def spread(run_dir: Path) -> dict[str, float]:
    """The largest |ours - reference| per tolerance rule (pattern) over the run's floats, and
    the number of non-float quantities that differ (``"exact"``)."""
    largest = {tolerance.pattern: 0.0 for tolerance in TOLERANCES} | {"exact": 0.0}
    for check in verify.verify(run_dir).checks:
        if check.tolerance is EXACT or not all(
            isinstance(v, int | float) for v in (check.ours, check.theirs)
        ):
            largest["exact"] += 0 if check.ok else 1
            continue
        difference = abs(check.ours - check.theirs)
        largest[check.tolerance.pattern] = max(largest[check.tolerance.pattern], difference)
    return largest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run dirs to measure (else run)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs = {str(path): path for path in arguments.runs}
        if not runs:
            for label, environment in KERNEL_PATHS.items():
                runs[label] = Path(scratch) / label.replace(" ", "_").replace(",", "")
                run_study(runs[label], environment)
        figures = {label: spread(path) for label, path in runs.items()}
    for tolerance in TOLERANCES:
        seen = max(figures[label][tolerance.pattern] for label in figures)
        print(f"{tolerance.pattern:<24} largest difference {seen:.2g}, "
              f"tolerance {tolerance.describe()}")
    print(f"non-float quantities that differ: {max(f['exact'] for f in figures.values()):g}")
    output = ROOT / "benchmarks" / "results" / "kernel_spread.json"
    output.write_text(json.dumps({"machine": machine_record(), "runs": figures}, indent=1) + "\n")


if __name__ == "__main__":
    main()
