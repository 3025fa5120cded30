"""Output directories as `clipseg-study run` leaves them, written by hand for the report tests.

Three notebooks (04 extract layers, 05 specific word, 10 conclusion) with executed copies,
results JSON in the shared schemas (Estimate dicts, claims), figures and ``run.json``.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import numpy as np
from nbformat import NotebookNode
from PIL import Image

STEMS = ("04_extract_layers", "05_specific_word", "10_conclusion")
CLAIMS = (
    ("Fails to segment a specific word in the image", "05_specific_word"),
    ("Robust to other extract layers", "04_extract_layers"),
)


def estimate(mean: float, n: int) -> dict:
    return {"mean": mean, "n": n, "ci_low": mean - 0.05, "ci_high": mean + 0.05}


def declared_parameters(stem: str) -> dict:
    """What the notebook's parameters cell declares (its defaults)."""
    declared = {"model": "mini", "output_dir": "../results", "seed": 0}
    return declared if stem == "10_conclusion" else {**declared, "n_cases": 16}


#: A 1×1 PNG, base64, as a notebook's figure output holds it.
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
           "RU5ErkJggg==")


def write_executed(path: Path, title: str, started: float, injected: dict | None = None,
                   run_id: str | None = None) -> None:
    """An executed notebook as papermill leaves it: a heading, the parameters cell, the
    injected parameters (also in the metadata), a Markdown line, one code cell with a long
    output line and a figure; the runner's `run_id` in its metadata where given."""
    injected = injected or {}
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("\n".join(
        f"{name} = {value!r}" for name, value in declared_parameters(path.stem).items()))
    parameters.metadata["tags"] = ["parameters"]
    injected_cell = nbformat.v4.new_code_cell("\n".join(
        f"{name} = {value!r}" for name, value in injected.items()))
    injected_cell.metadata["tags"] = ["injected-parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nWhat this notebook asks."),
        parameters, injected_cell,
        nbformat.v4.new_markdown_cell("The sweep, per distortion."),
        nbformat.v4.new_code_cell("print(finding)", outputs=[nbformat.v4.new_output(
            "stream", name="stdout", text="A finding sentence " * 20 + "\n"),
            nbformat.v4.new_output("display_data", data={"image/png": PNG_1PX,
                                                         "text/plain": "<Figure>"})]),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(stamped(notebook, started, injected, run_id), path)


def stamped(notebook: NotebookNode, started: float, injected: dict,
            run_id: str | None) -> NotebookNode:
    """`notebook` with the metadata a run's execution leaves: papermill's times and injected
    parameters, and the runner's `run_id` where given."""
    stamp = datetime.fromtimestamp(started, UTC).isoformat()
    notebook.metadata["papermill"] = {**notebook.metadata.get("papermill", {}),
                                      "start_time": stamp, "end_time": stamp,
                                      "parameters": injected}
    if run_id is not None:
        notebook.metadata["clipseg"] = {"run_id": run_id}
    return notebook


def inline_pngs(notebook: Path) -> int:
    """How many PNG figures the executed `notebook` shows."""
    return sum("image/png" in output.get("data", {})
               for cell in nbformat.read(notebook, as_version=4).cells
               for output in cell.get("outputs", []))


