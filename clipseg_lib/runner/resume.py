"""Resuming an interrupted study run: what it keeps, and the configuration it must match.

``clipseg-study run --resume`` continues the run recorded in the output dir's ``run.json`` when
that run did not finish (killed, interrupted, stopped by a lost worker or a full disk) and was
started with the same configuration: every notebook with its effective parameters (defaults,
overrides, ``--quick``, ``--dtype``, the model) and the same selection. It keeps the run's id,
its finished notebooks (status ok: their results, executed copies and figures) and the per-case
checkpoints (`study.checkpoints`) of the others, and executes only those others. Resuming is
asked for, never implied: a run without ``--resume`` starts a new run id, deletes the old
checkpoints and recomputes everything. A changed configuration, a finished run, or a run
that recorded no configuration is refused with the reason.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from clipseg_lib.runner.execution import NotebookRun
from clipseg_lib.study.output_dir import CHECKPOINTS_DIR, read_manifest
from clipseg_lib.study.parameters import StudyConfigError

RESUMABLE_STATUSES = ("running", "interrupted", "failed")
"""Statuses run.json records for a run that did not finish ("running": killed)."""
_OUTCOME_FIELDS = {field.name for field in fields(NotebookRun)}


@dataclass(frozen=True)
class Resumed:
    """What a resumed run continues: its id and the outcomes of the notebooks it keeps."""

    run_id: str
    kept: list[NotebookRun]


def _first_difference(recorded: Mapping[str, Any], planned: Mapping[str, Any]) -> str:
    """One line naming the first notebook or parameter in which two configurations differ."""
    if list(recorded) != list(planned):
        return f"notebooks {', '.join(recorded)} -> {', '.join(planned)}"
    for stem, parameters in planned.items():
        old = recorded[stem]
        for name in sorted(set(old) | set(parameters)):
            if old.get(name, "(unset)") != parameters.get(name, "(unset)"):
                return (f"{stem}: {name} {old.get(name, '(unset)')!r} -> "
                        f"{parameters.get(name, '(unset)')!r}")
    return "the configuration"


def resumable_run(output_dir: Path, configuration: Mapping[str, dict[str, Any]]) -> Resumed:
    """The unfinished run in `output_dir` started with `configuration` (notebook stem -> its
    effective parameters), with the outcomes of its finished notebooks; StudyConfigError
    saying why it cannot be resumed otherwise."""
    manifest = read_manifest(output_dir)
    advice = "run without --resume to run the study anew"
    if manifest is None or manifest.get("kind") != "study":
        raise StudyConfigError(f"--resume: output dir {output_dir} holds no study run; {advice}")
    status = manifest.get("status")
    if status not in RESUMABLE_STATUSES:
        raise StudyConfigError(
            f"--resume: the run in {output_dir} is {status}, there is nothing to resume; {advice}"
        )
    recorded = manifest.get("configuration")
    if not isinstance(recorded, dict) or not manifest.get("run_id"):
        raise StudyConfigError(
            f"--resume: the run in {output_dir} recorded no configuration to check; {advice}"
        )
    if recorded != dict(configuration):
        raise StudyConfigError(
            f"--resume: the run in {output_dir} had another configuration "
            f"({_first_difference(recorded, configuration)}); its work is not reused: {advice}"
        )
    kept = [
        NotebookRun(**{key: value for key, value in entry.items() if key in _OUTCOME_FIELDS})
        for entry in manifest.get("notebooks", [])
        if entry.get("status") == "ok" and entry.get("stem") in configuration
    ]
    return Resumed(manifest["run_id"], kept)


def clear_checkpoints(output_dir: Path) -> None:
    """Delete the per-case checkpoints in `output_dir` (those of a finished or replaced run)."""
    shutil.rmtree(output_dir / CHECKPOINTS_DIR, ignore_errors=True)
