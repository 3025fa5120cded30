"""Results files of the study: atomic JSON writes, provenance, and loading them back.

A notebook saves its numbers with :func:`save_results`, which writes
``<output_dir>/<name>.json`` = ``{"name", "results", "parameters", "provenance", "run_id"}``:
the numbers, every parameter the notebook ran with, what produced them and the id of the study
run that executed it (`new_run_id`; None outside a run). The runner writes its own manifest,
``run.json`` (with the same ``run_id``), to the same directory; it is not a results file.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import secrets
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from clipseg_lib.model.hardware import machine_record

RUN_MANIFEST_NAME = "run"
"""Stem of the runner's manifest (``run.json``); reserved, so no results file may use it."""
VERIFY_RECORD_NAME = "verify"
"""Stem of ``clipseg-study verify``'s record in a run's output dir (``verify.json``); reserved."""
RESERVED_NAMES = {RUN_MANIFEST_NAME: "the runner's manifest",
                  VERIFY_RECORD_NAME: "the record of clipseg-study verify"}
"""Stems of JSON files in an output dir that are not results, and what they are."""

RUN_ID_VARIABLE = "CLIPSEG_RUN_ID"
"""Environment variable through which the runner gives each notebook kernel its run's id."""
RUN_METADATA = "clipseg"
"""Key of an executed notebook's metadata under which the runner records ``{"run_id": ...}``."""

_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_VERSIONED_PACKAGES = ("torch", "transformers", "numpy")


def _json_ready(value: Any, where: str) -> Any:
    """``value`` with NaN -> None, numpy scalars/arrays -> Python, tuples -> lists, and
    `Estimate`/`HitRate` (anything with ``as_dict``) -> their dicts.

    Raises ValueError for +-inf, which JSON cannot represent, naming its location ``where``.
    """
    if callable(getattr(value, "as_dict", None)):
        value = value.as_dict()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            raise ValueError(f"{where}: {value} is not representable in JSON")
        return value
    if isinstance(value, Mapping):
        return {key: _json_ready(item, f"{where}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


@contextmanager
def _atomic_file(path: Path) -> Iterator[TextIO]:
    """A text file to write that replaces `path` only once it is complete: written next to it,
    synced, moved over it with ``os.replace``; an interrupted or failed write (a full disk)
    leaves the previous file intact and no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600 files; results are meant to be shared like any other output.
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as JSON (indent 2, sorted keys) to ``path`` atomically; return the path.

    NaN becomes ``null``; numpy scalars and arrays become Python numbers and lists.
    """
    path = Path(path)
    document = _json_ready(payload, "payload")
    with _atomic_file(path) as handle:
        json.dump(document, handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, as `write_json_atomic`; return the path."""
    path = Path(path)
    with _atomic_file(path) as handle:
        handle.write(text)
    return path


def new_run_id() -> str:
    """A fresh run id: the UTC start time and 6 random hex digits, ``20260105T141502Z-3fa9c1``."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def kernel_run_id() -> str | None:
    """The id of the study run executing this kernel (`RUN_ID_VARIABLE`), or None outside one."""
    return os.environ.get(RUN_ID_VARIABLE) or None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance(segmenter: Any = None, *, seed: int | None) -> dict:
    """Versions of torch, transformers, numpy and Python, the platform, the machine (CPU model,
    kernel-selecting instruction sets, kernel path, threads: `machine_record`) and ``seed``.

    With a segmenter, its ``provenance`` dict (``model``, ``weights_sha256``, ``dtype``,
    ``device``) is merged in.
    """
    record: dict[str, Any] = {name: _package_version(name) for name in _VERSIONED_PACKAGES}
    record.update(
        python=platform.python_version(), platform=platform.platform(), machine=machine_record(),
        seed=seed,
    )
    if segmenter is not None:
        record.update(segmenter.provenance)
    return record


def describe_machine(provenance: Mapping[str, Any]) -> str:
    """One line for readers: the CPU, its kernel-selecting instruction sets, the kernel path
    and threads, and the library versions of a `provenance` record (what is known of them)."""
    machine = provenance.get("machine") or {}
    parts = []
    if machine:
        flags = " ".join(machine.get("cpu_flags") or []) or "no listed instruction sets"
        threads = machine.get("threads")
        parts.append(f"{machine.get('cpu')} ({flags}), {machine.get('kernel_path')} kernels, "
                     f"{threads} thread{'' if threads == 1 else 's'}")
    versions = [f"{name} {provenance[name]}" for name in ("python", *_VERSIONED_PACKAGES)
                if provenance.get(name)]
    return "; ".join(parts + [", ".join(versions)] if versions else parts) or "unknown machine"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _SAFE_STEM.fullmatch(name):
        raise ValueError(
            f"results name {name!r} is not a safe file stem "
            "(letters, digits, '_' and '-', starting with a letter or digit)"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"results name {name!r} is reserved for {RESERVED_NAMES[name]}")


def save_results(
    output_dir: str | Path,
    name: str,
    results: dict,
    *,
    segmenter: Any = None,
    seed: int | None,
    parameters: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    figures: Sequence[str] = (),
) -> Path:
    """Write ``<output_dir>/<name>.json`` = ``{"name", "results", "parameters", "provenance",
    "run_id", "figures"}``; return its path.

    ``parameters`` are the notebook's parameter values (None is saved as ``null``: unknown);
    ``run_id`` the id of the study run that executed the notebook (None: executed on its own);
    ``figures`` the file names of the figures saved with these results.
    ``name`` must be a safe file stem (ValueError otherwise); NaN values are stored as ``null``.
    """
    _check_name(name)
    payload = {
        "name": name,
        "results": results,
        "parameters": None if parameters is None else dict(parameters),
        "provenance": provenance(segmenter, seed=seed),
        "run_id": run_id,
        "figures": list(figures),
    }
    return write_json_atomic(Path(output_dir) / f"{name}.json", payload)


def load_results(output_dir: str | Path) -> dict[str, dict]:
    """Every results file in ``output_dir``, keyed by name (the file stem).

    Each value is the saved payload ``{"name", "results", "parameters", "provenance"}``. Files
    that cannot be read or are not results payloads are skipped with a warning; ``run.json``
    and ``verify.json`` (`RESERVED_NAMES`) are skipped.
    """
    loaded: dict[str, dict] = {}
    for path in sorted(Path(output_dir).glob("*.json")):
        if path.stem in RESERVED_NAMES:
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            warnings.warn(f"skipping unreadable results file {path}: {error}", stacklevel=2)
            continue
        if not isinstance(payload, dict) or not {"name", "results"} <= payload.keys():
            warnings.warn(
                f"skipping {path}: not a results file (needs 'name' and 'results' keys)",
                stacklevel=2,
            )
            continue
        loaded[path.stem] = payload
    return loaded
