"""Where a fine-tune writes, and its resumable training state, stored without pickle.

The state is two files in the output directory: `training_state.json` (step, losses, batch
plan and its generator, the run's identity) and the safetensors file it names (trained
weights, AdamW moments, torch's generator). A new tensors file is written first and the JSON
replaced atomically after it, so a run killed at any moment leaves a consistent state.
Pickled files (`torch.save`) are refused: unpickling can run code.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

STATE_JSON = "training_state.json"
STATE_FORMAT = "clipseg-finetune-state/1"
PROVENANCE_FILE = "finetune.json"
#: File names a `torch.save`d state would have; their presence on resume is an error.
PICKLED_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
#: First bytes of torch.save's zip container and of a raw pickle (protocol >= 2).
PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


class OutputDirError(ValueError):
    """An output directory that this run must not write into."""


@dataclass
class TrainingState:
    """What a resumed run needs: `tensors` ("<trained module>.*" such as "decoder.*",
    "optimizer.<i>.<key>", "rng.torch")
    and `record` (the JSON: step, losses, plan, run identity)."""

    tensors: dict[str, torch.Tensor]
    record: dict


def prepare_output(
    output: Path, *, resume: bool, force: bool, protected: list[Path]
) -> TrainingState | None:
    """Check that the run may write into `output` and return the state to resume, if any.

    Refused: the source model's or a bundled model's directory (always); a directory that is
    not empty (another model, other files, a finished or an unfinished fine-tune) unless
    `force`, or `resume` and it holds this tool's training state. `force` starts over.
    """
    resolved = output.expanduser().resolve()
    for directory in protected:
        if resolved == directory.resolve() or directory.resolve() in resolved.parents:
            raise OutputDirError(
                f"output {os.fspath(output)!r} is inside {os.fspath(directory)!r}, a model this "
                "run reads: choose another directory"
            )
    if resolved.exists() and not resolved.is_dir():
        raise OutputDirError(f"output {os.fspath(output)!r} is a file, not a directory")
    entries = sorted(p.name for p in resolved.iterdir()) if resolved.is_dir() else []
    if resume and entries:
        pickled = [n for n in entries if n.startswith("training_state") and
                   n.endswith(PICKLED_SUFFIXES)]
        if pickled:
            raise OutputDirError(
                f"output {os.fspath(output)!r} holds {pickled[0]}, a pickled training state: "
                "refused (unpickling can run code); this tool resumes from "
                f"{STATE_JSON} + safetensors only"
            )
        if STATE_JSON in entries:
            return load_state(resolved)
        if PROVENANCE_FILE in entries:
            raise OutputDirError(
                f"output {os.fspath(output)!r} holds a finished fine-tune: nothing to resume "
                "(--force to train again)"
            )
    if entries and not force:
        held = [n for n in MODEL_FILES if n in entries]
        what = (
            "an unfinished fine-tune (--resume to continue it)" if STATE_JSON in entries
            else "a finished fine-tune" if PROVENANCE_FILE in entries
            else f"another model ({', '.join(held)})" if held
            else f"{len(entries)} other file(s), e.g. {entries[0]}"
        )
        raise OutputDirError(
            f"output {os.fspath(output)!r} holds {what}: nothing was overwritten; choose a new "
            "directory or pass --force"
        )
    resolved.mkdir(parents=True, exist_ok=True)
    remove_state(resolved)
    return None


def save_state(output: Path, state: TrainingState) -> None:
    """Write `state` (tensors first, then the JSON that names them; then drop older tensors)."""
    step = int(state.record["step"])
    tensors_name = f"training_state-{step:08d}.safetensors"
    save_file({k: v.contiguous() for k, v in state.tensors.items()}, output / tensors_name)
    record = {"format": STATE_FORMAT, **state.record, "tensors_file": tensors_name}
    partial = output / (STATE_JSON + ".partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(output / STATE_JSON)
    for old in output.glob("training_state-*.safetensors"):
        if old.name != tensors_name:
            old.unlink()


def load_state(output: Path) -> TrainingState:
    """Read the state of `output`; a pickle in place of the tensors file is refused."""
    json_path = output / STATE_JSON
    try:
        record = json.loads(json_path.read_text())
    except json.JSONDecodeError as error:
        raise OutputDirError(f"{json_path}: not valid JSON ({error})") from error
    if record.get("format") != STATE_FORMAT:
        raise OutputDirError(f"{json_path}: format {record.get('format')!r}, not {STATE_FORMAT}")
    tensors_path = output / str(record["tensors_file"])
    if not tensors_path.is_file():
        raise OutputDirError(f"{json_path} names {tensors_path.name}, which does not exist")
    with open(tensors_path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(PICKLE_MAGIC):
        raise OutputDirError(
            f"{tensors_path} is a pickle (torch.save) file: refused, unpickling can run code; "
            "training states are safetensors + JSON"
        )
    try:
        tensors = load_file(tensors_path)
    except (SafetensorError, OSError) as error:
        raise OutputDirError(f"{tensors_path}: not a safetensors file ({error})") from error
    return TrainingState(tensors, record)


def remove_state(output: Path) -> None:
    """Delete this tool's training-state files from `output` (after a run finishes)."""
    for path in [output / STATE_JSON, *output.glob("training_state-*.safetensors")]:
        path.unlink(missing_ok=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """AdamW's per-parameter state as flat safetensors entries "optimizer.<i>.<key>"."""
    return {
        f"optimizer.{index}.{key}": value
        for index, entries in optimizer.state_dict()["state"].items()
        for key, value in entries.items()
    }


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict) -> None:
    """Put `optimizer_tensors` entries back into `optimizer` (its groups stay as built)."""
    per_parameter: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            per_parameter.setdefault(int(index), {})[key] = value
    groups = optimizer.state_dict()["param_groups"]
    optimizer.load_state_dict({"state": per_parameter, "param_groups": groups})
