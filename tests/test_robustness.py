"""The robustness experiments on a tiny random CLIPSeg (12 backbone layers, like ViT-B/16, so
the poster's extract-layer triples apply): identities, encode counts, shapes, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib import ImagePrompt, load_segmenter, world
from clipseg_lib.analysis.distortions import distort_mask
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.experiments import cases, robustness, robustness_figures
from clipseg_lib.model.segmenter import Segmenter

matplotlib.use("Agg")

SUMMARY_KEYS = {
    "iou_gt_clean", "iou_gt_severity1", "iou_gt_severity5", "iou_vs_clean_severity1",
    "iou_vs_clean_severity5",
}


@pytest.fixture(scope="module")
def segmenter(tiny_model_dir) -> Segmenter:
    """conftest's seeded random CLIPSeg: 12 vision layers of width 32 on 32 x 32 inputs."""
    return load_segmenter(tiny_model_dir)


@pytest.fixture(scope="module")
def queries() -> list[world.Query]:
    return robustness.world_queries(3, seed=0)


def count_encodes(monkeypatch, segmenter: Segmenter) -> list[int | None]:
    """Record the max_layer of every encode_image call on `segmenter`."""
    calls: list[int | None] = []
    encode = segmenter.encode_image

    def spy(image, *, max_layer=None):
        calls.append(max_layer)
        return encode(image, max_layer=max_layer)

    monkeypatch.setattr(segmenter, "encode_image", spy)
    return calls


def row(results: dict, distortion: str, severity: int) -> dict:
    return next(r for r in results["rows"]
                if r["distortion"] == distortion and r["severity"] == severity)


def test_world_queries_cycle_through_kinds():
    kinds = [query.kind for query in robustness.world_queries(5, seed=1)]
    assert kinds == ["composite", "referring", "composite", "referring", "composite"]


def test_distortion_sweep_severity_zero_is_the_clean_prediction(segmenter, queries):
    results = robustness.distortion_sweep(segmenter, queries, distortions=["blur", "rotation"],
                                          severities=[1, 5], seed=0)
    assert [(r["distortion"], r["severity"]) for r in results["rows"]] == [
        ("blur", 0), ("blur", 1), ("blur", 5), ("rotation", 0), ("rotation", 1), ("rotation", 5)
    ]
    assert row(results, "blur", 0)["iou_vs_clean"] == 1.0
    assert row(results, "rotation", 0)["iou_vs_clean"] == 1.0
    assert row(results, "rotation", 5)["iou_vs_clean"] < 1.0
    clean_ious = [iou(segmenter.predict(q.scene.image, q.prompt)[0] > 0.5, q.target)
                  for q in queries]
    assert row(results, "blur", 0)["iou_gt"] == pytest.approx(np.mean(clean_ious), abs=1e-12)
    assert set(results["summary"]) == SUMMARY_KEYS
    assert results["summary"]["iou_gt_clean"] == pytest.approx(np.mean(clean_ious), abs=1e-12)
    assert results["n_cases"] == 3


def test_distortion_sweep_encodes_each_distorted_image_once(segmenter, queries, monkeypatch):
    image = queries[0].scene.image
    shared = [cases.Case(image, prompt, None, "shared.png") for prompt in ("red", "a circle")]
    calls = count_encodes(monkeypatch, segmenter)
    results = robustness.distortion_sweep(segmenter, [*shared, queries[1]],
                                          distortions=["jpeg", "occlusion"], severities=[0, 2, 5])
    assert len(calls) == 2 * (1 + 2 * 2)
    assert 0.0 <= row(results, "jpeg", 5)["iou_gt"] <= 1.0  # only queries[1] has ground truth


