"""What one output directory holds of its last run, with nothing stale passed off as current.

``read_run(output_dir)`` pairs the runner's manifest (``run.json``) with the executed notebooks,
results JSON and figures beside it. Every run has an id, recorded in ``run.json``, in each
executed notebook's metadata and in each results file (``run_id``): membership is decided by
these ids, which survive copies, archives and clocks that jump. A result counts as *current*
only when it belongs to the manifest's run and configuration:

- a notebook that failed in the run has no current results (its old JSON is left out);
- a notebook listed as ok whose executed copy is gone or carries another run's id (a later run
  was killed) is ``interrupted``;
- results whose ``run_id`` is not that of the run that executed their notebook (another run's,
  or null: a notebook executed on its own) are left out;
- results whose recorded ``parameters`` differ from those the run gave (quick vs full, another
  model, seed or threshold) are left out, with the difference named;
- results of notebooks the run did not execute (``clipseg-study run --notebooks 05`` after a
  full run) are current only when their execution was given the parameters this run gives
  (papermill records them in the executed notebook): a quick run's results beside a full rerun
  are left out.

A results file ``<name>.json`` belongs to the notebook whose stem is ``name`` or ends in
``_<name>`` (``10_conclusion`` writes ``conclusion.json``); its figures are those it lists
(``figures``), or ``<name>_*.png`` for results from before figures were listed.

No file time is consulted: files written before run ids existed (no ``run_id`` anywhere) cannot
be told apart and are taken as one run.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nbformat
import papermill

from clipseg_lib.study.results import RUN_MANIFEST_NAME, RUN_METADATA, load_results

#: Parameters that say where a run wrote, not what it computed.
LOCATION_PARAMETERS = ("output_dir",)


@dataclass
class NotebookRecord:
    """One notebook as this run left it.

    ``status``: ``ok``, ``failed``, ``interrupted`` (a later, unfinished run removed or
    re-executed it), ``earlier`` (not executed by this run) or ``unverified`` (no manifest).
    ``results`` (name -> payload) and ``figures`` hold only what is current; ``left_out`` says
    why anything else is not.
    """

    stem: str
    status: str
    detail: str = ""
    seconds: float | None = None
    executed: Path | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)

    @property
    def number(self) -> str:
        return self.stem.split("_", 1)[0]


@dataclass
class RunRecord:
    """An output directory's last run: ``manifest`` (None without ``run.json``), the model,
    whether it was quick, the parameters shared by its notebooks, its notebooks in order, signs
    that a later run was interrupted, and results files no notebook here wrote."""

    output_dir: Path
    manifest: dict[str, Any] | None
    model: str | None
    quick: bool
    shared_parameters: dict[str, Any]
    notebooks: list[NotebookRecord]
    interrupted: list[str]
    left_out: list[str]

    def notebook_for(self, reference: str) -> NotebookRecord | None:
        """The notebook a claim names by stem (``05_specific_word``) or number (``05``)."""
        number = reference.split("_", 1)[0]
        return next(
            (nb for nb in self.notebooks if nb.stem == reference or nb.number == number), None
        )

    def current_results(self) -> dict[str, dict[str, Any]]:
        return {name: payload for nb in self.notebooks for name, payload in nb.results.items()}


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None (with a warning) when it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        warnings.warn(f"could not read {path}: {error}", stacklevel=2)
        return None
    return document if isinstance(document, dict) else None


def manifest_sha256(output_dir: Path) -> str | None:
    """SHA-256 of the run's ``run.json`` (which run a ``verify.json`` is about), or None
    without one."""
    path = output_dir / f"{RUN_MANIFEST_NAME}.json"
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def recorded_parameters(payload: dict[str, Any]) -> dict[str, Any]:
    """The notebook parameters a results payload recorded (top level or inside ``results``)."""
    for holder in (payload, payload.get("results")):
        if isinstance(holder, dict) and isinstance(holder.get("parameters"), dict):
            return holder["parameters"]
    return {}


def parameter_differences(recorded: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """``name recorded vs expected`` for every parameter both hold with different values."""
    differences = []
    for name in sorted(recorded.keys() & expected.keys()):
        if name in LOCATION_PARAMETERS:
            continue
        if json.dumps(recorded[name], sort_keys=True) != json.dumps(expected[name], sort_keys=True):
            differences.append(f"{name} {recorded[name]!r} in the results vs {expected[name]!r}")
    return differences


@dataclass(frozen=True)
class Execution:
    """What an executed notebook records of its execution: papermill's injected parameters and
    the runner's run id; each None when not recorded or unreadable."""

    injected: dict[str, Any] | None = None
    run_id: str | None = None


