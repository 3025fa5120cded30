"""The robustness notebooks' shared pieces on a tiny random CLIPSeg (12 backbone layers, like
ViT-B/16, so the poster's extract-layer triples apply): case selection, the sweep's cells and
rows, the sentences generated from the numbers, figures and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib import load_segmenter, world
from clipseg_lib.analysis.distortions import distort, distort_mask
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.experiments import cases, inputs, robustness, robustness_figures
from clipseg_lib.model.segmenter import Segmenter

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def segmenter(tiny_model_dir) -> Segmenter:
    """conftest's seeded random CLIPSeg: 12 vision layers of width 32 on 32 x 32 inputs."""
    return load_segmenter(tiny_model_dir)


@pytest.fixture(scope="module")
def queries() -> list[world.Query]:
    return robustness.world_queries(3, seed=0)


def sweep(values: dict[tuple[str, int], tuple[list[float], list[float]]]) -> list[dict]:
    """Sweep rows from per-case (iou_gt, iou_vs_clean) lists."""
    scores = {cell: {"iou_gt": gt, "iou_vs_clean": clean} for cell, (gt, clean) in values.items()}
    return robustness.sweep_rows(scores, seed=0)


def test_world_queries_cycle_through_kinds():
    kinds = [query.kind for query in robustness.world_queries(5, seed=1)]
    assert kinds == ["composite", "referring", "composite", "referring", "composite"]


def test_sweep_cells_add_the_clean_input_and_sort_severities():
    assert robustness.sweep_cells(["blur", "rotation"], [5, 1]) == [
        ("blur", 0), ("blur", 1), ("blur", 5), ("rotation", 0), ("rotation", 1), ("rotation", 5)]
    scores = robustness.empty_scores(["jpeg"], [0, 2])
    assert scores == {("jpeg", 0): {"iou_gt": [], "iou_vs_clean": []},
                      ("jpeg", 2): {"iou_gt": [], "iou_vs_clean": []}}


def test_sweep_rows_hold_estimates_and_the_per_case_values():
    rows = sweep({("blur", 0): ([0.5, 0.7, 0.9], [1.0, 1.0, 1.0]),
                  ("blur", 1): ([0.4, 0.6, 0.8], [0.8, 0.9, 1.0])})
    assert [(row["distortion"], row["severity"]) for row in rows] == [("blur", 0), ("blur", 1)]
    assert rows[0]["iou_vs_clean"] == {"mean": 1.0, "n": 3, "ci_low": 1.0, "ci_high": 1.0}
    assert rows[1]["iou_gt"]["mean"] == pytest.approx(0.6)
    assert rows[1]["iou_gt"]["n"] == 3
    low, high = rows[1]["iou_gt"]["ci_low"], rows[1]["iou_gt"]["ci_high"]
    assert (low, high) == pytest.approx((0.6 - 0.4968, 0.6 + 0.4968), abs=1e-4)  # 3 values: t
    assert rows[1]["per_case"] == {"iou_gt": [0.4, 0.6, 0.8], "iou_vs_clean": [0.8, 0.9, 1.0]}
    photo_only = robustness.sweep_rows({("jpeg", 0): {"iou_gt": [], "iou_vs_clean": [1.0]}})
    assert photo_only[0]["iou_gt"] is None


def test_severity_table_and_finding_judge_each_distortion_on_paired_intervals():
    clean = [0.6, 0.7, 0.8, 0.9] * 5
    rows = sweep({
        ("blur", 0): (clean, [1.0] * 20), ("blur", 1): (clean, [0.95, 0.97] * 10),
        ("jpeg", 0): (clean, [1.0] * 20), ("jpeg", 1): ([v - 0.2 for v in clean], [0.5, 0.7] * 10),
    })
    table = robustness.severity_table(rows, "iou_gt")
    assert [row["distortion"] for row in table] == ["blur", "jpeg"]
    assert table[1]["severity 1"]["mean"] == pytest.approx(0.55)
    finding = robustness.distortion_finding(rows, what="input image")
    assert "0.750 [" in finding
    assert "lowers it for jpeg (change jpeg -0.200 [-0.200, -0.200] (n=20))" in finding
    assert "above 0.9) for blur; jpeg moves them most (0.600 [" in finding
    with pytest.raises(ValueError, match="metric"):
        robustness.severity_table(rows, "miou")


