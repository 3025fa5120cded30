"""The first and last call of every study notebook: seed, load and record the parameters; save
numbers, parameters and figures.

Right after its parameters cell a notebook calls ``session = study.start(model, ...,
parameters=<its namespace>)`` (or ``study.record(<its namespace>, seed=seed)`` when it loads no
model): :func:`notebook_parameters` picks the parameter values out of the namespace it is
given (nothing is read from the caller's frame), and the returned `NotebookSession` holds
them with the model, resolves what a None parameter means (`NotebookSession.scene_size`,
`NotebookSession.mask_threshold`) and writes everything beside the results
(`NotebookSession.finish`), so no notebook repeats its parameter list and nothing is kept in
module state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.figure
import numpy as np
import torch

from clipseg_lib.analysis.plotting import save_figure
from clipseg_lib.experiments.question_sets import QUICK_CASES
from clipseg_lib.model.loading import load_segmenter
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.study.output_dir import locking_run_id, recorded_owner
from clipseg_lib.study.results import kernel_run_id, save_results

#: Names IPython puts into a notebook's namespace that are not parameters.
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
_SCALARS = (bool, int, float, str, type(None))


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, and ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _is_parameter_value(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return all(isinstance(item, _SCALARS) for item in value)
    return isinstance(value, _SCALARS)


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values in a notebook's namespace (its global names after the parameters
    cell): public names bound to numbers, strings, booleans, None or lists of them, sorted.

    Modules, functions, IPython's own names (``In``, ``Out``...) and ``_private`` names are left
    out. ``quick`` is added unless the notebook has it: True when ``n_cases`` is at most
    `QUICK_CASES` (the runner's ``--quick``), False otherwise.
    """
    parameters = {
        name: list(value) if isinstance(value, tuple) else value
        for name, value in sorted(namespace.items())
        if not name.startswith("_") and name not in IPYTHON_NAMES and _is_parameter_value(value)
    }
    if "quick" not in parameters:
        n_cases = parameters.get("n_cases")
        parameters["quick"] = isinstance(n_cases, int) and n_cases <= QUICK_CASES
    return parameters


AUTHORS_THRESHOLDS = {"mini": 0.5}
"""The mask threshold each model's authors report at; any other model is CLIPSeg's
(`PAPER_THRESHOLD`)."""
PAPER_THRESHOLD = 0.3
"""CLIPSeg's authors report PhraseCut and Pascal-5i at t = 0.3."""


