"""A training run's state on disk without pickle: one safetensors file.

Its tensors are every tensor of the state (model and optimiser moments, the torch RNG state);
its metadata holds the rest as JSON (schedule, stage, losses, scheduler, numpy generator
state), with each tensor replaced by a reference to its name. Nothing is ever unpickled: a
file this module did not write (a pickle, a truncated file) is refused with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

#: Marks the files this module writes; bump `FORMAT_VERSION` when the layout changes.
FORMAT = "clipseg_lib.mini.training_state"
FORMAT_VERSION = "1"


class TrainingStateError(ValueError):
    """A training-state file that cannot be resumed from, with the reason."""


def save_training_state(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts, lists, tuples, numbers, strings, None and tensors) to
    `path` atomically: a killed run leaves the previous state or the new one, never half."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, "", tensors)
    metadata = {"format": FORMAT, "version": FORMAT_VERSION, "state": json.dumps(skeleton)}
    partial = path.with_suffix(".tmp")
    save_file(tensors, partial, metadata=metadata)
    partial.replace(path)


def load_training_state(path: Path) -> dict[str, Any]:
    """The state `save_training_state` wrote to `path`; `TrainingStateError` for anything else."""
    refusal = (
        f"training state {str(path)!r} was not written by this program (corrupt, truncated, "
        "or another format such as a pickle, which is never loaded): delete it to start afresh"
    )
    try:
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT or metadata.get("version") != FORMAT_VERSION:
                raise TrainingStateError(refusal)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        return _decode(json.loads(metadata["state"]), tensors)
    except TrainingStateError:
        raise
    except Exception as error:  # noqa: BLE001 - safetensors, JSON and layout errors alike
        raise TrainingStateError(f"{refusal} ({type(error).__name__})") from error


def _encode(value: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """JSON for `value`, its tensors moved into `tensors` under their path `name`."""
    if isinstance(value, torch.Tensor):
        tensors[name] = value.detach().cpu().contiguous().clone()  # clones share no memory
        return {"tensor": name}
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {"dict": {k: _encode(v, f"{name}/{k}", tensors) for k, v in value.items()}}
        # optimiser states are keyed by parameter index: keep the keys' types
        return {"items": [[k, _encode(v, f"{name}/{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, f"{name}/{i}", tensors) for i, v in enumerate(value)]}
    if value is None or isinstance(value, bool | int | float | str):
        return {"value": value}
    raise TypeError(f"training state at {name!r}: {type(value).__name__} cannot be saved")


def _decode(node: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    (kind, content), = node.items()
    if kind == "tensor":
        return tensors[content]
    if kind == "dict":
        return {key: _decode(value, tensors) for key, value in content.items()}
    if kind == "items":
        return {key: _decode(value, tensors) for key, value in content}
    if kind in ("list", "tuple"):
        items = [_decode(value, tensors) for value in content]
        return items if kind == "list" else tuple(items)
    if kind == "value":
        return content
    raise ValueError(f"unknown node kind {kind!r}")
