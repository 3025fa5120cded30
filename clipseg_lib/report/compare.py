"""``clipseg-study compare RUN_A RUN_B [...] --output DIR``: the runs' conclusions side by side.

Each claim gets one row: per run its verdict (coloured) and evidence, and the row is marked as a
disagreement when the runs' current verdicts differ. A RUN that holds no ``run.json`` but
subfolders that do (the runs of a grid) stands for those subfolders. Runs are comparable when
they differ only in what a comparison is for (`MAY_DIFFER`: model, seed, device, dtype, and
what ``--vary`` names, e.g. ``--vary threshold`` for one study at two mask thresholds); any
other parameter that differs (quick vs full, n_cases, threshold) is refused with exit status 2.
Only current results count (`run_records`): a claim whose notebook failed reads "not current";
a run that did not finish (interrupted, failed, still running) is refused. As in the report, a
quick run's column holds no verdicts ("not judged", with why) and takes no part in
disagreements; the other runs' tests share one forest plot (`plot_runs_forest`), written
beside the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path

from clipseg_lib.report.conclusion import not_judged_reason
from clipseg_lib.report.forest_plot import figure_svg, plot_runs_forest, runs_forest_alt
from clipseg_lib.report.html import enlargeable_figure, page, verdict_class
from clipseg_lib.report.model_description import describe_model
from clipseg_lib.study.results import RUN_MANIFEST_NAME, write_text_atomic
from clipseg_lib.study.run_records import (
    LOCATION_PARAMETERS,
    RunRecord,
    conclusion_of,
    read_run,
    recorded_parameters,
)

MAY_DIFFER = ("model", "seed", "device", "dtype", "clip_weights", *LOCATION_PARAMETERS)
PAGE_NAME = "compare.html"
FOREST_PLOT = "compare_forest_plot.svg"
UNFINISHED = {"running": "has not finished", "interrupted": "was interrupted",
              "failed": "failed (a lost scheduler or a full disk)"}
"""Manifest statuses of runs whose results are not a whole study, and what they mean."""
GENERATOR = '<meta name="generator" content="clipseg-study compare">'


class CompareError(ValueError):
    """The runs cannot be compared; the message names the run and the problem."""


def expand_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Each path holding ``run.json``, or for a grid folder its subfolders that hold one."""
    runs = []
    for path in map(Path, paths):
        if (path / f"{RUN_MANIFEST_NAME}.json").is_file():
            runs.append(path)
            continue
        cells = sorted(p.parent for p in path.glob(f"*/{RUN_MANIFEST_NAME}.json"))
        if not cells:
            raise CompareError(f"{path}: no run.json here or in its subfolders "
                               "(not an output dir of clipseg-study run)")
        runs += cells
    if len(runs) < 2:
        raise CompareError(f"need at least two runs to compare, got {len(runs)}")
    return runs


def _compared_parameters(run: RunRecord, may_differ: Sequence[str]) -> dict[str, object]:
    """What must be equal across runs: the run's shared parameters, and every parameter each
    current results file recorded (``05_specific_word.n_cases``), except `may_differ`."""
    compared = {"quick": run.quick}
    compared |= {k: v for k, v in run.shared_parameters.items() if k not in may_differ}
    for name, payload in run.current_results().items():
        compared |= {f"{name}.{k}": v for k, v in recorded_parameters(payload).items()
                     if k not in may_differ}
    return compared


def check_compatible(runs: Sequence[RunRecord], labels: Sequence[str],
                     vary: Sequence[str] = ()) -> None:
    """CompareError naming the first parameter the runs were given different values of, other
    than `MAY_DIFFER` and `vary`."""
    may_differ = (*MAY_DIFFER, *vary)
    compared = [_compared_parameters(run, may_differ) for run in runs]
    # the run's own parameters first, then those of single results files (``name.parameter``)
    for name in sorted(set().union(*compared), key=lambda name: ("." in name, name)):
        values = {label: params[name] for label, params in zip(labels, compared, strict=True)
                  if name in params}
        if len({json.dumps(value, sort_keys=True) for value in values.values()}) > 1:
            listed = ", ".join(f"{value!r} in {label}" for label, value in values.items())
            bare = name.rsplit(".", 1)[-1]
            raise CompareError(
                f"runs are not comparable: parameter {name} is {listed}; compare runs that "
                f"differ only in {', '.join(MAY_DIFFER[:-1])}, or name it with --vary {bare}"
            )


def run_labels(paths: Sequence[Path]) -> list[str]:
    """Short distinct names: the folder names, or paths below the common parent if they clash."""
    names = [path.name or str(path) for path in paths]
    if len(set(names)) == len(names):
        return names
    resolved = [path.resolve() for path in paths]
    common = Path(os.path.commonpath(resolved))
    return [str(path.relative_to(common)) or str(path) for path in resolved]


def _cell(claim_record, not_judged: str | None) -> tuple[str, str | None]:
    """(table cell, verdict or None when the claim is not current in that run or the run is
    quick: `not_judged` says why)."""
    if claim_record is None:
        return '<td class="stale">no such claim</td>', None
    if not claim_record.current:
        return f'<td class="stale">not current: {escape(claim_record.why)}</td>', None
    if not_judged is not None:
        return f'<td class="verdict-not-judged">not judged: {escape(not_judged)}</td>', None
    claim = claim_record.claim
    verdict = str(claim.get("verdict"))
    return (f'<td class="{verdict_class(verdict)}"><span class="verdict">{escape(verdict)}'
            f"</span><br><small>{escape(str(claim.get('evidence', '')))}</small></td>", verdict)


