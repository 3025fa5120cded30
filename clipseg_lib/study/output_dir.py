"""The runner's output directory: which one it may use, what it wrote there, what it may delete.

A run records every file it wrote in its manifest (a study's ``run.json``, a grid's
``grid.json``; key ``written_files``: owner -> paths relative to the directory, the owner being
a notebook stem or `RUN_OWNER`), and deletes only files recorded there. It refuses, before
writing anything:

- a directory that holds the notebooks being run (e.g. the repository root), even with --force;
- a non-empty directory without a manifest of ours (sources, someone else's files), or one
  holding another model's results (or a grid where a study is asked, or the reverse), unless
  --force: then it writes beside what is there and replaces only files recorded as its own;
- a directory another run is writing into, even with --force: a run holds an exclusive lock
  (`run_lock`) on its directory while it writes, which the system drops when the run's process
  ends, however it ends, so a crashed run never leaves a directory locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipseg_lib.study.encodings import ENCODING_CACHE_DIR
from clipseg_lib.study.parameters import StudyConfigError
from clipseg_lib.study.results import RUN_MANIFEST_NAME

MANIFEST_FILES = {"study": f"{RUN_MANIFEST_NAME}.json", "grid": "grid.json"}
"""Kind of run -> its manifest's file name."""
RUN_OWNER = "_run"
"""Owner of the files no single notebook wrote (the report index, the manifest itself)."""
SOURCE_MARKERS = (".git", "pyproject.toml", "setup.py", "notebooks")
SHOWN_ENTRIES = 3
LOCK_FILE = ".clipseg-run.lock"
"""Held (flock) by the run writing into a directory; never counted as a file of a run."""
CHECKPOINTS_DIR = ".clipseg-checkpoints"
"""Per-case checkpoints of unfinished notebooks (`study.checkpoints`); not counted as files of a
run: the runner deletes the folder when a run finishes or a new one starts."""
_LOCK_RUN_ID = re.compile(r"run (\S+), ")

Snapshot = dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Interval:
    """A notebook's execution: its stem and the wall-clock seconds (epoch) it ran between."""

    stem: str
    started: float
    finished: float


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The runner's manifest in ``directory`` with its ``kind`` ("study" or "grid"), or None
    when there is none of ours."""
    for kind, name in MANIFEST_FILES.items():
        try:
            manifest = json.loads((directory / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(manifest, dict) and isinstance(manifest.get("written_files"), dict):
            return {**manifest, "kind": kind}
    return None


@contextmanager
def run_lock(directory: Path, run_id: str | None = None) -> Iterator[None]:
    """Hold `directory`'s run lock for the ``with`` block (creating the directory, which must
    be writable); a StudyConfigError naming the holder when another live process holds it.
    The lock file names the holder (its `run_id` first, where given; see `locking_run_id`) and
    is removed, still locked, when the block ends."""
    lock_path = directory / LOCK_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StudyConfigError(f"output dir {directory}: cannot create it: {error}") from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StudyConfigError(f"output dir {directory}: not writable")
    handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the block
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if not lock_path.is_file() or os.stat(lock_path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise BlockingIOError  # a run that just ended removed the file we locked
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise StudyConfigError(
            f"output dir {directory} is in use by another run ({holder}); wait for it to "
            "finish or choose another directory"
        ) from None
    handle.truncate(0)
    handle.write(f"run {run_id}, " if run_id else "")
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, "
                 f"since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def run_in_progress(directory: Path) -> bool:
    """Whether a live run holds `directory`'s lock."""
    try:
        check_unlocked(directory)
    except StudyConfigError:
        return True
    return False


