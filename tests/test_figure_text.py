"""Every figure the report shows is readable at 100% zoom: each notebook's key figure (the one
its section shows, built here at the notebook's size from the reference results or from world
scenes) and the forest plot are SVGs no wider than the report's text column, so they show at
their own size, and their smallest text is at least 9 pt (12 CSS px) there; charts draw their
lines and bars in Okabe and Ito's colour-blind-safe palette. After `make test`'s notebooks ran
(CLIPSEG_NOTEBOOK_RESULTS), every figure they saved passes the same check, and each committed
notebook shows inline exactly the figures its results list."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from fabricated_runs import NOTEBOOKS, REFERENCE, inline_pngs
from matplotlib.colors import to_hex, to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from clipseg_lib.analysis.calibration import calibration_figure, reliability, threshold_sweep
from clipseg_lib.analysis.plotting import OKABE_ITO, relative_luminance, save_figure
from clipseg_lib.evaluation.paper_benchmarks import curves_figure
from clipseg_lib.experiments import (
    architecture,
    architecture_figures,
    conclusion,
    mitigation_study,
    probe_figures,
    probes,
    robustness,
    robustness_figures,
)
from clipseg_lib.experiments.question_sets import question_queries
from clipseg_lib.finetune.failure_study import FailureResult
from clipseg_lib.finetune.failure_study import before_after_figure as finetuning_figure
from clipseg_lib.report.forest_plot import forest_svg
from clipseg_lib.report.html import STYLE
from clipseg_lib.study.results import load_results

NOTEBOOK_RESULTS = os.environ.get("CLIPSEG_NOTEBOOK_RESULTS")
COLUMN_PX = 72 * 16
"""The report's text column: ``body { max-width: 72rem }`` at 16 px per rem."""
PX_PER_PT = 96 / 72
MIN_TEXT_PX = 9 * PX_PER_PT
SCENE = 96  # px: mini's input size, the scenes of a mini run
#: A glyph run of matplotlib's SVG (text as paths): its font size in pt is 100 x the scale.
GLYPHS = re.compile(r'<g [^>]*transform="translate\([^)]*\)(?: rotate\([^)]*\))? scale\(([\d.]+) -')


def shown_text_px(svg: str) -> tuple[float, list[float]]:
    """(the SVG's width in CSS px, each glyph run's font size in CSS px as the report shows
    it: at its own size, or scaled down to the text column when wider)."""
    width_pt = float(re.search(r'<svg [^>]*width="([\d.]+)pt"', svg).group(1))
    shown = min(1.0, COLUMN_PX / (width_pt * PX_PER_PT))
    return width_pt * PX_PER_PT, [100 * float(scale) * PX_PER_PT * shown
                                  for scale in GLYPHS.findall(svg)]


def reference(name: str) -> dict:
    return json.loads((REFERENCE / f"{name}.json").read_text())["results"]


def layer_grid() -> Figure:
    """Notebook 04's grid: 4 prompts, the poster's 5 triples and the reference."""
    questions = robustness.world_queries(4, seed=0, kinds=robustness.LAYER_PROMPT_KINDS,
                                         size=SCENE)
    triples = [(3, 5, 8), (2, 4, 7), (4, 5, 6), (3, 6, 9), (5, 7, 8), (3, 7, 9)]
    return robustness_figures.extract_layer_grid(
        [(question, dict.fromkeys(triples, question.target)) for question in questions],
        triples=triples[:-1], reference=triples[-1])


def choices(kind: str) -> Figure:
    """Notebooks 05 and 07's figure: 3 cases shown."""
    answered = [(query, query.target.astype(np.float32))
                for query in question_queries(kind, 3, seed=0, size=SCENE)]
    return probe_figures.choice_figure(answered, n_shown=3)


def negations() -> Figure:
    questions = question_queries("negation", 3, seed=0, size=SCENE)
    return probe_figures.negation_figure([
        (question, np.stack([question.target.astype(np.float32)]
                            * len(probes.negation_prompts(question))))
        for question in questions])


def calibration() -> Figure:
    """Notebook 01's figure: a sweep and a reliability diagram for each of its 4 tasks."""
    ramp = np.tile(np.linspace(0.05, 0.95, 10), (10, 1))
    target = ramp > 0.5
    tasks = ("seen", "zero_shot", "one_shot", "referring")
    return calibration_figure({task: threshold_sweep([ramp], [target]) for task in tasks},
                              {task: reliability([ramp], [target], n_resamples=20)
                               for task in tasks}, threshold=0.5)