def test_prompt_distortion_sweep_keeps_the_query_image_clean(segmenter, monkeypatch):
    one_shot = robustness.one_shot_queries(2, seed=0, distortions=["scale_crop"], severities=[5])
    scene = world.make_query("composite", 5).scene
    photo = cases.Case(scene.image, "a photo's own object", scene.object_mask(0), "own.png")
    calls = count_encodes(monkeypatch, segmenter)
    results = robustness.prompt_distortion_sweep(segmenter, [*one_shot, photo],
                                                 distortions=["scale_crop", "blur"],
                                                 severities=[1, 5], seed=0)
    assert len(calls) == 3
    assert results["n_cases"] == 3
    assert row(results, "scale_crop", 0)["iou_vs_clean"] == 1.0
    assert row(results, "blur", 0)["iou_vs_clean"] == 1.0
    assert set(results["summary"]) == SUMMARY_KEYS
    assert len(results["rows"]) == 2 * 3


def test_one_shot_queries_keep_the_support_object_in_view():
    kept = robustness.one_shot_queries(3, seed=0, distortions=["scale_crop"], severities=[5])
    assert all(query.kind == "image" for query in kept)
    assert all(distort_mask(q.support_mask, "scale_crop", 5).any() for q in kept)


def test_engineering_comparison_matches_direct_predictions(segmenter):
    one_shot = robustness.one_shot_queries(2, seed=0, severities=[0])
    comparison = robustness.engineering_comparison(segmenter, one_shot,
                                                   engineerings=["none", "crop"])
    direct = [iou(segmenter.predict(q.scene.image, ImagePrompt(
        q.support_image, q.support_mask, "none"))[0] > 0.5, q.target) for q in one_shot]
    assert [r["engineering"] for r in comparison["rows"]] == ["none", "crop"]
    assert comparison["rows"][0]["miou"] == pytest.approx(np.mean(direct), abs=1e-12)


def test_extract_layer_table_reference_row_is_one_and_one_pass_per_image(
    segmenter, queries, monkeypatch
):
    calls = count_encodes(monkeypatch, segmenter)
    table = robustness.extract_layer_table(segmenter, queries, n_prompts=2)
    assert calls == [10] * len(queries)  # (3,7,9) reads hidden state 10; one pass each
    labels = [r["extract_layers"] for r in table["rows"]]
    assert labels == ["(3,5,8)", "(2,4,7)", "(4,5,6)", "(3,6,9)", "(5,7,8)", "(3,7,9)"]
    assert table["rows"][-1] == {"extract_layers": "(3,7,9)", "Prompt 1": 1.0, "Prompt 2": 1.0}
    assert table["prompts"] == [{"column": "Prompt 1", "prompt": queries[0].prompt},
                                {"column": "Prompt 2", "prompt": queries[1].prompt}]
    assert set(table["summary"]["mean_iou_vs_reference"]) == {
        "3,5,8", "2,4,7", "4,5,6", "3,6,9", "5,7,8", "3,7,9"}
    assert table["summary"]["mean_iou_vs_reference"]["3,7,9"] == 1.0
    assert table["trained_layers"] == "3,6,9"


def test_extract_layer_cell_is_the_iou_of_two_direct_predictions(segmenter, queries):
    table = robustness.extract_layer_table(segmenter, queries, triples=[(2, 4, 7)], n_prompts=3)
    image, prompt = queries[2].scene.image, queries[2].prompt
    other = segmenter.predict(image, prompt, extract_layers=(2, 4, 7))[0] > 0.5
    reference = segmenter.predict(image, prompt, extract_layers=(3, 7, 9))[0] > 0.5
    assert table["rows"][0]["Prompt 3"] == pytest.approx(iou(other, reference), abs=1e-12)
    truth = iou(other, queries[2].target)
    assert table["mean_rows"][0]["iou_gt"] == pytest.approx(
        np.mean([truth, *[iou(segmenter.predict(q.scene.image, q.prompt, extract_layers=(2, 4, 7))
                              [0] > 0.5, q.target) for q in queries[:2]]]), abs=1e-12)