def test_engineering_finding_credits_only_what_the_paired_interval_shows():
    none = [0.2, 0.3, 0.1, 0.25] * 10
    per_case = {"none": none, "crop": [v + 0.5 for v in none],
                "blur_highlight": [v + d for v, d in zip(none, [0.05, -0.05] * 20, strict=True)]}
    finding = robustness.engineering_finding(per_case)
    assert "cropping to the object raises the mIoU (crop - none: 0.500 [0.500, 0.500]" in finding
    assert "dimming the background does not detectably change the mIoU" in finding
    with pytest.raises(ValueError, match="'none' and 'crop'"):
        robustness.engineering_finding({"blur": none})


def test_one_shot_queries_keep_the_support_object_in_view():
    kept = robustness.one_shot_queries(3, seed=0, distortions=["scale_crop"], severities=[5])
    assert all(query.kind == "image" for query in kept)
    assert all(distort_mask(q.support_mask, "scale_crop", 5).any() for q in kept)
    prompt = robustness.distorted_prompt(kept[0], "scale_crop", 5, seed=0)
    assert np.array_equal(prompt.mask, distort_mask(kept[0].support_mask, "scale_crop", 5))


def test_image_groups_share_one_encoding_per_image(queries):
    image = queries[0].scene.image
    shared = [cases.Case(image, prompt, None, "shared.png") for prompt in ("red", "a circle")]
    groups = inputs.image_groups([*shared, queries[1], queries[0]])
    assert [len(members) for _, members in groups] == [3, 1]
    assert groups[0][0] is image
    assert inputs.image_groups([]) == []


def test_prompts_of_one_dataset_image_are_resampled_together(queries):
    # Dataset mode: 10 images with 4 prompts each, the prompts of an image scoring alike.
    images = [np.zeros((8, 8, 3), np.uint8) + level for level in range(10)]
    asked = [cases.Case(image, f"thing {k}", np.ones((8, 8), bool), f"img{i}")
             for i, image in enumerate(images) for k in range(4)]
    values = np.repeat(np.linspace(0.3, 0.9, 10), 4).tolist()
    scores = {("blur", 0): {"iou_gt": values, "iou_vs_clean": [1.0] * 40},
              ("blur", 1): {"iou_gt": [v - 0.1 for v in values], "iou_vs_clean": values}}
    alone = robustness.sweep_rows(scores, seed=0)
    clustered = robustness.sweep_rows(scores, seed=0, questions=asked)
    assert clustered[1]["images"]["iou_gt"] == [i for i in range(10) for _ in range(4)]
    width = {name: rows[1]["iou_gt"]["ci_high"] - rows[1]["iou_gt"]["ci_low"]
             for name, rows in (("alone", alone), ("clustered", clustered))}
    # 10 independent images, not 40 cases: about twice as wide.
    assert 1.6 < width["clustered"] / width["alone"] < 2.4
    means = robustness.mean_table({(3, 7, 9): {"iou_gt": values}}, questions=asked)
    assert means[0]["iou_gt"] == clustered[0]["iou_gt"]
    with pytest.raises(ValueError, match="40 iou_gt scores in blur severity 0 for 3 questions"):
        robustness.sweep_rows(scores, questions=[*queries])


def test_layer_tables_and_findings(segmenter):
    ious = {(3, 6, 9): {"iou_vs_reference": [0.9, 0.8, 0.7], "iou_gt": [0.5, 0.6, 0.7]},
            (2, 4, 7): {"iou_vs_reference": [0.1, 0.2, 0.0], "iou_gt": [0.1, 0.1, 0.2]},
            (3, 7, 9): {"iou_vs_reference": [1.0, 1.0, 1.0], "iou_gt": [0.4, 0.5, 0.6]}}
    poster = robustness.prompt_table({k: v["iou_vs_reference"] for k, v in ious.items()}, 2)
    assert poster[0] == {"extract_layers": "(3,6,9)", "Prompt 1": 0.9, "Prompt 2": 0.8}
    means = robustness.mean_table(ious)
    assert means[1]["iou_vs_reference"]["mean"] == pytest.approx(0.1)
    assert means[1]["iou_gt"]["n"] == 3
    finding = robustness.extract_layer_finding(means, reference=(3, 7, 9),
                                               measure="iou_vs_reference")
    assert "closest when the decoder reads (3,6,9) (0.800 [" in finding
    assert "farthest when it reads (2,4,7) (0.100 [" in finding
    released = robustness.released_layers_finding(ious, model="mini", trained_layers=(3, 6, 9))
    assert "says (3,6,9), the original repository's training config" in released
    assert "a paired difference of 0.100 [0.100, 0.100] (n=3)" in released
    assert released.endswith("the ground truth prefers (3,6,9).")
    assert robustness.check_triples(segmenter, [[3, 7, 9]]) == [(3, 7, 9)]


