"""Per-case checkpoints of a notebook's long loop, so that a resumed study run redoes no case.

A notebook opens its checkpoints once before the loop and, per case, either loads the record
an interrupted execution of the same run and configuration saved, or computes and saves it::

    checkpoint = study.checkpoints(output_dir, "02_x", globals(), segmenter=segmenter)
    for index, question in enumerate(questions):
        if not checkpoint.done(index):
            checkpoint.save(index, {"iou": iou(mask, target)})
        case = checkpoint.load(index)   # every case's numbers come from its record

Records are files, ``<output_dir>/.clipseg-checkpoints/<name>/<fingerprint>/<key>.json``,
each written atomically (`write_text_atomic`) as soon as its case is done. The fingerprint
hashes the study run's id (`kernel_run_id`), the notebook's parameters (`notebook_parameters`
of the namespace: a changed seed or ``n_cases`` is another fingerprint) and the model's weights
sha256, dtype and device, so only a resumed run of the same configuration (``clipseg-study run
--resume``, which keeps the run id) finds them; a fresh run never does. A notebook executed
outside a study run (Jupyter, nbval) keeps its records in memory: nothing is written and
nothing is reused. A record is a dict of numbers, strings, lists, tuples, numpy arrays and
dicts (tuple keys allowed); it loads back equal, floats bit for bit, arrays as numpy arrays.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clipseg_lib.study.notebook import notebook_parameters
from clipseg_lib.study.output_dir import CHECKPOINTS_DIR
from clipseg_lib.study.results import kernel_run_id, write_text_atomic

_FINGERPRINT_DIGITS = 16
_SEGMENTER_KEYS = ("model", "weights_sha256", "dtype", "device")
_TAG = "__checkpoint__"


def _encoded(value: Any) -> Any:
    """`value` as plain JSON: arrays, tuples and dicts with non-string keys become tagged
    objects that `_decoded` turns back."""
    if isinstance(value, np.ndarray | np.generic):
        buffer = io.BytesIO()
        np.savez_compressed(buffer, array=np.asarray(value))
        return {_TAG: "ndarray", "npz": base64.b64encode(buffer.getvalue()).decode("ascii")}
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encoded(item) for item in value]}
    if isinstance(value, list):
        return [_encoded(item) for item in value]
    if isinstance(value, Mapping):
        if all(isinstance(key, str) for key in value) and _TAG not in value:
            return {key: _encoded(item) for key, item in value.items()}
        return {_TAG: "dict", "items": [[_encoded(k), _encoded(v)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"checkpoint record: {type(value).__name__} {value!r:.60} cannot be saved "
                    "(use numbers, strings, lists, tuples, dicts and numpy arrays)")


def _decoded(value: Any) -> Any:
    if isinstance(value, list):
        return [_decoded(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag == "ndarray":
        with np.load(io.BytesIO(base64.b64decode(value["npz"])), allow_pickle=False) as stored:
            return stored["array"]
    if tag == "tuple":
        return tuple(_decoded(item) for item in value["items"])
    if tag == "dict":
        return {_decoded(key): _decoded(item) for key, item in value["items"]}
    return {key: _decoded(item) for key, item in value.items()}


def _key_text(key: int | str) -> str:
    """The file stem of case `key`: a whole number >= 0 or a safe name (ValueError otherwise)."""
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise ValueError(f"checkpoint key {key!r} is not a case index or name")
    text = str(key)
    if (isinstance(key, int) and key < 0) or not text or not all(
        c.isalnum() or c in "_-" for c in text
    ):
        raise ValueError(f"checkpoint key {key!r}: use a case index >= 0 or letters, digits, _ -")
    return text


class Checkpoints:
    """The per-case records of one notebook execution (see the module doc); `folder` None:
    kept in memory only."""

    def __init__(self, folder: Path | None, fingerprint: str):
        self.folder = folder
        self.fingerprint = fingerprint
        self._memory: dict[str, str] = {}
        found = folder.glob("*.json") if folder is not None and folder.is_dir() else []
        self.reused = len(list(found))
        """Records found on opening: cases an interrupted execution finished."""

    def _path(self, key: int | str) -> Path | None:
        return None if self.folder is None else self.folder / f"{_key_text(key)}.json"

    def done(self, key: int | str) -> bool:
        """Whether case `key` has a record."""
        path = self._path(key)
        return _key_text(key) in self._memory if path is None else path.is_file()

    def save(self, key: int | str, record: Mapping[str, Any]) -> None:
        """Store case `key`'s record (atomically, replacing an earlier one)."""
        text = json.dumps(_encoded(dict(record)), allow_nan=True)
        path = self._path(key)
        if path is None:
            self._memory[_key_text(key)] = text
        else:
            write_text_atomic(path, text)

    def load(self, key: int | str) -> dict[str, Any]:
        """Case `key`'s record; KeyError naming the case when it has none."""
        path = self._path(key)
        if not self.done(key):
            raise KeyError(f"checkpoint: case {key!r} has no record (save it first)")
        text = self._memory[_key_text(key)] if path is None else path.read_text(encoding="utf-8")
        return _decoded(json.loads(text))


def fingerprint(run_id: str | None, parameters: Mapping[str, Any], segmenter: Any = None) -> str:
    """Hex digest of what a case's record depends on: the run, the parameters (the scalar
    values of a notebook namespace, see `notebook_parameters`) and the model's weights."""
    model = {key: (segmenter.provenance or {}).get(key) for key in _SEGMENTER_KEYS} if (
        segmenter is not None) else None
    identity = {"run_id": run_id, "parameters": notebook_parameters(parameters), "model": model}
    text = json.dumps(identity, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_FINGERPRINT_DIGITS]


def checkpoints(
    output_dir: str | Path, name: str, parameters: Mapping[str, Any], *, segmenter: Any = None
) -> Checkpoints:
    """The checkpoints of notebook `name`'s loop for this configuration (its parameters,
    ``session.parameters``, and the segmenter); in memory outside a study run. Prints how many
    cases an interrupted execution already finished, if any."""
    run_id = kernel_run_id()
    digest = fingerprint(run_id, parameters, segmenter)
    folder = None if run_id is None else Path(output_dir) / CHECKPOINTS_DIR / name / digest
    store = Checkpoints(folder, digest)
    if store.reused:
        print(f"Resumed: {store.reused} cases finished by an interrupted execution of this "
              f"run and configuration are reused ({folder})")
    return store