def locking_run_id(directory: Path) -> str | None:
    """The id of the live run holding `directory`'s lock; None when no run holds it (or the
    holder gave no id)."""
    if not run_in_progress(directory):
        return None
    try:
        holder = (directory / LOCK_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    match = _LOCK_RUN_ID.match(holder)
    return match.group(1) if match else None


def recorded_owner(directory: Path, relative: str) -> str | None:
    """The owner (notebook stem or `RUN_OWNER`) under which the manifest in `directory`
    records the file `relative`, or None when no run recorded it."""
    manifest = read_manifest(directory) or {}
    for owner, paths in (manifest.get("written_files") or {}).items():
        if relative in paths:
            return owner
    return None


def check_unlocked(directory: Path) -> None:
    """StudyConfigError when another run holds `directory`'s lock (there is a lock file only
    while a run holds it, or after one was killed: then taking the lock is free)."""
    if (directory / LOCK_FILE).is_file():
        with run_lock(directory):
            pass


def snapshot(directory: Path) -> Snapshot:
    """Relative path -> (mtime ns, size) of every file under ``directory`` (empty if absent),
    but those of the encoding cache (`ENCODING_CACHE_DIR`: shared by the runs, of no notebook),
    the lock file and the checkpoints."""
    files = {}
    for root, folders, names in os.walk(directory):
        if Path(root) == directory:
            for skipped in (ENCODING_CACHE_DIR, CHECKPOINTS_DIR):
                if skipped in folders:
                    folders.remove(skipped)
        for name in names:
            path = Path(root, name)
            try:
                status = path.stat()
            except OSError:
                continue
            relative = path.relative_to(directory).as_posix()
            if relative != LOCK_FILE:
                files[relative] = (status.st_mtime_ns, status.st_size)
    return files


class OwnedOutputDir:
    """An output directory the runner has checked it may write into (see the module doc)."""

    def __init__(
        self,
        path: Path,
        kind: str,
        previous_files: Mapping[str, Sequence[str]],
        replace_all: bool,
    ):
        self.path = path
        self.manifest_path = path / MANIFEST_FILES[kind]
        self.previous_files = {owner: list(paths) for owner, paths in previous_files.items()}
        self.replace_all = replace_all
        self.before: Snapshot = {}

    @classmethod
    def claim(
        cls, path: Path, *, kind: str, identity: str, sources: Path | None, force: bool
    ) -> OwnedOutputDir:
        """Check (writing nothing) that a ``kind`` run ("study" or "grid") of ``identity`` (the
        model, for a study) may use ``path``; StudyConfigError naming the problem otherwise."""
        path = path.resolve()
        sources = sources.resolve() if sources is not None else None
        if path.exists() and not path.is_dir():
            raise StudyConfigError(f"output dir {path} exists and is not a directory")
        if sources is not None and (path == sources or path in sources.parents):
            raise StudyConfigError(
                f"output dir {path} holds the notebooks being run ({sources}); "
                "choose a directory of its own, e.g. results/"
            )
        if not path.is_dir():
            return cls(path, kind, {}, replace_all=False)
        check_unlocked(path)
        manifest = read_manifest(path)
        if manifest is None:
            entries = sorted(entry.name for entry in path.iterdir() if entry.name != LOCK_FILE)
            if entries and not force:
                what = "sources" if any(e in SOURCE_MARKERS for e in entries) else "files"
                shown = ", ".join(entries[:SHOWN_ENTRIES]) + (", ..." if len(entries) > 3 else "")
                raise StudyConfigError(
                    f"output dir {path} holds {what} this runner did not write ({shown}); choose "
                    "a new or empty directory, or pass --force to write beside them"
                )
            return cls(path, kind, {}, replace_all=False)
        previous = manifest["kind"], str(manifest.get("identity"))
        if previous != (kind, identity) and not force:
            raise StudyConfigError(
                f"output dir {path} holds the results of another {previous[0]} "
                f"({previous[1]}); choose another directory, or pass --force to replace them"
            )
        return cls(path, kind, manifest["written_files"], replace_all=previous != (kind, identity))

    def prepare(self, rerun: Iterable[str]) -> None:
        """Delete the files earlier runs recorded for the notebooks in ``rerun`` (all recorded
        files when replacing another run), then remember what is there; call it holding the
        directory's `run_lock`, which creates the directory and checks it is writable."""
        stale = set(self.previous_files) if self.replace_all else set(rerun)
        for owner in stale:
            for relative in self.previous_files.pop(owner, []):
                (self.path / relative).unlink(missing_ok=True)
        self.before = snapshot(self.path)

    def written_files(self, intervals: Sequence[Interval]) -> dict[str, list[str]]:
        """Owner -> files written by earlier runs (still there) and by this one, sorted.

        A new or changed file belongs to the notebook of this run its name starts with, else to
        its earlier owner, else to the one notebook that was running when it was last modified,
        else to `RUN_OWNER`.
        """
        now = snapshot(self.path)
        earlier = {p: owner for owner, paths in self.previous_files.items() for p in paths}
        owners: dict[str, set[str]] = {}
        for relative, (mtime_ns, _) in now.items():
            if self.before.get(relative) == now[relative] and relative not in earlier:
                continue
            owner = _owner(relative, mtime_ns / 1e9, intervals, earlier.get(relative))
            owners.setdefault(owner, set()).add(relative)
        owners.setdefault(RUN_OWNER, set()).add(self.manifest_path.name)
        return {owner: sorted(paths) for owner, paths in sorted(owners.items())}


def _owner(
    relative: str, modified: float, intervals: Sequence[Interval], earlier_owner: str | None
) -> str:
    name = Path(relative).name
    by_name = [interval.stem for interval in intervals if name.startswith(interval.stem)]
    if by_name:
        return by_name[0]
    if earlier_owner is not None:
        return earlier_owner
    running = [i.stem for i in intervals if i.started <= modified <= i.finished]
    return running[0] if len(running) == 1 else RUN_OWNER