def _run_summary(run: RunRecord) -> str:
    """The model in words, the seed and whether the run was quick, as escaped HTML."""
    seeds = ((run.manifest or {}).get("provenance", {}).get("seed"),
             run.shared_parameters.get("seed"))
    seed = next((seed for seed in seeds if seed is not None), None)
    return escape(describe_model(run.model).sentence.rstrip(".")
                  + (f"; seed {seed}" if seed is not None else "")
                  + ("; quick run" if run.quick else ""))


def _forest_figure(runs: Sequence[RunRecord], labels: Sequence[str], conclusions: Sequence,
                   output: Path) -> str:
    """The judged runs' tests in one forest plot written to `output`/`FOREST_PLOT`, as a
    figure; "" when no judged run has tests."""
    claims_by_run = {
        label: [record.claim for record in conclusion.claims if record.current]
        for label, run, conclusion in zip(labels, runs, conclusions, strict=True)
        if conclusion is not None and not run.quick
    }
    if not any(claim.get("tests") for claims in claims_by_run.values() for claim in claims):
        return ""
    write_text_atomic(output / FOREST_PLOT, figure_svg(plot_runs_forest(claims_by_run)))
    return enlargeable_figure(
        FOREST_PLOT, runs_forest_alt(claims_by_run),
        "Each claim's tests, one row per run: the effect minus its control with its 95% "
        "interval; dashed, the declared margin.", css_class="forest")


def comparison_page(runs: Sequence[RunRecord], labels: Sequence[str],
                    output: Path) -> tuple[str, list[str]]:
    """(the HTML page, the claims the runs disagree on); writes the forest plot into
    `output`."""
    conclusions = [conclusion_of(run) for run in runs]
    not_judged = [not_judged_reason(run, conclusion) if run.quick else None
                  for run, conclusion in zip(runs, conclusions, strict=True)]
    by_claim: dict[str, list] = {}
    for index, conclusion in enumerate(conclusions):
        for record in conclusion.claims if conclusion else []:
            by_claim.setdefault(str(record.claim.get("claim")), [None] * len(runs))[index] = record
    header = "".join(f"<th>{escape(label)}</th>" for label in labels)
    rows, disagreements = [], []
    for claim, records in by_claim.items():
        cells, verdicts = zip(*(_cell(record, why)
                                for record, why in zip(records, not_judged, strict=True)),
                              strict=True)
        disagree = len({verdict for verdict in verdicts if verdict is not None}) > 1
        if disagree:
            disagreements.append(claim)
        mark = '<td class="verdict disagree">disagreement</td>' if disagree else "<td>agree</td>"
        row_class = ' class="disagree"' if disagree else ""
        rows.append(f"<tr{row_class}><td>{escape(claim)}</td>{''.join(cells)}{mark}</tr>")
    about = "".join(
        f"<li><b>{escape(label)}</b> ({escape(str(run.output_dir))}): {_run_summary(run)}"
        f"{'' if conclusions[i] else '; <span class=stale>no current conclusion</span>'}</li>"
        for i, (label, run) in enumerate(zip(labels, runs, strict=True))
    )
    verdict_line = (f"The runs disagree on {len(disagreements)} of {len(by_claim)} claims."
                    if disagreements else f"The runs agree on all {len(by_claim)} claims.")
    body = [
        GENERATOR,
        "<h1>CLIPSeg study: runs side by side</h1>",
        f"<ul>{about}</ul>",
        f"<p>{escape(verdict_line)}</p>",
        _forest_figure(runs, labels, conclusions, output),
        f"<table class=\"compare\">\n<tr><th>Claim</th>{header}<th>Runs</th></tr>\n"
        + "\n".join(rows) + "\n</table>",
    ]
    return page("CLIPSeg study: runs side by side", body), disagreements


def compare_runs(paths: Sequence[str | Path], output: str | Path, *, force: bool = False,
                 vary: Sequence[str] = ()) -> tuple[Path, list[str]]:
    """Write ``<output>/compare.html`` for the runs at ``paths``; return its path and the
    claims on which the runs' verdicts differ. `vary` names parameters that may differ
    besides `MAY_DIFFER`.

    Raises CompareError when a path is not a run (or grid), the runs are not comparable, or
    the page would replace a file this command did not write (unless ``force``).
    """
    run_dirs = expand_runs(paths)
    runs = [read_run(path) for path in run_dirs]
    labels = run_labels(run_dirs)
    for run, label in zip(runs, labels, strict=True):
        status = (run.manifest or {}).get("status")
        if status in UNFINISHED:
            raise CompareError(f"{label}: run.json says the run {UNFINISHED[status]}; finish it "
                               "(rerun the same command) before comparing it")
    check_compatible(runs, labels, vary)
    target = Path(output) / PAGE_NAME
    if target.exists() and not force and GENERATOR not in target.read_text(errors="replace"):
        raise CompareError(f"{target} exists and was not written by compare; use --force")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        html, disagreements = comparison_page(runs, labels, target.parent)
        target.write_text(html, encoding="utf-8")
    except OSError as error:
        raise CompareError(f"output {output}: {error.strerror or error}") from error
    return target, disagreements
