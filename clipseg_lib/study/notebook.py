"""The first and last call of every study notebook: seed, load and record the parameters; save
numbers, parameters and figures.

A notebook passes its namespace once, ``study.start(model, ..., parameters=globals())``, right
after its parameters cell; :func:`notebook_parameters` picks the parameter values out of it, and
:func:`finish` writes them beside the results, so no notebook repeats its parameter list.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.figure
import numpy as np
import torch

from clipseg_lib.analysis.plotting import save_figure
from clipseg_lib.experiments.question_sets import QUICK_CASES
from clipseg_lib.model.loading import load_segmenter
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.study.encodings import attach_encoding_cache
from clipseg_lib.study.output_dir import locking_run_id, recorded_owner
from clipseg_lib.study.results import kernel_run_id, save_results

#: Names IPython puts into a notebook's namespace that are not parameters.
IPYTHON_NAMES = frozenset({"In", "Out", "exit", "quit", "get_ipython", "open"})
_SCALARS = (bool, int, float, str, type(None))
_recorded: dict[str, Any] | None = None


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
    """The parameter values in a notebook's namespace (its ``globals()`` after the parameters
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


def record_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Remember the notebook's parameters (see `notebook_parameters`) for `finish`; return them.

    For a notebook that loads no model; `start` calls it for the others.
    """
    global _recorded
    _recorded = notebook_parameters(namespace)
    return dict(_recorded)


def start(
    model: str,
    *,
    device: str = "cpu",
    seed: int = 0,
    dtype: str = "float32",
    clip_weights: str | None = None,
    processor: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> Segmenter:
    """Seed everything, record the notebook's `parameters` (pass ``globals()``), load the model
    (in `dtype`; `clip_weights` and `processor` for an original-repository ``.pth`` decoder, see
    `load_segmenter`) and print which weights answer."""
    global _recorded
    _recorded = None
    if parameters is not None:
        record_parameters(parameters)
    seed_everything(seed)
    segmenter = load_segmenter(
        model, device=device, dtype=dtype, clip_weights=clip_weights, processor=processor
    )
    attach_encoding_cache(segmenter)
    digest = (segmenter.weights_sha256 or "unknown")[:12]
    print(
        f"Model: {segmenter.name} (weights sha256 {digest}..., {segmenter.provenance['dtype']}, "
        f"{segmenter.num_layers} backbone layers, extract layers {segmenter.extract_layers})"
    )
    return segmenter


def _resolved(name: str, value: Any, line: str) -> Any:
    """Record the value a None parameter resolved to (for `finish`), print `line`, return it."""
    if _recorded is not None:
        _recorded[name] = value
    print(line)
    return value


def scene_size(segmenter: Segmenter, requested: int | None) -> int:
    """The synthetic scenes' side in pixels: `requested`, or the model's input size when None
    (96 for mini, 352 for full-size CLIPSeg), so no model sees scenes drawn for another's
    resolution. Recorded with the notebook's parameters and printed."""
    if requested is not None and (isinstance(requested, bool) or not isinstance(requested, int)):
        raise ValueError(f"scene_size {requested!r} is not a whole number of pixels")
    size = segmenter.image_size if requested is None else requested
    if size < 16:
        raise ValueError(f"scene_size {requested!r} is too small: scenes need at least 16 px")
    source = "the model's input size" if requested is None else "as set"
    return _resolved("scene_size", size, f"Scenes: {size} x {size} px ({source})")


AUTHORS_THRESHOLDS = {"mini": 0.5}
"""The mask threshold each model's authors report at; any other model is CLIPSeg's
(`PAPER_THRESHOLD`)."""
PAPER_THRESHOLD = 0.3
"""CLIPSeg's authors report PhraseCut and Pascal-5i at t = 0.3."""


def mask_threshold(segmenter: Segmenter, requested: float | None) -> float:
    """The probability above which a pixel is in a mask: `requested`, or when None the
    threshold the model's authors use (`AUTHORS_THRESHOLDS`: 0.5 for mini; 0.3, the paper's,
    for CLIPSeg weights). Recorded with the notebook's parameters and printed."""
    if requested is None:
        threshold, source = AUTHORS_THRESHOLDS.get(segmenter.name, PAPER_THRESHOLD), (
            f"the threshold {segmenter.name}'s authors use")
    elif isinstance(requested, bool) or not isinstance(requested, int | float):
        raise ValueError(f"threshold {requested!r} is not a number")
    else:
        threshold, source = float(requested), "as set"
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold {requested!r} must lie strictly between 0 and 1")
    return _resolved("threshold", threshold, f"Mask threshold: {threshold} ({source})")


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


def finish(
    output_dir: str | Path,
    name: str,
    results: dict,
    *,
    segmenter: Segmenter | None,
    seed: int,
    figures: dict[str, matplotlib.figure.Figure] | None = None,
) -> None:
    """Write `<output_dir>/<name>.json` (with the recorded parameters, the provenance and the
    id of the study run executing this kernel, `kernel_run_id`) and `<name>_<figure>.png` files.

    Without recorded parameters (no ``start(..., parameters=globals())`` or
    ``record_parameters`` first) it warns and saves ``"parameters": null``, which the
    conclusion refuses. Prints the segmenter's backbone work (encodings, GFLOP) and stores it
    under ``"work"``.
    """
    if _recorded is None:
        warnings.warn(
            f"{name}: no parameters recorded; call study.start(..., parameters=globals()) "
            "after the parameters cell",
            stacklevel=2,
        )
    run_id = kernel_run_id()
    _refuse_another_runs_results(Path(output_dir), name, run_id)
    if segmenter is not None:
        # What the backbone computed: the cost a full-size model pays for these numbers.
        print(f"Backbone work: {segmenter.work}")
        results = {**results, "work": segmenter.work.as_dict()}
    for label, figure in (figures or {}).items():
        save_figure(figure, Path(output_dir) / f"{name}_{label}.png")
    save_results(output_dir, name, results, segmenter=segmenter, seed=seed, parameters=_recorded,
                 run_id=run_id)