def _execution(executed: Path) -> Execution:
    """The `Execution` recorded in the executed notebook ``executed``."""
    try:
        metadata = nbformat.read(executed, as_version=4).metadata
        run_id = _as_dict(metadata.get(RUN_METADATA)).get("run_id")
        return Execution(metadata.get("papermill", {}).get("parameters"),
                         run_id if isinstance(run_id, str) else None)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        warnings.warn(f"could not read {executed}: {error}", stacklevel=2)
        return Execution()


def _earlier_differences(
    executed: Path, injected: dict[str, Any] | None, shared: dict[str, Any]
) -> list[str]:
    """How an earlier execution's injected parameters differ from what this run injects into
    every notebook declaring them (``shared``; absent means the notebook's default)."""
    if injected is None:
        return ["its execution recorded no parameters to match this run's"]
    try:
        declared = set(papermill.inspect_notebook(str(executed)))
    except Exception as error:  # noqa: BLE001 - any unreadable notebook is one line here
        return [f"its parameters cannot be read ({type(error).__name__})"]
    differences = []
    for name in sorted((injected.keys() | (shared.keys() & declared)) - set(LOCATION_PARAMETERS)):
        then, now = injected.get(name, "its default"), shared.get(name, "its default")
        if json.dumps(then, sort_keys=True) != json.dumps(now, sort_keys=True):
            differences.append(f"{name} {then!r} in that run vs {now!r} in this one")
    return differences


def _executed_after(execution: Execution, manifest_id: str | None) -> bool:
    """True when a notebook listed in run.json (with run id `manifest_id`) was executed again
    since, by a later unfinished run or outside any run: it carries another id or none. A run
    writes run.json with its id before it executes anything, so a notebook run.json does not
    list is from an earlier run. Without a manifest id (before run ids) nothing can tell."""
    return manifest_id is not None and execution.run_id != manifest_id


def _belongs_to(name: str, stem: str) -> bool:
    return name == stem or stem.endswith(f"_{name}")