def write_figure(path: Path, seed: int) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(60, 90, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def results_of(stem: str, n_cases: int, verdicts: dict[str, str]) -> dict:
    if stem == "04_extract_layers":
        return {"n_cases": n_cases, "rows": [
            {"extract_layers": f"({a},{b},{c})", "Prompt 1": estimate(0.8, n_cases),
             "Prompt 2": estimate(0.7, n_cases)}
            for a, b, c in ((3, 5, 8), (2, 4, 7), (3, 6, 9))
        ]}
    if stem == "05_specific_word":
        return {"n_cases": n_cases, "rows": [
            {"prompt": "composite", "miou": estimate(0.88, n_cases)},
            {"prompt": "word", "miou": estimate(0.33, n_cases)},
        ]}
    return {
        "claims": [
            {"claim": claim, "notebook": notebook, "evidence": f"mIoU 0.330 [0.280, 0.380] "
             f"(n={n_cases})", "control": "composite prompts 0.880", "verdict": verdicts[claim],
             "model": "mini", "n": n_cases, "reason": REASONS[notebook],
             "tests": claim_tests(notebook, n_cases)}
            for claim, notebook in CLAIMS
        ],
        "summary": "Generated from the numbers.",
    }


REASONS = {"05_specific_word": "mIoU below the control; picked not shown above chance",
           "04_extract_layers": "every change above -0.05"}


def claim_tests(notebook: str, n: int) -> list[dict]:
    """The tests `build_claims` writes per claim: a gap against 0 and a pick rate against
    chance (05); two changes against the margin -0.05 (04)."""
    def test(name, effect, low, high, bound, margin, p_holm):
        return {"name": name, "effect": effect, "ci_low": low, "ci_high": high, "n": n,
                "bound": bound, "margin": margin, "rule": f"{name}: a rule", "p_value": p_holm,
                "p_holm": p_holm, "holds": p_holm < 0.05,
                "direction": "above" if effect > bound else "below"}
    if notebook == "05_specific_word":
        return [test("mIoU against the control", -0.55, -0.61, -0.49, 0.0, None, 0.001),
                test("picked against chance", 0.375, 0.227, 0.542, 0.354, None, 0.9)]
    return [test("(2,4,7)", -0.01, -0.02, 0.0, -0.05, 0.05, 0.002),
            test("(3,6,9)", -0.03, -0.045, -0.015, -0.05, 0.05, 0.04)]


NEW_RUN = "new"
_runs_made = [0]


def next_run_id() -> str:
    """A run id as `new_run_id` writes them, each later than the one before."""
    _runs_made[0] += 1
    return f"20260105T{120000 + _runs_made[0]:06d}Z-{_runs_made[0]:06x}"


def fabricate_run(
    directory: Path,
    *,
    model: str = "mini",
    quick: bool = True,
    seed: int = 0,
    failed: tuple[str, ...] = (),
    verdicts: dict[str, str] | None = None,
    stems: tuple[str, ...] = STEMS,
    run_id: str | None = NEW_RUN,
) -> Path:
    """Write a finished run of `stems` into `directory` as the runner does (`--quick` injects
    n_cases=4, `-p seed=N` the seed); notebooks in `failed` failed. run.json, the executed
    notebooks and the results carry `run_id` (by default a new one, later than any before);
    with None, they are from before run ids."""
    run_id = next_run_id() if run_id == NEW_RUN else run_id
    stamp = {"run_id": run_id} if run_id is not None else {}
    verdicts = verdicts or {claim: "reproduced" for claim, _ in CLAIMS}
    n_cases = 4 if quick else 16
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "notebooks").mkdir(exist_ok=True)
    started = time.time() - 5
    outcomes = []
    for index, stem in enumerate(stems):
        injected = {"model": model, "output_dir": str(directory), "seed": seed}
        if quick and "n_cases" in declared_parameters(stem):
            injected["n_cases"] = n_cases
        parameters = {**declared_parameters(stem), **injected}
        title = stem.replace("_", " ", 1)
        write_executed(directory / "notebooks" / f"{stem}.ipynb", title, started, injected,
                       run_id)
        status = "failed" if stem in failed else "ok"
        outcomes.append({"stem": stem, "status": status, "seconds": 1.5, "parameters": injected,
                         "error_type": "ValueError" if status == "failed" else None,
                         "error_message": "broke" if status == "failed" else None})
        if status == "failed":
            continue
        name = "conclusion" if stem == "10_conclusion" else stem
        payload = {"name": name, "parameters": parameters,
                   "results": results_of(stem, n_cases, verdicts),
                   "provenance": {"model": model, "seed": seed, "weights_sha256": "ab" * 32},
                   **stamp}
        (directory / f"{name}.json").write_text(json.dumps(payload))
        write_figure(directory / f"{name}_figure.png", index)
    manifest = {"model_requested": model, "model_resolved": model, "quick": quick,
                "parameters": {}, "notebooks": outcomes, "provenance": {"seed": seed}, **stamp}
    (directory / "run.json").write_text(json.dumps(manifest))
    return directory


def age(path: Path, seconds: float) -> None:
    """Set `path`'s modification time `seconds` into the past (an older run's file)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "data" / "reference"
NOTEBOOKS = REPO / "notebooks"


def reference_run(directory: Path, run_id: str | None = NEW_RUN, *,
                  committed_notebooks: bool = False) -> Path:
    """A full run of the committed notebooks' results (``data/reference``) as the runner leaves
    it, its conclusion drawn anew by `build_claims` (with each claim's tests), one figure each;
    every file carries `run_id` (a new one by default). Its executed notebooks are fabricated
    (a 1×1 figure each), or with `committed_notebooks` the committed ones (``notebooks/``, their
    real outputs and figures), stamped as this run executed them."""
    from clipseg_lib.experiments.conclusion import build_claims, verdict_counts
    from clipseg_lib.study.results import load_results

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "notebooks").mkdir(exist_ok=True)
    started = time.time() - 5
    payloads = {path.stem: json.loads(path.read_text())
                for path in sorted(REFERENCE.glob("*.json"))}
    run_id = next_run_id() if run_id == NEW_RUN else run_id
    for name, payload in payloads.items():
        # as a notebook's finish lists them: a PNG and the SVG beside it (where one is saved)
        payload.update(run_id=run_id, figures=[f"{name}_figure.png", f"{name}_figure.svg"])
    claims = build_claims(load_results(REFERENCE))
    payloads["conclusion"]["results"] = {
        "claims": claims, "summary": {"configuration_problems": {},
                                      "verdicts": verdict_counts(claims)}}
    outcomes = []
    for index, (name, payload) in enumerate(payloads.items()):
        stem = "10_conclusion" if name == "conclusion" else name
        injected = {**payload["parameters"], "output_dir": str(directory)}
        executed = directory / "notebooks" / f"{stem}.ipynb"
        if committed_notebooks:
            notebook = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)
            nbformat.write(stamped(notebook, started, injected, run_id), executed)
        else:
            write_executed(executed, stem.replace("_", " ", 1), started, injected, run_id)
        outcomes.append({"stem": stem, "status": "ok", "seconds": 1.5, "parameters": injected})
        (directory / f"{name}.json").write_text(json.dumps(payload))
        write_figure(directory / f"{name}_figure.png", index)
    manifest = {"model_requested": "mini", "model_resolved": "mini", "quick": False,
                "dtype": "float32", "parameters": {}, "notebooks": outcomes,
                "provenance": payloads["conclusion"]["provenance"], "run_id": run_id}
    (directory / "run.json").write_text(json.dumps(manifest))
    return directory