def finetuning() -> Figure:
    results = [FailureResult(failure["failure"], failure["n_train"], {
        group: (values["before_ious"], values["after_ious"])
        for group, values in failure["groups"].items()})
        for failure in reference("13_finetuning")["failures"]]
    return finetuning_figure(results)


KEY_FIGURES: dict[str, Callable[[], Figure]] = {
    "00_architecture": lambda: architecture_figures.draw_diagram(
        architecture.reference_configs()["rd64 (ViT-B/16)"]),
    "01_three_tasks": calibration,
    "02_distorted_images": lambda: robustness_figures.severity_curves(
        reference("02_distorted_images")["sweep"], title="Distorted images"),
    "03_distorted_prompts": lambda: robustness_figures.severity_curves(
        reference("03_distorted_prompts")["sweep"], title="Distorted prompts"),
    "04_extract_layers": layer_grid,
    "05_specific_word": lambda: choices("word"),
    "06_negation": negations,
    "07_facial_expressions": lambda: choices("expression"),
    "08_absent_objects": lambda: probe_figures.presence_figure(
        reference("08_absent_objects")["cases"], 0.5),
    "09_mitigations": lambda: mitigation_study.before_after_figure(
        reference("09_mitigations")["rows"]),
    "10_conclusion": lambda: conclusion.plot_verdicts(
        conclusion.build_claims(load_results(REFERENCE))),
    "12_benchmarks": lambda: curves_figure(reference("12_benchmarks")),
    "13_finetuning": finetuning,
}


@pytest.fixture(autouse=True)
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_the_column_the_check_assumes_is_the_reports():
    assert "max-width: 72rem" in STYLE and "figure img { max-width: 100%; height: auto;" in STYLE


@pytest.mark.parametrize("stem", KEY_FIGURES)
def test_each_key_figure_shows_at_its_size_with_text_of_9_pt_or_more(stem, tmp_path):
    save_figure(KEY_FIGURES[stem](), tmp_path / f"{stem}.png")
    width, sizes = shown_text_px((tmp_path / f"{stem}.svg").read_text(encoding="utf-8"))
    assert len(sizes) >= 3
    assert width <= COLUMN_PX, f"{stem} is {width:.0f} px wide: the report shrinks it"
    assert min(sizes) >= MIN_TEXT_PX - 0.01, f"{stem}: {min(sizes) / PX_PER_PT:.1f} pt"


CHARTS = ("01_three_tasks", "02_distorted_images", "03_distorted_prompts", "08_absent_objects",
          "09_mitigations", "10_conclusion", "12_benchmarks", "13_finetuning")


def data_colours(figure: Figure) -> set[str]:
    """The colours of the figure's lines and bars (a hollow bar's edge), greys left out."""
    colours = set()
    for ax in figure.axes:
        for artist in [*ax.lines, *ax.patches]:
            if isinstance(artist, Line2D):
                if artist.get_linestyle() == "None":  # markers only: an error bar's caps
                    colour = to_rgba(artist.get_markeredgecolor())
                else:
                    colour = to_rgba(artist.get_color())
            else:
                face = to_rgba(artist.get_facecolor())
                colour = face if face[3] > 0 else to_rgba(artist.get_edgecolor())
            if len({round(channel, 3) for channel in colour[:3]}) > 1:
                colours.add(to_hex(colour).upper())
    return colours


@pytest.mark.parametrize("stem", CHARTS)
def test_each_chart_draws_in_the_colour_blind_safe_palette(stem):
    colours = data_colours(KEY_FIGURES[stem]())
    assert colours and colours <= set(OKABE_ITO), stem


def test_text_on_a_coloured_cell_reads_at_wcag_aa_contrast():
    figure = KEY_FIGURES["10_conclusion"]()
    ax = figure.axes[0]
    pairs = [(text.get_color(), bar.get_facecolor()) for text, bar in
             zip(ax.texts, ax.patches, strict=True)]
    ratios = [contrast(text, bar) for text, bar in pairs]
    assert len(ratios) == 6 and min(ratios) >= 4.5, ratios
    assert {to_hex(bar): text for text, bar in pairs}["#0072b2"] == "white"  # reproduced
    shares = [[k, 10 - k] + [0] * 9 for k in range(11)]  # a row per share 0, 0.1, ..., 1
    ax = probe_figures.confusion_figure({"labels": list("abcdefghijk"), "counts": shares}).axes[0]
    cells = ax.images[0]
    ratios = [contrast(text.get_color(), cells.to_rgba(float(text.get_text())))
              for text in ax.texts]
    assert len(ratios) == 121 and min(ratios) >= 4.5