def _shared(values_by_notebook: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters every notebook that declares them was given the same value of."""
    shared: dict[str, Any] = {}
    conflicting: set[str] = set()
    for values in values_by_notebook:
        for name, value in values.items():
            if name in shared and shared[name] != value:
                conflicting.add(name)
            shared.setdefault(name, value)
    return {name: value for name, value in shared.items() if name not in conflicting}


def _not_from(payload: dict[str, Any], execution: Execution) -> str | None:
    """Why the results ``payload`` were not written by ``execution`` of their notebook, or
    None: their run ids differ (a missing id counts as none)."""
    written_by = payload.get("run_id")
    if written_by == execution.run_id:
        return None
    if written_by is None:
        return "written by a notebook executed outside a study run"
    if execution.run_id is None:
        return f"written by a study run ({written_by}); its notebook here was executed outside one"
    return f"written by another run ({written_by}, not {execution.run_id})"


def _figures(payload: dict[str, Any], name: str, output_dir: Path) -> list[Path]:
    """The figure files the results ``payload`` list that exist (``<name>_*.png`` for results
    from before figures were listed)."""
    listed = payload.get("figures")
    if not isinstance(listed, list):
        return sorted(output_dir.glob(f"{name}_*.png"))
    return [output_dir / file for file in listed
            if isinstance(file, str) and "/" not in file and (output_dir / file).is_file()]


def _attach_results(
    record: NotebookRecord,
    results: dict[str, dict[str, Any]],
    expected: dict[str, Any],
    execution: Execution,
    output_dir: Path,
    refused: Sequence[str] = (),
) -> None:
    """Move the results and figures of ``record`` that are current into it; name the rest
    (all of them when ``refused`` gives reasons). ``execution`` is what its executed notebook
    recorded."""
    for name in [name for name in results if _belongs_to(name, record.stem)]:
        payload = results.pop(name)
        if record.status in ("failed", "interrupted"):
            record.left_out.append(
                f"{name}.json: from an earlier run ({record.stem} {record.status} in this one)"
            )
            continue
        elsewhere = _not_from(payload, execution)
        if elsewhere is not None:
            record.left_out.append(f"{name}.json: {elsewhere}")
            continue
        differences = parameter_differences(recorded_parameters(payload), expected)
        if differences:
            record.left_out.append(f"{name}.json: {'; '.join(differences)}")
            continue
        if refused:
            record.left_out.append(f"{name}.json: {'; '.join(refused)}")
            continue
        record.results[name] = payload
        record.figures += _figures(payload, name, output_dir)


def read_run(output_dir: str | Path) -> RunRecord:
    """The run recorded in ``output_dir`` (see the module docstring for what counts as current)."""
    output_dir = Path(output_dir)
    manifest_path = output_dir / f"{RUN_MANIFEST_NAME}.json"
    manifest = read_json(manifest_path)
    executed = {path.stem: path for path in (output_dir / "notebooks").glob("*.ipynb")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = load_results(output_dir)
    # Shapes the report relies on; anything else in a file is not a result to show.
    results = {name: {**payload, "provenance": _as_dict(payload.get("provenance"))}
               for name, payload in loaded.items() if isinstance(payload.get("results"), dict)}
    malformed = [f"{name}.json: its 'results' is not an object" for name in loaded.keys()
                 - results.keys()]
    if manifest is not None:
        manifest = {**manifest, "provenance": _as_dict(manifest.get("provenance"))}
    listed = (manifest or {}).get("notebooks")
    outcomes = [
        outcome for outcome in (listed if isinstance(listed, list) else [])
        if isinstance(outcome, dict) and isinstance(outcome.get("stem"), str)
    ]
    given = {outcome["stem"]: dict(outcome.get("parameters") or {}) for outcome in outcomes}
    shared = _shared(list(given.values()))
    interrupted = []
    if manifest is not None and manifest.get("status") in ("running", "interrupted", "failed"):
        interrupted.append(f"run.json says the run did not finish ({manifest['status']})")
    manifest_id = (manifest or {}).get("run_id")
    manifest_id = manifest_id if isinstance(manifest_id, str) else None
    records = []
    for outcome in outcomes:
        stem = outcome["stem"]
        status = "ok" if outcome.get("status") == "ok" else "failed"
        detail = "" if status == "ok" else (
            f"{outcome.get('error_type')}: {outcome.get('error_message')}")
        if status == "ok" and stem not in executed:
            status, detail = "interrupted", "its executed notebook is gone (a later run was killed)"
            interrupted.append(f"{stem}: executed notebook missing")
        execution = _execution(executed[stem]) if stem in executed else Execution()
        if stem in executed and _executed_after(execution, manifest_id):
            status = "interrupted"
            detail = "executed again since (by a later run that did not finish, or by hand)"
            interrupted.append(f"{stem}: executed again since this run")
        record = NotebookRecord(stem, status, detail, outcome.get("seconds"), executed.get(stem))
        _attach_results(record, results, given[stem],
                        replace(execution, run_id=manifest_id or execution.run_id), output_dir)
        records.append(record)
    for stem in sorted(executed.keys() - given.keys()):
        status = "earlier" if manifest is not None else "unverified"
        record = NotebookRecord(stem, status, executed=executed[stem])
        execution = _execution(executed[stem])
        refused = []
        if manifest is not None:
            refused = _earlier_differences(executed[stem], execution.injected, shared)
        _attach_results(record, results, shared, execution, output_dir, refused)
        records.append(record)
    records.sort(key=lambda record: record.stem)
    orphans = malformed + [
        f"{name}.json: no executed notebook in this directory wrote it" for name in results
    ]
    model = (manifest or {}).get("model_resolved") or shared.get("model")
    return RunRecord(output_dir, manifest, model, bool((manifest or {}).get("quick")), shared,
                     records, interrupted, orphans)


@dataclass(frozen=True)
class ClaimRecord:
    """One claim of the run's conclusion (a ``conclusion.json`` claim dict) and whether the
    notebook it rests on has current results; ``why`` says why not."""

    claim: dict[str, Any]
    source: NotebookRecord | None
    current: bool
    why: str = ""


@dataclass(frozen=True)
class Conclusion:
    """The conclusion's claims, the notebook that wrote them and its whole ``results``."""

    claims: list[ClaimRecord]
    stem: str
    results: dict[str, Any]


def conclusion_of(run: RunRecord) -> Conclusion | None:
    """The run's current conclusion (the results holding a list of ``claims``), or None."""
    for record in run.notebooks:
        for name, payload in record.results.items():
            results = payload.get("results")
            claims = results.get("claims") if isinstance(results, dict) else None
            if isinstance(claims, list) and all(isinstance(claim, dict) for claim in claims):
                return Conclusion([_claim_record(run, claim, name) for claim in claims],
                                  record.stem, results)
    return None


SOURCE_STATUS_WHY = {
    "failed": "{} failed in this run",
    "interrupted": "{} did not finish (its run was interrupted)",
    "earlier": "{} was not run with this run's parameters",
    "ok": "{} saved no current results",
}


def _drawn_after(run: RunRecord, conclusion: str, sources: list[str]) -> bool:
    """Whether the results file ``conclusion`` was written after the results ``sources`` it
    draws on (else from the results they replaced), by run ids: a conclusion of this run is
    drawn after every notebook of it (conclusions run last), and from the same run's results;
    one of an earlier run is not drawn after this run's results; between two earlier runs, the
    later started (run ids begin with their UTC start time). Where ids are missing (files from
    before run ids, or executed outside a run) only the same id, or none on every side, says so.
    """
    run_ids = [run.current_results()[name].get("run_id") for name in (conclusion, *sources)]
    manifest_id = (run.manifest or {}).get("run_id")
    drawn, *drawn_from = run_ids
    if not all(isinstance(run_id, str) for run_id in [*run_ids, manifest_id]):
        return all(source == drawn for source in drawn_from)
    return all(drawn in (source, manifest_id)
               or (source != manifest_id and drawn > source) for source in drawn_from)


def _claim_record(run: RunRecord, claim: dict[str, Any], conclusion: str) -> ClaimRecord:
    """A claim is current when its notebook's results are, and the conclusion (results file
    ``conclusion``) was drawn after them (`_drawn_after`)."""
    reference = str(claim.get("notebook") or claim.get("source") or "")
    source = run.notebook_for(reference) if reference else None
    if source is None:
        return ClaimRecord(claim, None, False, f"{reference or 'its notebook'} was not run")
    if not source.results:
        why = SOURCE_STATUS_WHY.get(source.status, "{} has no current results")
        return ClaimRecord(claim, source, False, why.format(source.stem))
    if not _drawn_after(run, conclusion, list(source.results)):
        return ClaimRecord(claim, source, False,
                           f"drawn before {source.stem} was re-run; re-run the conclusion")
    return ClaimRecord(claim, source, True)
