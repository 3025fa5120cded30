"""Which run configuration produced each results file, and which files do not match the rest.

A configuration is the model, its weights (sha256), seed and dtype (from ``"provenance"``) and
the notebook's ``quick`` and ``threshold`` (from ``"parameters"``). Results of different
configurations must not be set beside each other: the conclusion refuses them, and the report
can flag them with `configuration_problems`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from clipseg_lib.analysis.plotting import format_table

CONCLUSION_NAME = "conclusion"
SHA_PREFIX = 12
#: Which configuration fields must agree between results files: (where, key).
CONFIGURATION = (
    ("provenance", "model"), ("provenance", "weights_sha256"), ("provenance", "seed"),
    ("provenance", "dtype"), ("parameters", "quick"), ("parameters", "threshold"),
)


def _configuration(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: (payload.get(where) or {}).get(key)
        for where, key in CONFIGURATION
        if key in (payload.get(where) or {})
    }


EXPERIMENT_NUMBERS = range(0, 10)
"""Notebooks 00-09 are the experiments the conclusion sums up; later ones (benchmarks on real
data, fine-tuning) are studies of their own with their own configurations."""


def experiment_results(loaded: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The results files of the experiment notebooks (`EXPERIMENT_NUMBERS`) among `loaded`."""
    return {
        name: payload
        for name, payload in loaded.items()
        if name[:2].isdigit() and int(name[:2]) in EXPERIMENT_NUMBERS
    }


def configuration_problems(
    loaded: Mapping[str, Mapping[str, Any]], *, model: str | None = None
) -> dict[str, str]:
    """Results name -> why it cannot be set beside the others; empty when all agree.

    The expected configuration is `model` (when given) and, for every other field of
    `CONFIGURATION`, the value most results files share. A file that records no parameters
    (written before they were recorded) is a problem too. `loaded` is
    `results.load_results(output_dir)`; the conclusion's own file is ignored.
    """
    payloads = {name: p for name, p in loaded.items() if name != CONCLUSION_NAME}
    configurations = {name: _configuration(p) for name, p in payloads.items()}
    expected: dict[str, Any] = {}
    for _, key in CONFIGURATION:
        values = [str(c[key]) for c in configurations.values() if key in c]
        if values:
            expected[key] = Counter(values).most_common(1)[0][0]
    if model is not None:
        expected["model"] = model
    problems = {}
    for name, payload in payloads.items():
        if not isinstance(payload.get("parameters"), Mapping):
            problems[name] = (
                f"{name}.json records no parameters (written by an older version): rerun it"
            )
            continue
        differing = [
            f"{key} {configurations[name][key]} (expected {value})"
            for key, value in expected.items()
            if key in configurations[name] and str(configurations[name][key]) != value
        ]
        if differing:
            problems[name] = (
                f"{name}.json comes from another run configuration: {', '.join(differing)}; "
                "rerun it with the others' settings"
            )
    return problems


def model_and_weights(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(model, weights sha256 prefix) of a results payload; "unknown" where not recorded."""
    provenance = payload.get("provenance", {})
    digest = provenance.get("weights_sha256") or "unknown"
    return str(provenance.get("model", "unknown")), digest[:SHA_PREFIX]


def sources(loaded: Mapping[str, Mapping[str, Any]]) -> list[dict[str, str]]:
    """Which model, weights (sha256 prefix), seed, n_cases, quick and threshold produced each
    results file."""
    rows = []
    for name, payload in loaded.items():
        if name == CONCLUSION_NAME:
            continue
        model, weights = model_and_weights(payload)
        parameters = payload.get("parameters") or {}
        rows.append({
            "results": name, "model": model, "weights": weights,
            "seed": str(payload.get("provenance", {}).get("seed")),
            **{key: str(parameters.get(key, "")) for key in ("n_cases", "quick", "threshold")},
        })
    return rows


def sources_table(loaded: Mapping[str, Mapping[str, Any]]) -> str:
    """`sources` as a table, or a line saying there are no results files."""
    rows = sources(loaded)
    return format_table(rows) if rows else "No results files in the output dir."
