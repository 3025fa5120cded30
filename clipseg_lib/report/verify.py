"""``clipseg-study verify RUN_DIR [--against DIR]``: does a run reproduce the reference results?

Every quantity of every results file the two folders share is compared within its declared
tolerance (`tolerances`): numbers by value, strings by their words with the numbers in them
compared as numbers, the notebook's parameters exactly (locations excepted). Results of another
model or dtype are not comparable (exit 2). The reference is `REFERENCE_DIR`, the results of the
committed notebooks (``make reference`` writes it). When RUN_DIR is a study run's output dir
(it holds ``run.json``), the outcome is recorded there as ``verify.json`` (`record_verification`)
and the run's report, if it has one, is rebuilt to show it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clipseg_lib.report.tolerances import EXACT, Tolerance, is_compared, tolerance_for
from clipseg_lib.study.results import (
    RESERVED_NAMES,
    RUN_MANIFEST_NAME,
    VERIFY_RECORD_NAME,
    describe_machine,
    write_json_atomic,
)
from clipseg_lib.study.run_records import manifest_sha256

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "data" / "reference"
#: Parameters that say where files are, not what was computed.
LOCATION_PARAMETERS = frozenset(
    {"output_dir", "cases_file", "images_dir", "dataset_root", "clip_weights", "processor"}
)
#: Provenance keys that identify what computed the results: they must agree.
IDENTITY = ("model", "weights_sha256", "dtype")
#: A number standing alone in text ("0.962", "-0.031", "n=40"), not digits inside a word or hash.
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?!\w)")


class VerifyError(ValueError):
    """The folders cannot be compared; the message names the folder and the problem."""


@dataclass(frozen=True)
class Check:
    """One quantity compared: its path, both values, the tolerance applied and the outcome."""

    quantity: str
    ours: Any
    theirs: Any
    tolerance: Tolerance
    ok: bool


@dataclass
class Verification:
    """The outcome of `verify`: every check, the notebooks only one side has, both machines."""

    checks: list[Check]
    missing: list[str] = field(default_factory=list)
    machines: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> list[Check]:
        """The checks outside their tolerance."""
        return [check for check in self.checks if not check.ok]

    def summary(self) -> str:
        """One line: how many quantities agree, in how many notebooks, what was not compared."""
        notebooks = len({check.quantity.split("/", 1)[0] for check in self.checks})
        missing = f"; not in this run: {', '.join(self.missing)}" if self.missing else ""
        if self.failures:
            return (f"verify: {len(self.failures):,} of {len(self.checks):,} quantities in "
                    f"{notebooks} results files differ beyond their tolerance{missing}")
        return (f"verify: all {len(self.checks):,} quantities in {notebooks} results files agree "
                f"within their tolerances{missing}")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value) for every scalar below `value`: ``a/b[2]/c``."""
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _number(text: str) -> float | int:
    return float(text) if "." in text else int(text)


def compare_value(path: str, ours: Any, theirs: Any) -> Check:
    """One quantity: numbers within `tolerance_for` the path, strings word for word with their
    numbers compared as numbers, anything else exactly."""
    if isinstance(theirs, str) and isinstance(ours, str) and ours != theirs:
        theirs_numbers, ours_numbers = _NUMBER.findall(theirs), _NUMBER.findall(ours)
        same_words = (_NUMBER.sub("#", " ".join(ours.split()))
                      == _NUMBER.sub("#", " ".join(theirs.split())))
        checks = [compare_value(path, _number(a), _number(b))
                  for a, b in zip(ours_numbers, theirs_numbers, strict=False)]
        tolerance = next((c.tolerance for c in checks if c.tolerance is not EXACT), EXACT)
        ok = same_words and len(ours_numbers) == len(theirs_numbers) and all(c.ok for c in checks)
        return Check(path, ours, theirs, tolerance, ok)
    tolerance = tolerance_for(path, theirs)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (ours, theirs))
    if numbers and tolerance is not EXACT:
        return Check(path, ours, theirs, tolerance, tolerance.allows(ours, theirs))
    return Check(path, ours, theirs, tolerance, ours == theirs)


