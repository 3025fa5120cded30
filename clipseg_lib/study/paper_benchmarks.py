"""The CLIPSeg paper's benchmark rows, and our results printed beside them.

Numbers from Lüddecke & Ecker, CVPR 2022 (model "CLIPSeg (PC+)", ViT-B/16, reduce dim 64):
PhraseCut test at t = 0.3 (Table 2); Pascal-5i one-shot and text prompts, means over the four
folds (Tables 3 and 4). The paper's Pascal-5i models were trained without the fold's classes;
the released CIDAS weights saw all of PhraseCut+, so they are not the paper's one-shot models.
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
    threshold: float | str
    metrics: dict[str, float]


PAPER_ROWS = (
    PaperRow("PhraseCut, CLIPSeg (PC+)", "phrasecut", 0, "test", 0.3,
             {"miou": 43.4, "fgiou": 54.7, "ap": 76.7}),
    PaperRow("Pascal-5i one-shot, CLIPSeg (PC+)", "pascal5i", 1, "val", "best",
             {"miou": 59.5, "biniou": 75.0, "ap": 82.3}),
    PaperRow("Pascal-5i text prompts, CLIPSeg (PC+)", "pascal5i", 0, "val", "best",
             {"miou": 72.4, "biniou": 83.1, "ap": 93.5}),
)
METRIC_LABELS = {"miou": "mIoU", "fgiou": "IoU_FG", "biniou": "IoU_BIN", "ap": "AP"}


def paper_row(dataset: str, shots: int) -> PaperRow | None:
    """The paper's row for this dataset and number of shots, if the paper has one."""
    return next((r for r in PAPER_ROWS if (r.dataset, r.shots) == (dataset, shots)), None)


def caveats(row: PaperRow | None, *, model: str, split: str, folds: list[int]) -> list[str]:
    """Why our numbers may not be comparable to the paper's row (empty when they are)."""
    if row is None:
        return ["the paper reports no number for this dataset"]
    notes = []
    if split != row.split:
        notes.append(f"split {split!r} differs from the paper's {row.split!r}")
    if not any(model.endswith(name) for name in PAPER_MODELS):
        notes.append(f"model {model!r} is not the paper's CLIPSeg (PC+) weights")
    if row.dataset == "pascal5i":
        if sorted(folds) != [0, 1, 2, 3]:
            notes.append(f"folds {folds} differ from the paper's mean over folds 0-3")
        notes.append("the paper's Pascal-5i models never saw the fold's classes in training")
    return notes


def results_table(result: dict) -> str:
    """Our metrics beside the paper's row, as fixed-precision text (percent), with caveats."""
    row = paper_row(result["parameters"]["dataset"], result["parameters"]["shots"])
    lines = [
        f"{'metric':<8} {'ours':>7} {'95% interval':>17} {'paper':>7}   "
        f"(n={result['n']} samples on {result['n_images']} images, "
        f"threshold {result['threshold']})"
    ]
    for name, label in METRIC_LABELS.items():
        ours = result[name]
        paper = f"{row.metrics[name]:7.1f}" if row and name in row.metrics else f"{'-':>7}"
        interval = f"[{100 * ours['ci_low']:6.1f}, {100 * ours['ci_high']:6.1f}]"
        lines.append(f"{label:<8} {100 * ours['mean']:7.1f} {interval:>17} {paper}")
    if row:
        lines.append(f"paper: {row.label}, {row.split} split")
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
    if result["threshold"] != "best":
        figure.axes[0].axvline(result["threshold"], color="grey", linestyle="--")
    return figure