def contrast(first, second) -> float:
    """WCAG 2 contrast ratio of two matplotlib colours, 1 to 21."""
    low, high = sorted((relative_luminance(first), relative_luminance(second)))
    return (high + 0.05) / (low + 0.05)


def test_the_forest_plot_shows_at_its_size_with_text_of_9_pt_or_more():
    width, sizes = shown_text_px(forest_svg(conclusion.build_claims(load_results(REFERENCE))))
    assert len(sizes) > 20 and width <= COLUMN_PX
    assert min(sizes) >= MIN_TEXT_PX - 0.01


def svg_of(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    return buffer.getvalue()


def test_the_check_reads_each_glyph_runs_font_size_as_shown():
    figure, ax = plt.subplots(figsize=(4, 3))
    ax.set_ylabel("small", fontsize=7, color="red")  # rotated, styled
    ax.set_title("large", fontsize=20)
    width, sizes = shown_text_px(svg_of(figure))
    assert width == pytest.approx(4 * 96)
    assert (min(sizes), max(sizes)) == pytest.approx((7 * PX_PER_PT, 20 * PX_PER_PT))
    wide, ax = plt.subplots(figsize=(24, 3))  # twice the column: shown at half its size
    ax.set_title("halved", fontsize=20)
    assert max(shown_text_px(svg_of(wide))[1]) == pytest.approx(10 * PX_PER_PT)


def saved_figure_problems(results_dir: Path) -> tuple[set[str], list[str]]:
    """(the results names whose saved SVGs were checked, each problem found): a figure the
    results in ``results_dir`` list that is missing, an SVG wider than the text column, with
    text smaller than 9 pt as shown, or with no glyph runs to measure."""
    checked, problems = set(), []
    for name, payload in load_results(results_dir).items():
        for file in payload.get("figures", []):
            path = results_dir / file
            if not path.is_file():
                problems.append(f"{file}: listed by {name}.json, missing")
                continue
            if path.suffix != ".svg":
                continue
            checked.add(name)
            width, sizes = shown_text_px(path.read_text(encoding="utf-8"))
            if width > COLUMN_PX:
                problems.append(f"{file}: {width:.0f} px wide, over the {COLUMN_PX} px column")
            if not sizes:
                problems.append(f"{file}: no text found to measure")
            elif min(sizes) < MIN_TEXT_PX - 0.01:
                problems.append(f"{file}: smallest text {min(sizes) / PX_PER_PT:.1f} pt shown")
    return checked, problems


@pytest.mark.after_notebooks
@pytest.mark.skipif(NOTEBOOK_RESULTS is None, reason="needs the notebooks' results: `make test`")
def test_every_figure_the_notebooks_saved_shows_at_its_size_with_text_of_9_pt_or_more():
    checked, problems = saved_figure_problems(Path(NOTEBOOK_RESULTS))
    expected = {path.stem for path in REFERENCE.glob("*.json")}  # 12 experiments, conclusion
    assert len(expected) >= 13 and not expected - checked, f"no SVGs of {expected - checked}"
    assert not problems, "\n".join(problems)


def test_the_saved_figures_check_names_each_unreadable_figure(tmp_path):
    def save(name: str, figsize: tuple[float, float], fontsize: float) -> None:
        figure, ax = plt.subplots(figsize=figsize)
        ax.set_title("title", fontsize=fontsize)
        ax.tick_params(labelsize=fontsize)
        save_figure(figure, tmp_path / f"{name}_figure.png")
        figures = [f"{name}_figure.png", f"{name}_figure.svg"]
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"name": name, "results": {}, "figures": figures}))
    save("fine", (6, 3), 9)
    save("wide", (13, 3), 9)  # shown at 1152 / 1248 of its size
    save("small", (6, 3), 8)
    (tmp_path / "small_figure.png").unlink()
    checked, problems = saved_figure_problems(tmp_path)
    assert checked == {"fine", "wide", "small"}
    assert problems == ["small_figure.png: listed by small.json, missing",
                        "small_figure.svg: smallest text 8.0 pt shown",
                        "wide_figure.svg: 1248 px wide, over the 1152 px column",
                        "wide_figure.svg: smallest text 8.3 pt shown"]


def test_each_committed_notebook_shows_inline_the_figures_its_results_list():
    differing = {}
    for results in sorted(REFERENCE.glob("*.json")):
        stem = "10_conclusion" if results.stem == "conclusion" else results.stem
        listed = [file for file in json.loads(results.read_text())["figures"]
                  if file.endswith(".png")]
        shown = inline_pngs(NOTEBOOKS / f"{stem}.ipynb")
        if shown != len(listed):
            differing[stem] = (shown, listed)
    assert differing == {}
