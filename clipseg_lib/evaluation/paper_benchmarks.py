"""The CLIPSeg paper's benchmark rows, and our results printed beside them.

Numbers from Lüddecke & Ecker, CVPR 2022 (model "CLIPSeg (PC+)", ViT-B/16, reduce dim 64):
PhraseCut test at t = 0.3 (Table 2); Pascal-5i one-shot and text prompts, means over the four
folds, at t = 0.3 too (Tables 3 and 4; the original's ``Tables.ipynb`` prints
``pas_h2_miou_0.3``, ``pas_h2_biniou_0.3``, ``pas_t_miou_0.3``). "AP" there is the paper's
foreground AP, printed here as AP_FG. The paper's Pascal-5i models were trained without the
fold's classes; the released CIDAS weights saw all of PhraseCut+, so they are not the paper's
one-shot models.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.figure

from clipseg_lib.analysis.plotting import plot_curves

PAPER_MODELS = (
    "CIDAS/clipseg-rd64", "CIDAS/clipseg-rd64-refined", "rd64-uni.pth", "rd64-uni-refined.pth"
)
"""Released weights of the paper's architecture (ours are compared to the paper as these)."""


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's tables: its numbers and the setting they were measured in."""

    label: str
    dataset: str
    shots: int
    split: str
    threshold: float
    metrics: dict[str, float]


PAPER_ROWS = (
    PaperRow("PhraseCut, CLIPSeg (PC+)", "phrasecut", 0, "test", 0.3,
             {"miou": 43.4, "fgiou": 54.7, "ap": 76.7}),
    PaperRow("Pascal-5i one-shot, CLIPSeg (PC+)", "pascal5i", 1, "val", 0.3,
             {"miou": 59.5, "biniou": 75.0, "ap": 82.3}),
    PaperRow("Pascal-5i text prompts, CLIPSeg (PC+)", "pascal5i", 0, "val", 0.3,
             {"miou": 72.4, "biniou": 83.1, "ap": 93.5}),
)
METRIC_LABELS = {"miou": "mIoU", "fgiou": "IoU_FG", "biniou": "IoU_BIN", "ap": "AP_FG"}
"""AP_FG: the paper's foreground AP (precision against recall of the foreground pixels at its
49 thresholds, Simpson's rule), not the step-wise pixel AP of `analysis.metrics`."""
BEST_LABEL = "best t"
"""Each IoU at its own best threshold, chosen on the data it scores (optimistic): the
original's "without fixed thresholds" column, beside the paper's fixed t."""


def paper_row(dataset: str, shots: int) -> PaperRow | None:
    """The paper's row for this dataset and number of shots, if the paper has one."""
    return next((r for r in PAPER_ROWS if (r.dataset, r.shots) == (dataset, shots)), None)


def caveats(row: PaperRow | None, *, model: str, split: str, folds: list[int],
            data: dict | None = None) -> list[str]:
    """Why our numbers may not be comparable to the paper's row (empty when they are);
    ``data`` (`dataset_provenance`) names an export of the synthetic world."""
    synthetic = (data or {}).get("synthetic")
    source = [] if not synthetic else [
        f"the data are the synthetic world exported in {synthetic['format']}'s layout "
        f"({synthetic['written_by']}), not {synthetic['format']}: a check of the path, "
        "not a benchmark result"]
    if row is None:
        return ["the paper reports no number for this dataset", *source]
    notes = source
    if split != row.split:
        notes.append(f"split {split!r} differs from the paper's {row.split!r}")
    if not any(model.endswith(name) for name in PAPER_MODELS):
        notes.append(f"model {model!r} is not the paper's CLIPSeg (PC+) weights")
    if row.dataset == "pascal5i":
        if sorted(folds) != [0, 1, 2, 3]:
            notes.append(f"folds {folds} differ from the paper's mean over folds 0-3")
        notes.append("the paper's Pascal-5i models never saw the fold's classes in training")
    return notes


def _percent(value: float | None, width: int = 7) -> str:
    return f"{'undefined' if value is None else f'{100 * value:.1f}':>{width}}"


def results_table(result: dict) -> str:
    """Our metrics at the paper's threshold beside the paper's row, each IoU at its own best
    threshold beside them (labelled), as fixed-precision text (percent), with caveats."""
    row = paper_row(result["parameters"]["dataset"], result["parameters"]["shots"])
    best = result.get("best", {})
    lines = [
        f"{'metric':<8} {'ours':>9} {'95% interval':>17} {'paper':>7} {BEST_LABEL:>7}   "
        f"(n={result['n']} samples on {result['n_images']} images, "
        f"threshold {result['threshold']})"
    ]
    for name, label in METRIC_LABELS.items():
        ours = result[name]
        paper = f"{row.metrics[name]:7.1f}" if row and name in row.metrics else f"{'-':>7}"
        interval = ("" if ours["mean"] is None else
                    f"[{100 * ours['ci_low']:6.1f}, {100 * ours['ci_high']:6.1f}]")
        beside = _percent(best[name]) if name in best else f"{'-':>7}"
        lines.append(f"{label:<8} {_percent(ours['mean'], 9)} {interval:>17} {paper} {beside}")
    if row:
        lines.append(f"paper: {row.label}, {row.split} split, t = {row.threshold}")
    lines.append(f"{BEST_LABEL}: each IoU at its own best threshold, chosen on these data "
                 "(optimistic; not the paper's setting). AP_FG: the paper's foreground AP.")
    lines += [f"caveat: {note}" for note in result["caveats"]]
    return "\n".join(lines)


def comparison_sentence(result: dict) -> str:
    """One sentence on how our numbers stand beside the paper's, generated from them."""
    parameters = result["parameters"]
    setting = (
        f"{parameters['model']} on {parameters['dataset']} ({parameters['split']} split, "
        f"{result['n']} samples on {result['n_images']} images)"
    )
    row = paper_row(parameters["dataset"], parameters["shots"])
    if row is None:
        return f"{setting}: mIoU {100 * result['miou']['mean']:.1f}; the paper has no such row."
    differences = []
    for name, paper in row.metrics.items():
        ours = result[name]
        if ours["mean"] is None:
            differences.append(f"{METRIC_LABELS[name]} is undefined")
            continue
        low, high = 100 * ours["ci_low"], 100 * ours["ci_high"]
        relation = "above" if low > paper else "below" if high < paper else "consistent with"
        differences.append(
            f"{METRIC_LABELS[name]} {100 * ours['mean']:.1f} [{low:.1f}, {high:.1f}] is "
            f"{relation} the paper's {paper:.1f}"
        )
    verdict = (
        "comparable to the paper's row" if not result["caveats"]
        else "not comparable to the paper's row (" + "; ".join(result["caveats"]) + ")"
    )
    return f"{setting}: " + ", ".join(differences) + f". These numbers are {verdict}."


def curves_figure(result: dict) -> matplotlib.figure.Figure:
    """mIoU, IoU_FG and IoU_BIN against the threshold, per fold, the reported threshold marked."""
    curves = {
        METRIC_LABELS[name] + (f" fold {fold['fold']}" if len(result["folds"]) > 1 else ""):
        fold["curves"][name]
        for fold in result["folds"]
        for name in ("miou", "fgiou", "biniou")
    }
    parameters = result["parameters"]
    figure = plot_curves(
        result["folds"][0]["curves"]["thresholds"], curves,
        xlabel="threshold t (foreground where probability > t)", ylabel="IoU",
        title=f"{parameters['model']} on {parameters['dataset']} (n={result['n']})",
    )
    figure.axes[0].axvline(result["threshold"], color="grey", linestyle="--")
    return figure