@dataclass
class NotebookSession:
    """One execution of a study notebook: its `parameters` (what None resolved to included),
    `seed` and model (`segmenter`, None for a notebook that loads none)."""

    parameters: dict[str, Any]
    seed: int
    segmenter: Segmenter | None = None

    def _resolve(self, name: str, value: Any, line: str) -> Any:
        """Record the value parameter `name` resolved to (saved by `finish`), print `line`."""
        self.parameters[name] = value
        print(line)
        return value

    def _model(self) -> Segmenter:
        if self.segmenter is None:
            raise ValueError("this notebook loaded no model (study.record); use study.start")
        return self.segmenter

    def scene_size(self, requested: int | None) -> int:
        """The synthetic scenes' side in pixels: `requested`, or the model's input size when
        None (96 for mini, 352 for full-size CLIPSeg), so no model sees scenes drawn for
        another's resolution. Recorded with the parameters and printed."""
        if requested is not None and (isinstance(requested, bool)
                                      or not isinstance(requested, int)):
            raise ValueError(f"scene_size {requested!r} is not a whole number of pixels")
        size = self._model().image_size if requested is None else requested
        if size < 16:
            raise ValueError(f"scene_size {requested!r} is too small: scenes need at least 16 px")
        source = "the model's input size" if requested is None else "as set"
        return self._resolve("scene_size", size, f"Scenes: {size} x {size} px ({source})")

    def mask_threshold(self, requested: float | None) -> float:
        """The probability above which a pixel is in a mask: `requested`, or when None the
        threshold the model's authors use (`AUTHORS_THRESHOLDS`: 0.5 for mini; 0.3, the
        paper's, for CLIPSeg weights). Recorded with the parameters and printed."""
        if requested is None:
            name = self._model().name
            threshold = AUTHORS_THRESHOLDS.get(name, PAPER_THRESHOLD)
            source = f"the threshold {name}'s authors use"
        elif isinstance(requested, bool) or not isinstance(requested, int | float):
            raise ValueError(f"threshold {requested!r} is not a number")
        else:
            threshold, source = float(requested), "as set"
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold {requested!r} must lie strictly between 0 and 1")
        return self._resolve("threshold", threshold, f"Mask threshold: {threshold} ({source})")

    def finish(
        self,
        output_dir: str | Path,
        name: str,
        results: dict,
        *,
        figures: dict[str, matplotlib.figure.Figure] | None = None,
    ) -> None:
        """Write `<output_dir>/<name>.json` (the results with the parameters, the provenance,
        the id of the study run executing this kernel (`kernel_run_id`) and the names of its
        figures) and `<name>_<figure>.png` files. Prints the model's backbone work (encodings,
        GFLOP) and stores it under ``"work"``."""
        run_id = kernel_run_id()
        _refuse_another_runs_results(Path(output_dir), name, run_id)
        if self.segmenter is not None:
            # What the backbone computed: the cost a full-size model pays for these numbers.
            print(f"Backbone work: {self.segmenter.work}")
            results = {**results, "work": self.segmenter.work.as_dict()}
        written = []
        for label, figure in (figures or {}).items():
            save_figure(figure, Path(output_dir) / f"{name}_{label}.png")
            written.append(f"{name}_{label}.png")
        save_results(output_dir, name, results, segmenter=self.segmenter, seed=self.seed,
                     parameters=self.parameters, run_id=run_id, figures=written)


def record(namespace: Mapping[str, Any], *, seed: int = 0) -> NotebookSession:
    """Seed everything and record the parameters in `namespace` (the notebook's global names
    after its parameters cell), for a notebook that loads no model."""
    seed_everything(seed)
    return NotebookSession(notebook_parameters(namespace), seed)


def start(
    model: str,
    *,
    parameters: Mapping[str, Any],
    device: str = "cpu",
    seed: int = 0,
    dtype: str = "float32",
    clip_weights: str | None = None,
    processor: str | None = None,
) -> NotebookSession:
    """Seed everything, record the notebook's `parameters` (its global names after the
    parameters cell), load the model (in `dtype`; `clip_weights` and `processor` for an
    original-repository ``.pth`` decoder, see `load_segmenter`) and print which weights
    answer."""
    session = record(parameters, seed=seed)
    session.segmenter = load_segmenter(
        model, device=device, dtype=dtype, clip_weights=clip_weights, processor=processor
    )
    segmenter = session.segmenter
    digest = (segmenter.weights_sha256 or "unknown")[:12]
    print(
        f"Model: {segmenter.name} (weights sha256 {digest}..., {segmenter.provenance['dtype']}, "
        f"{segmenter.num_layers} backbone layers, extract layers {segmenter.extract_layers})"
    )
    return session


class ResultsOwnedError(RuntimeError):
    """A notebook executed outside a study run would replace that run's results."""


def _refuse_another_runs_results(output_dir: Path, name: str, run_id: str | None) -> None:
    """ResultsOwnedError when `<output_dir>/<name>.json` belongs to a study run (its run.json
    records it) and this kernel was not started by the run now holding the directory's lock
    (`run_id`, the kernel's, differs from the lock's, or no run holds it): this notebook was
    executed on its own (in Jupyter, by nbval), and a study's results are replaced only by a
    study run."""
    if not (output_dir / f"{name}.json").is_file():
        return
    if recorded_owner(output_dir, f"{name}.json") is None:
        return
    if run_id is not None and run_id == locking_run_id(output_dir):
        return
    raise ResultsOwnedError(
        f"{output_dir / (name + '.json')} holds the results of the study run recorded "
        f"in {output_dir / 'run.json'}; this notebook, executed outside the run writing there, "
        "does not replace them: set output_dir to another folder, or rerun it with "
        "`clipseg-study run --notebooks NN` into that folder"
    )
