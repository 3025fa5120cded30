"""The report's provenance box: which run, model, weights, settings, machine and library
versions produced the numbers, read from ``run.json`` and the results' ``provenance``, and what
``clipseg-study verify`` found when it checked this run (its ``verify.json``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from html import escape
from typing import Any

from clipseg_lib.study.results import VERIFY_RECORD_NAME, describe_machine
from clipseg_lib.study.run_records import RunRecord, conclusion_of, manifest_sha256, read_json

VERSIONS = ("python", "torch", "transformers", "numpy")


def _provenances(run: RunRecord) -> Iterator[Mapping[str, Any]]:
    """The current results' provenance records, then the manifest's."""
    for payload in run.current_results().values():
        if isinstance(payload.get("provenance"), Mapping):
            yield payload["provenance"]
    if run.manifest is not None and isinstance(run.manifest.get("provenance"), Mapping):
        yield run.manifest["provenance"]


def _parameters(run: RunRecord) -> Iterator[Mapping[str, Any]]:
    yield run.shared_parameters
    for payload in run.current_results().values():
        if isinstance(payload.get("parameters"), Mapping):
            yield payload["parameters"]


def _first(records: Iterator[Mapping[str, Any]], key: str) -> Any:
    return next((record[key] for record in records if record.get(key) not in (None, "")), None)


def first_provenance(run: RunRecord, key: str) -> Any:
    """``key`` of the first current results' provenance that holds it (else the manifest's)."""
    return _first(_provenances(run), key)


def verification_text(run: RunRecord) -> str:
    """What ``verify.json`` records of this run ("exit 0: all 7 quantities ... agree ...;
    against ..., <time>"), or "not verified" and why."""
    record = read_json(run.output_dir / f"{VERIFY_RECORD_NAME}.json")
    if record is None:
        return "not verified (clipseg-study verify compares a run with the reference)"
    if record.get("run_json_sha256") != manifest_sha256(run.output_dir):
        return "not verified: the verify.json here is about an earlier run"
    return (f"exit {record.get('exit_status')}: {record.get('outcome')}; against "
            f"{record.get('against')}, {record.get('verified_at')}")


def encodings_text(manifest: Mapping[str, Any]) -> str | None:
    """What run.json's ``encodings`` records, as "1234 = distinct inputs (567 repeats read
    from the cache)"; None when the run recorded none."""
    record = manifest.get("encodings")
    if not isinstance(record, Mapping):
        return None
    encodings, distinct, hits = (record.get(k) for k in ("encodings", "distinct_inputs", "hits"))
    if not all(isinstance(number, int) for number in (encodings, distinct, hits)):
        return None
    repeats = f"{hits} repeat{'' if hits == 1 else 's'} read from the cache"
    if encodings == distinct:
        return f"{encodings} = distinct inputs ({repeats})"
    if encodings > distinct:
        return (f"{encodings} for {distinct} distinct inputs ({encodings - distinct} encoded "
                f"more than once; {repeats})")
    return (f"{encodings} for {distinct} distinct inputs ({distinct - encodings} encoded by an "
            f"earlier run; {repeats})")


def provenance_items(run: RunRecord) -> list[tuple[str, str]]:
    """(label, value) pairs for what is known of the run; unknown ones are left out."""
    manifest = run.manifest or {}
    requested = manifest.get("model_requested")
    model = str(run.model) + (f" (requested: {requested})"
                              if requested not in (None, run.model) else "")
    datasets = sorted({str(parameters["dataset"]) for parameters in _parameters(run)
                       if parameters.get("dataset")})
    conclusion = conclusion_of(run)
    machine = first_provenance(run, "machine")
    sizes = [f"{record.claim.get('n')}" for record in conclusion.claims] if conclusion else []
    items = [
        ("Run", manifest.get("run_id")),
        ("Model", model),
        ("Weights sha256", first_provenance(run, "weights_sha256")),
        ("Data", ", ".join(datasets) or None),
        ("Seed", first_provenance(run, "seed")),
        ("dtype", manifest.get("dtype") or first_provenance(run, "dtype")),
        ("Threshold", _first(_parameters(run), "threshold")),
        ("n per claim", ", ".join(sizes) or None),
        ("Mode", "quick (a smoke test)" if run.quick else "full"),
        ("Encodings", encodings_text(manifest)),
        ("Machine", describe_machine({"machine": machine}) if machine else None),
        ("Versions", ", ".join(f"{name} {version}" for name in VERSIONS
                               if (version := first_provenance(run, name))) or None),
        ("Verified", verification_text(run) if run.manifest is not None else None),
    ]
    return [(label, str(value)) for label, value in items if value is not None]


def provenance_box(run: RunRecord) -> str:
    """The provenance box: a ``<dl>`` of `provenance_items` in a titled aside."""
    entries = "".join(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>"
                      for label, value in provenance_items(run))
    return (f'<aside class="box provenance" aria-labelledby="provenance">'
            f'<h2 id="provenance">Provenance</h2><dl>{entries}</dl></aside>')