def compare_payloads(name: str, ours: dict, theirs: dict) -> list[Check]:
    """Every quantity of two payloads of one notebook: its parameters (first: a different
    configuration explains the numbers it moved), then its ``results``."""
    mine, reference = ours.get("parameters") or {}, theirs.get("parameters") or {}
    checks = []
    for key in sorted((mine.keys() | reference.keys()) - LOCATION_PARAMETERS):
        value, expected = mine.get(key, "(missing)"), reference.get(key, "(missing)")
        checks.append(Check(f"{name}/parameters/{key}", value, expected, EXACT, value == expected))
    our_leaves = {path: value for path, value in _leaves(ours.get("results"), f"{name}/results")
                  if is_compared(path)}
    for path, value in _leaves(theirs.get("results"), f"{name}/results"):
        if not is_compared(path):
            continue
        if path not in our_leaves:
            checks.append(Check(path, "(missing)", value, EXACT, False))
        else:
            checks.append(compare_value(path, our_leaves.pop(path), value))
    checks += [Check(path, value, "(missing)", EXACT, False) for path, value in our_leaves.items()]
    return checks


def read_results(directory: str | Path) -> dict[str, dict]:
    """The results files of a run folder by notebook name; VerifyError if there are none or one
    is unreadable or not a results file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise VerifyError(f"{directory}: no such folder")
    payloads = {}
    for path in sorted(directory.glob("*.json")):
        if path.stem in RESERVED_NAMES:
            continue
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise VerifyError(f"{path}: not readable JSON ({error})") from error
        if not isinstance(payload, dict) or not {"name", "results"} <= payload.keys():
            raise VerifyError(f"{path}: not a results file (no 'name' and 'results')")
        payloads[path.stem] = payload
    if not payloads:
        raise VerifyError(f"{directory}: no results files (*.json of clipseg-study run)")
    return payloads


def _identity(payload: dict) -> dict[str, Any]:
    provenance = payload.get("provenance") or {}
    return {key: provenance.get(key) for key in IDENTITY}


def verify(run_dir: str | Path, against: str | Path = REFERENCE_DIR) -> Verification:
    """Compare every results file of `run_dir` with the same notebook's in `against`.

    Raises VerifyError when either folder holds no results, `run_dir` holds a notebook the
    reference does not know, or a notebook's results come from another model or dtype.
    """
    ours, theirs = read_results(run_dir), read_results(against)
    foreign = sorted(ours.keys() - theirs.keys())
    if foreign:
        raise VerifyError(f"{run_dir}: {', '.join(foreign)} not in the reference {against}")
    checks, machines = [], {}
    for name in sorted(ours):
        mine, reference = _identity(ours[name]), _identity(theirs[name])
        if mine != reference:
            differing = [f"{key} {mine[key]!r} (ours) vs {reference[key]!r} (reference)"
                         for key in IDENTITY if mine[key] != reference[key]]
            raise VerifyError(f"{name}: results of a different model: {'; '.join(differing)}")
        checks += compare_payloads(name, ours[name], theirs[name])
        for side, payload in (("ours", ours[name]), ("reference", theirs[name])):
            machines.setdefault(side, describe_machine(payload.get("provenance") or {}))
    return Verification(checks, sorted(theirs.keys() - ours.keys()), machines)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def report(verification: Verification, *, show_all: bool = False) -> str:
    """The machines, a table (quantity, ours, theirs, tolerance, ok) of the checks that failed
    (every check with `show_all`) and the one-line summary."""
    lines = [f"{side}: {machine}" for side, machine in verification.machines.items()]
    shown = verification.checks if show_all else verification.failures
    if shown:
        lines += ["| quantity | ours | theirs | tolerance | ok |", "|---|---|---|---|---|"]
        lines += [f"| {c.quantity} | {_shown(c.ours)} | {_shown(c.theirs)} | "
                  f"{c.tolerance.describe()} | {'yes' if c.ok else 'NO'} |" for c in shown]
    lines.append(verification.summary())
    return "\n".join(lines)


def record_verification(run_dir: Path, against: Path, verification: Verification | None,
                        exit_status: int, outcome: str) -> Path | None:
    """Write ``verify.json`` into `run_dir` when it is a study run's output dir (holds
    ``run.json``), else nothing; return its path or None. It holds what was compared against,
    how many quantities and how many failed (0 and 0 when `verification` is None: the folders
    were not comparable), the exit status, `outcome` in words and the run's `manifest_sha256`."""
    if not (run_dir / f"{RUN_MANIFEST_NAME}.json").is_file():
        return None
    reference = against.resolve() == REFERENCE_DIR.resolve()
    return write_json_atomic(run_dir / f"{VERIFY_RECORD_NAME}.json", {
        "against": "the committed reference results (data/reference)" if reference
        else str(against),
        "quantities": len(verification.checks) if verification else 0,
        "failed": len(verification.failures) if verification else 0,
        "exit_status": exit_status,
        "outcome": outcome,
        "run_json_sha256": manifest_sha256(run_dir),
        "verified_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
