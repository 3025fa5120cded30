"""The mitigations as plain functions: hand-made probability maps and fake predictors whose
answers are known, so every expected number is computed by hand."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib.experiments import mitigation_study, mitigations
from clipseg_lib.experiments.mitigations import Transform
from clipseg_lib.model.images import load_image

matplotlib.use("Agg")


def predict_with_tta(segmenter, image, prompts, transforms=mitigations.DEFAULT_TRANSFORMS):
    """Test-time augmentation as notebook 09 computes it: every view, then their average."""
    views = mitigations.predict_views(segmenter, image, prompts, transforms)
    return mitigations.average_views(views)


class PixelwiseSegmenter:
    """probability = red channel / 255 at every pixel: moves exactly with flips and shifts."""

    def predict(self, image, prompts):
        pixels = load_image(image)
        count = 1 if isinstance(prompts, str) else len(prompts)
        return np.stack([pixels[..., 0] / 255.0] * count).astype(np.float32)


class LeftHalfSegmenter:
    """Always 1 on the left half of the image and 0 on the right, whatever the image shows."""

    def predict(self, image, prompts):
        height, width = load_image(image).shape[:2]
        probs = np.zeros((1, height, width), np.float32)
        probs[:, :, : width // 2] = 1.0
        return probs


class PromptLengthSegmenter:
    """A constant map per prompt: len(prompt) / 100 everywhere."""

    def predict(self, encoding, prompts):
        return np.stack([np.full((4, 5), len(p) / 100, np.float32) for p in prompts])


def test_gating_zeroes_exactly_the_maps_below_the_threshold():
    probs = np.zeros((3, 4, 4), np.float32)
    probs[0, 1, 1] = 0.3
    probs[1, 2, 2] = 0.8
    probs[2] = 0.5
    gated = mitigations.gate_by_presence(probs, 0.5)
    assert not gated[0].any()
    np.testing.assert_array_equal(gated[1:], probs[1:])
    assert gated.dtype == np.float32
    assert not mitigations.gate_by_presence(probs[0], 0.31).any()
    np.testing.assert_array_equal(mitigations.gate_by_presence(probs[0], 0.3), probs[0])


def test_balanced_accuracy_by_hand():
    scores = np.array([0.1, 0.6, 0.2, 0.9, 0.4])
    labels = np.array([False, False, True, True, True])
    # present recall 2/3 (0.9 and 0.4 >= 0.3), absent recall 1/2 (only 0.1 < 0.3)
    assert mitigations.balanced_accuracy(scores, labels, 0.3) == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_calibrated_threshold_separates_two_well_separated_sets():
    rng = np.random.default_rng(0)
    absent, present = rng.uniform(0.0, 0.3, 50), rng.uniform(0.7, 1.0, 50)
    scores = np.r_[absent, present]
    labels = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    threshold = mitigations.calibrate_presence_threshold(scores, labels)
    assert absent.max() < threshold < present.min()
    assert mitigations.balanced_accuracy(scores, labels, threshold) == 1.0


def test_calibration_with_one_score_per_class_is_their_midpoint():
    scores, labels = np.array([0.2, 0.6]), np.array([False, True])
    assert mitigations.calibrate_presence_threshold(scores, labels) == pytest.approx(0.4)


def test_a_gate_is_calibrated_above_the_mask_threshold_so_it_can_change_masks():
    # Absent maxima up to 0.45, present from 0.55: unrestricted, the best gate (0.5) equals the
    # mask threshold and can empty no mask; above it, the best (0.575) empties one present map.
    scores = np.array([0.10, 0.20, 0.30, 0.45, 0.55, 0.60, 0.90, 0.95])
    labels = np.array([False] * 4 + [True] * 4)
    assert mitigations.calibrate_presence_threshold(scores, labels) == pytest.approx(0.5)
    gate = mitigations.calibrate_presence_threshold(scores, labels, above=0.5)
    assert gate == pytest.approx(0.575)
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 0, 0], maps[1, 0, 0] = 0.55, 0.9
    gated = mitigations.gate_by_presence(maps, gate) > 0.5
    assert not gated[0].any() and gated[1].any()
    with pytest.raises(ValueError, match="no score lies above 0.99"):
        mitigations.calibrate_presence_threshold(scores, labels, above=0.99)


def test_world_templates_are_minis_composite_templates():
    assert mitigations.WORLD_TEMPLATES == ("{}", "a {}", "the {}")
    assert mitigations.template_prompts("orange star", mitigations.WORLD_TEMPLATES) == [
        "orange star", "an orange star", "the orange star"]


def test_negation_by_complement_by_hand():
    probs_x = np.array([[0.0, 0.5], [1.0, 0.2]], np.float32)
    foreground = np.array([[1.0, 1.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(
        mitigations.negate_by_complement(probs_x, foreground), [[1.0, 0.5], [0.0, 0.0]]
    )


def test_templates_fill_the_phrase_with_the_right_article():
    assert mitigations.template_prompts("orange star") == [
        "orange star", "an orange star", "the orange star", "a photo of an orange star",
    ]


def test_ensemble_is_the_mean_of_the_template_maps():
    probs = mitigations.ensemble_prompts(PromptLengthSegmenter(), None, "red star", ["{}", "a {}"])
    assert probs.shape == (4, 5)
    np.testing.assert_allclose(probs, (0.08 + 0.10) / 2)


def test_foreground_is_the_pixelwise_maximum_of_the_generic_prompts():
    probs = mitigations.foreground_probs(PromptLengthSegmenter(), None, ["ab", "abcd", "a"])
    np.testing.assert_allclose(probs, 0.04)


@pytest.mark.parametrize("transform", [
    Transform(), Transform(flip=True), Transform(shift=(0.1, -0.2)),
    Transform(flip=True, shift=(-0.25, 0.05)),
])
def test_inverting_a_transform_gives_back_the_covered_pixels(transform):
    probs = np.random.default_rng(1).random((2, 20, 30))
    moved = np.stack([transform.apply(p) for p in probs])
    back, covered = transform.invert(moved)
    dy, dx = round(transform.shift[0] * 20), round(transform.shift[1] * 30)
    assert covered.sum() == (20 - abs(dy)) * (30 - abs(dx))
    np.testing.assert_array_equal(back[:, covered], probs[:, covered])


def test_tta_of_an_equivariant_predictor_equals_the_plain_prediction():
    image = np.random.default_rng(2).integers(0, 256, (24, 36, 3), dtype=np.uint8)
    segmenter = PixelwiseSegmenter()
    plain = segmenter.predict(image, ["x", "y"])
    augmented = predict_with_tta(segmenter, image, ["x", "y"])
    assert augmented.shape == (2, 24, 36)
    np.testing.assert_allclose(augmented, plain, atol=1e-6)


def test_tta_averages_a_map_that_ignores_the_image_over_its_mirror():
    image = np.zeros((8, 10, 3), np.uint8)
    augmented = predict_with_tta(
        LeftHalfSegmenter(), image, "x", [Transform(), Transform(flip=True)]
    )
    np.testing.assert_allclose(augmented, 0.5)


def test_the_identity_view_is_the_plain_prediction_and_views_average_to_tta():
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    transforms = [Transform(flip=True), Transform()]
    views = mitigations.predict_views(LeftHalfSegmenter(), image, "x", transforms)
    np.testing.assert_array_equal(views[1][0], LeftHalfSegmenter().predict(image, "x"))
    assert views[1][1].all()
    np.testing.assert_array_equal(
        mitigations.average_views(views),
        predict_with_tta(LeftHalfSegmenter(), image, "x", transforms),
    )


def test_bad_inputs_raise_value_errors_naming_them():
    maps = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        mitigations.gate_by_presence(maps, 1.5)
    with pytest.raises(ValueError, match="probs"):
        mitigations.gate_by_presence(np.zeros((4, 4), int), 0.5)
    with pytest.raises(ValueError, match="probs_x"):
        mitigations.negate_by_complement(maps + 2, maps)
    with pytest.raises(ValueError, match="same shape"):
        mitigations.negate_by_complement(maps, maps[0])
    with pytest.raises(ValueError, match="labels"):
        mitigations.calibrate_presence_threshold(np.array([0.1, 0.2]), np.array([True, True]))
    with pytest.raises(ValueError, match="labels"):
        mitigations.balanced_accuracy(np.array([0.1, 0.2]), np.array([0, 1]), 0.5)
    with pytest.raises(ValueError, match="templates"):
        mitigations.template_prompts("red star", ["a photo"])
    with pytest.raises(ValueError, match="phrase"):
        mitigations.template_prompts("  ")
    with pytest.raises(ValueError, match="transforms"):
        predict_with_tta(PixelwiseSegmenter(), np.zeros((8, 8, 3), np.uint8), "x", [])
    with pytest.raises(ValueError, match="uncovered"):
        predict_with_tta(
            PixelwiseSegmenter(), np.zeros((8, 8, 3), np.uint8), "x", [Transform(shift=(0.25, 0))]
        )
    with pytest.raises(ValueError, match="foreground prompt"):
        mitigations.foreground_probs(PromptLengthSegmenter(), None, [])


def test_before_after_rows_pair_the_cases_and_judge_the_change():
    before = [0.2, 0.4, 0.6, 0.8] * 5
    rows = mitigation_study.before_after_rows(
        {"fix": (before, [v + 0.1 for v in before]), "noise": (before, before[::-1])}, seed=0)
    assert [row["comparison"] for row in rows] == ["fix", "noise"]
    assert rows[0]["before"]["mean"] == pytest.approx(0.5)
    assert rows[0]["after"]["n"] == 20
    assert rows[0]["change"]["mean"] == pytest.approx(0.1)
    assert rows[0]["change"]["ci_low"] == pytest.approx(0.1)
    assert rows[1]["change"]["ci_low"] < 0 < rows[1]["change"]["ci_high"]
    finding = mitigation_study.mitigation_finding(rows, model="mini").splitlines()
    assert finding[0].startswith("On mini, fix helps: 0.500 [")
    assert "change 0.100 [0.100, 0.100] (n=20)." in finding[0]
    assert finding[1].startswith("On mini, noise makes no detectable difference")
    figure = mitigation_study.before_after_figure(rows)
    assert len(figure.axes[0].patches) == 4
    plt.close(figure)
    with pytest.raises(ValueError, match="fix: before \\(2\\) and after \\(1\\)"):
        mitigation_study.before_after_rows({"fix": ([0.1, 0.2], [0.3])})
    with pytest.raises(ValueError, match="empty"):
        mitigation_study.before_after_rows({})