@pytest.mark.parametrize(("call", "named"), [
    (lambda s: robustness.sweep_cells(["fog"], [1]), "fog"),
    (lambda s: robustness.sweep_cells(["blur"], [6]), "6"),
    (lambda s: robustness.sweep_cells([], [1]), "distortions"),
    (lambda s: robustness.check_triples(s, [(3, 7, 12)]), "(3, 7, 12)"),
    (lambda s: robustness.check_triples(s, [(3, 7)]), "(3, 7)"),
    (lambda s: robustness.one_shot_queries(0, seed=0), "n_cases"),
])
def test_bad_parameters_raise_value_error_naming_them(segmenter, call, named):
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        call(segmenter)


def test_support_that_leaves_the_image_is_refused():
    query = world.make_query("image", 3)
    edge = np.zeros_like(query.support_mask)
    edge[0, 0] = True
    corner = cases.Case(query.support_image, "corner", edge, "corner.png")
    with pytest.raises(ValueError, match="leaves the image"):
        robustness.distorted_prompt(corner, "scale_crop", 5, seed=0)


@pytest.fixture
def close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def test_figures_have_a_panel_per_case_and_setting(queries, close_figures):
    rows = sweep({(name, level): ([0.5, 0.6], [1.0, 0.9]) for name in ("blur", "jpeg")
                  for level in (0, 1)})
    curves = robustness_figures.severity_curves(rows, title="t")
    assert [len(ax.lines) for ax in curves.axes] == [2, 2]
    assert [len(ax.collections) for ax in curves.axes] == [2, 2]  # the interval bands
    empty = np.zeros_like(queries[0].target)
    answered = [(query, {(3, 6, 9): empty, (3, 7, 9): query.target}) for query in queries[:2]]
    grid = robustness_figures.extract_layer_grid(answered, triples=[(3, 6, 9)])
    assert len(grid.axes) == 3 * 2
    assert [ax.get_title() for ax in grid.axes[2:]] == ["(3,6,9): IoU 0.00"] * 2 + [
        "(3,7,9): IoU 1.00"] * 2
    with pytest.raises(ValueError, match=r"question 1 has no masks for extract layers \[\(2,"):
        robustness_figures.extract_layer_grid(answered, triples=[(2, 4, 7)])
    target = queries[0].target
    masks = {("blur", 0): target, ("blur", 1): distort_mask(target, "blur", 1), ("blur", 5): empty}
    examples = robustness_figures.distortion_examples(queries[0], masks, distortions=["blur"],
                                                      severities=[1, 5])
    assert [ax.get_title() for ax in examples.axes] == [
        "clean\nIoU 1.00", "blur 1\nIoU 1.00", "blur 5\nIoU 0.00"]
    one_shot = robustness.one_shot_queries(1, seed=0, distortions=["blur"], severities=[1])
    masks = {(name, level): one_shot[0].target if level == 0 else np.zeros_like(target)
             for name in ("blur", "jpeg") for level in (0, 1)}
    prompt_examples = robustness_figures.prompt_distortion_examples(
        one_shot[0], masks, distortions=["blur", "jpeg"], severities=[1])
    assert len(prompt_examples.axes) == 2 * 2 * 2
    assert [ax.get_title() for ax in prompt_examples.axes[:4]] == [
        "support, clean", "prediction\nIoU 1.00", "support, blur 1", "prediction\nIoU 0.00"]


@pytest.mark.slow
def test_on_mini_rotation_is_stable_once_the_clean_prediction_moves_with_the_image():
    mini = load_segmenter("mini")
    aligned, unaligned = [], []
    for query in robustness.world_queries(8, seed=0):
        clean = mini.predict(query.scene.image, query.prompt)[0] > 0.5
        rotated = mini.predict(distort(query.scene.image, "rotation", 1), query.prompt)[0] > 0.5
        aligned.append(iou(rotated, distort_mask(clean, "rotation", 1)))
        unaligned.append(iou(rotated, clean))
    # The numbers: 0.797 against the moved clean mask, 0.558 against the unmoved one.
    assert np.mean(aligned) == pytest.approx(0.797, abs=0.005)
    assert np.mean(unaligned) == pytest.approx(0.558, abs=0.005)