@pytest.mark.parametrize(("call", "named"), [
    (lambda s, q: robustness.distortion_sweep(s, q, distortions=["fog"]), "fog"),
    (lambda s, q: robustness.distortion_sweep(s, q, severities=[6]), "6"),
    (lambda s, q: robustness.prompt_distortion_sweep(s, q, distortions=[]), "distortions"),
    (lambda s, q: robustness.extract_layer_table(s, q, triples=[(3, 7, 12)]), "(3, 7, 12)"),
    (lambda s, q: robustness.extract_layer_table(s, q, reference=(3, 7)), "(3, 7)"),
    (lambda s, q: robustness.distortion_sweep(s, []), "empty"),
])
def test_bad_parameters_raise_value_error_naming_them(segmenter, queries, call, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        call(segmenter, queries)


def test_support_that_leaves_the_image_is_refused(segmenter):
    query = world.make_query("image", 3)
    edge = np.zeros_like(query.support_mask)
    edge[0, 0] = True
    corner = cases.Case(query.support_image, "corner", edge, "corner.png")
    with pytest.raises(ValueError, match="leaves the image"):
        robustness.distorted_prompt(corner, "scale_crop", 5, seed=0)


def test_severity_table_and_finding_read_the_rows():
    rows = [{"distortion": d, "severity": s, "iou_gt": g, "iou_vs_clean": v}
            for d, s, g, v in [("blur", 0, 0.8, 1.0), ("blur", 1, 0.76, 0.9), ("blur", 5, 0.4, 0.5),
                               ("jpeg", 0, 0.8, 1.0), ("jpeg", 1, 0.6, 0.7), ("jpeg", 5, 0.2, 0.3)]]
    summary = {"iou_gt_clean": 0.8, "iou_gt_severity1": 0.68, "iou_gt_severity5": 0.3,
               "iou_vs_clean_severity1": 0.8, "iou_vs_clean_severity5": 0.4}
    results = {"rows": rows, "summary": summary, "n_cases": 2}
    table = robustness.severity_table(results, "iou_gt")
    assert table[-1] == {"distortion": "mean", "severity 0": 0.8,
                         "severity 1": pytest.approx(0.68), "severity 5": pytest.approx(0.3)}
    finding = robustness.distortion_finding(results)
    assert "from 0.800 to 0.680 (-0.120)" in finding
    assert "IoU 0.800; at severity 5 these are 0.300 and 0.400" in finding
    assert "jpeg at severity 5 changes the masks most (IoU with the clean masks 0.300)" in finding


@pytest.fixture
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_figures_have_a_panel_per_case_and_setting(segmenter, queries, close_figures):
    results = robustness.distortion_sweep(segmenter, queries[:1], distortions=["blur", "jpeg"],
                                          severities=[1])
    curves = robustness_figures.severity_curves(results, title="t")
    assert [len(ax.lines) for ax in curves.axes] == [2, 2]
    grid = robustness_figures.extract_layer_grid(segmenter, queries[:2], triples=[(3, 6, 9)])
    assert len(grid.axes) == 3 * 2
    examples = robustness_figures.distortion_examples(segmenter, queries[0],
                                                      distortions=["blur"], severities=[1, 5])
    assert len(examples.axes) == 3
    one_shot = robustness.one_shot_queries(1, seed=0, distortions=["blur"], severities=[1])
    prompt_examples = robustness_figures.prompt_distortion_examples(
        segmenter, one_shot[0], distortions=["blur", "jpeg"], severities=[1])
    assert len(prompt_examples.axes) == 2 * 2 * 2


def test_layer_and_engineering_findings_name_the_extremes():
    summary = {"mean_iou_vs_reference": {"3,5,8": 0.7, "2,4,7": 0.1, "3,7,9": 1.0},
               "iou_gt": {"3,5,8": 0.6, "2,4,7": 0.2, "3,7,9": 0.5}}
    finding = robustness.extract_layer_finding(
        {"summary": summary, "reference": "3,7,9", "trained_layers": "3,6,9", "n_cases": 4})
    assert "when it reads (3,5,8) (mean IoU 0.700)" in finding
    assert "farthest when it reads (2,4,7) (0.100)" in finding
    assert "(3,5,8) fits the ground truth best (IoU 0.600)" in finding
    rows = [{"engineering": "none", "miou": 0.41}, {"engineering": "crop", "miou": 0.52}]
    assert "'crop' gives the best mIoU (0.520) and 'none' the worst (0.410)" in (
        robustness.engineering_finding({"rows": rows}))
