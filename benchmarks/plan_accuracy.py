"""How close the runner's plan comes to the time a study takes: estimate / actual.

    python -m benchmarks.plan_accuracy                      # mini, --quick, notebooks 00-12
    python -m benchmarks.plan_accuracy --model DIR --notebooks 02 03

Runs ``clipseg-study run`` in a fresh process (the plan's warm-up included, as a user waits for
it) into a temporary folder, then reads run.json: the plan's estimate per notebook and in total
against each notebook's seconds and the notebooks' wall time. The issue's goal: the total
within 25% (ratio 0.75 .. 1.25). Writes ``benchmarks/results/plan_accuracy.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from clipseg_lib.model.hardware import machine_record

HERE = Path(__file__).resolve().parent
DEFAULT_NOTEBOOKS = ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "12"]
"""All but the fine-tuning (13), whose training steps ``--quick`` does not shorten."""
GOAL = (0.75, 1.25)


def measure(model: str, notebooks: list[str], quick: bool) -> dict:
    """Run the study once; the plan's estimates beside the actual seconds."""
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as output:
        command = [sys.executable, "-m", "clipseg_lib", "run", "--model", model,
                   "--output-dir", output, "--notebooks", *notebooks, *(["--quick"] * quick)]
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        manifest = json.loads((Path(output) / "run.json").read_text())
    plan = manifest["plan"]
    rows = [
        {"notebook": n["stem"], "status": n["status"],
         "estimated_s": plan["notebooks"][n["stem"]]["estimated_s"], "actual_s": n["seconds"]}
        for n in manifest["notebooks"]
    ]
    return {
        "model": model, "quick": quick, "returncode": finished.returncode,
        "speed": plan["speed"], "notebooks": rows,
        "estimated_s": plan["estimated_s"], "actual_s": manifest["actual_s"],
        "ratio": plan["estimated_s"] / manifest["actual_s"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--notebooks", nargs="+", default=DEFAULT_NOTEBOOKS)
    parser.add_argument("--full", action="store_true", help="full sample instead of --quick")
    arguments = parser.parse_args(argv)
    result = {**measure(arguments.model, arguments.notebooks, not arguments.full),
              "machine": machine_record()}
    for row in result["notebooks"]:
        print(f"{row['notebook']:<26}{row['estimated_s']:9.1f} s planned {row['actual_s']:9.1f} s "
              f"actual  ratio {row['estimated_s'] / row['actual_s']:.2f}  {row['status']}")
    low, high = GOAL
    met = "met" if low <= result["ratio"] <= high else "not met"
    print(f"{'total':<26}{result['estimated_s']:9.1f} s planned {result['actual_s']:9.1f} s "
          f"actual  ratio {result['ratio']:.2f} (goal {low}..{high}: {met})")
    (HERE / "results" / "plan_accuracy.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
