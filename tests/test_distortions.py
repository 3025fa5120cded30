from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clipseg_lib.analysis.distortions import (
    DISTORTIONS,
    SEVERITY_TABLE,
    SSIM_BANDS,
    distort,
    distort_mask,
    severity_parameters,
)
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.experiments import severity_calibration

SEEDED_DISTORTIONS = ("gaussian_noise", "occlusion", "colour_jitter")

images = arrays(
    np.uint8,
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3)),
)
names = st.sampled_from(DISTORTIONS)
severities = st.integers(0, 5)
seeds = st.integers(0, 2**32 - 1)


def textured_scene(size: int = 48) -> np.ndarray:
    """Gradients, a bright square and mild texture: edges and colour for every distortion."""
    rows, cols = np.mgrid[0:size, 0:size]
    scene = np.stack([cols * 4, rows * 4, (rows + cols) * 2], axis=-1).astype(np.int64)
    scene[10:30, 14:36] = (230, 60, 40)
    texture = np.random.default_rng(0).integers(-20, 21, scene.shape)
    return np.clip(scene + texture, 0, 255).astype(np.uint8)


def mean_abs_difference(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean(np.abs(first.astype(np.float64) - second.astype(np.float64))))


def white_square_on_black() -> tuple[np.ndarray, np.ndarray]:
    mask = np.zeros((64, 64), dtype=bool)
    mask[18:42, 12:46] = True
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[mask] = 255
    return image, mask


@given(images, names, severities, seeds)
@settings(max_examples=60, deadline=None)
def test_distort_keeps_shape_and_dtype(
    image: np.ndarray, name: str, severity: int, seed: int
) -> None:
    distorted = distort(image, name, severity, seed=seed)
    assert distorted.shape == image.shape
    assert distorted.dtype == np.uint8


@given(images, names, seeds)
@settings(max_examples=40, deadline=None)
def test_severity_zero_returns_an_equal_copy(image: np.ndarray, name: str, seed: int) -> None:
    original = image.copy()
    distorted = distort(image, name, 0, seed=seed)
    np.testing.assert_array_equal(distorted, original)
    distorted[...] = 0 if original.max() > 0 else 1
    np.testing.assert_array_equal(image, original)


@given(images, names, st.integers(1, 5), seeds)
@settings(max_examples=40, deadline=None)
def test_same_seed_gives_same_output(
    image: np.ndarray, name: str, severity: int, seed: int
) -> None:
    first = distort(image, name, severity, seed=seed)
    np.testing.assert_array_equal(first, distort(image, name, severity, seed=seed))


# Two seeds can collide by chance (same occluder position: about 1 in 400 at severity 5), so the
# examples are derandomized to keep the test reproducible.
@given(st.sampled_from(SEEDED_DISTORTIONS), st.integers(1, 5), seeds)
@settings(max_examples=30, deadline=None, derandomize=True, database=None)
def test_different_seeds_give_different_output(name: str, severity: int, seed: int) -> None:
    image = textured_scene()
    first = distort(image, name, severity, seed=seed)
    assert not np.array_equal(first, distort(image, name, severity, seed=seed + 1))


@pytest.mark.parametrize("name", DISTORTIONS)
def test_every_distortion_changes_the_image_at_severity_one(name: str) -> None:
    image = textured_scene()
    assert mean_abs_difference(distort(image, name, 1), image) > 0.5


@pytest.mark.parametrize("name", ["gaussian_noise", "blur", "jpeg"])
def test_change_grows_with_severity(name: str) -> None:
    image = textured_scene()
    changes = [mean_abs_difference(distort(image, name, level), image) for level in range(6)]
    assert changes[0] == 0.0
    assert all(later > earlier for earlier, later in zip(changes, changes[1:], strict=False))


def test_gaussian_noise_has_the_tabled_sigma() -> None:
    image = np.full((100, 100, 3), 128, dtype=np.uint8)
    noise = distort(image, "gaussian_noise", 3).astype(np.float64) - 128
    assert noise.std() == pytest.approx(SEVERITY_TABLE["gaussian_noise"]["sigma"][3], rel=0.05)


def test_occlusion_hides_the_tabled_area_with_grey() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    occluded = distort(image, "occlusion", 5, seed=3)
    hidden_fraction = np.mean(np.all(occluded == 128, axis=-1))
    # the box's sides are whole pixels: sqrt(0.669) * 100 = 81.8 -> 82, 0.6724 of the image
    assert hidden_fraction == pytest.approx(SEVERITY_TABLE["occlusion"]["area_fraction"][5],
                                            abs=0.005)


def test_rotation_moves_a_pixel_to_the_expected_place() -> None:
    image = np.zeros((41, 41, 3), dtype=np.uint8)
    image[20, 35] = 255  # 15 px right of the centre
    rotated = distort(image, "rotation", 5)  # 40 degrees counter-clockwise
    row, col = np.unravel_index(np.argmax(rotated[..., 0]), rotated.shape[:2])
    angle = np.deg2rad(SEVERITY_TABLE["rotation"]["degrees"][5])
    assert row == pytest.approx(20 - 15 * np.sin(angle), abs=1)
    assert col == pytest.approx(20 + 15 * np.cos(angle), abs=1)


@pytest.mark.parametrize("name", ["rotation", "scale_crop"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_distort_mask_follows_the_image_geometry(name: str, severity: int) -> None:
    image, mask = white_square_on_black()
    image_mask = distort(image, name, severity)[..., 0] > 127
    moved_mask = distort_mask(mask, name, severity)
    assert not np.array_equal(moved_mask, mask)
    assert np.sum(image_mask != moved_mask) <= 8


@pytest.mark.parametrize(
    "name", [name for name in DISTORTIONS if name not in ("rotation", "scale_crop")]
)
def test_distort_mask_leaves_photometric_and_occlusion_masks_alone(name: str) -> None:
    _, mask = white_square_on_black()
    moved = distort_mask(mask, name, 5, seed=7)
    np.testing.assert_array_equal(moved, mask)
    assert moved is not mask


def test_scale_crop_zooms_into_the_centre() -> None:
    centred_square = np.zeros((64, 64), dtype=bool)
    centred_square[24:40, 24:40] = True
    zoomed = distort_mask(centred_square, "scale_crop", 5)
    zoom = SEVERITY_TABLE["scale_crop"]["zoom"][5]
    rows, cols = np.nonzero(zoomed)
    assert np.ptp(rows) + 1 == pytest.approx(16 * zoom, abs=1)
    assert np.ptp(cols) + 1 == pytest.approx(16 * zoom, abs=1)
    assert zoomed.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert rows.mean() == pytest.approx(31.5, abs=0.5)
    assert cols.mean() == pytest.approx(31.5, abs=0.5)


def test_distort_rejects_bad_input() -> None:
    image = textured_scene(8)
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(image, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        distort(image, "blur", 6)
    with pytest.raises(ValueError, match="severity"):
        distort(image, "blur", -1)
    with pytest.raises(ValueError, match="severity"):
        distort(image, "blur", 1.0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        distort(image[..., 0], "blur", 1)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        distort(image.astype(np.float32), "blur", 1)


def test_distort_mask_rejects_non_bool_masks() -> None:
    with pytest.raises(ValueError, match="bool"):
        distort_mask(np.ones((4, 4), dtype=np.uint8), "rotation", 1)
    with pytest.raises(ValueError, match="unknown distortion"):
        distort_mask(np.ones((4, 4), dtype=bool), "fog", 1)


@pytest.mark.parametrize("name", ["rotation", "scale_crop"])
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_a_perfect_predictor_matches_both_moved_references(name: str, severity: int) -> None:
    # A red box on black; the "perfect predictor" reads the red channel of what it is shown.
    scene = np.zeros((96, 96, 3), np.uint8)
    scene[20:50, 30:80, 0] = 255
    target = scene[..., 0] > 127
    clean_prediction = scene[..., 0] > 127
    distorted_prediction = distort(scene, name, severity)[..., 0] > 127
    moved_truth = distort_mask(target, name, severity)
    moved_clean = distort_mask(clean_prediction, name, severity)
    assert iou(distorted_prediction, moved_truth) == pytest.approx(1.0, abs=2e-3)
    assert iou(distorted_prediction, moved_clean) == pytest.approx(1.0, abs=2e-3)
    # Without moving the clean prediction the same perfect answer would look changed.
    assert iou(distorted_prediction, clean_prediction) < 0.92


@pytest.mark.slow
def test_the_ssim_scale_puts_every_photometric_severity_in_its_band():
    # The committed table against its recomputation on the 24 world scenes it came from:
    # each severity within 0.02 of its band (JPEG quality moves in whole steps: 9 gives 0.685),
    # or at the end of its path (then above it).
    scenes = severity_calibration.world_scenes()
    for name in severity_calibration.PHOTOMETRIC:
        for severity in range(1, 6):
            reached = severity_calibration.median_ssim(
                scenes, name, severity_parameters(name, severity))
            band = SSIM_BANDS[severity]
            at_end = severity_parameters(name, severity) == severity_calibration.path_parameters(
                name, severity_calibration.PATH_END)
            mildest = name == "jpeg" and severity == 1  # quality 100 already gives 0.937
            assert abs(reached - band) < 0.02 or ((at_end or mildest) and reached > band), name
    # Slight means slight for every distortion now; on the legacy scale JPEG's severity 1 was
    # SSIM 0.82 while blur's was 0.98.
    legacy = {name: severity_calibration.median_ssim(
        scenes, name, severity_parameters(name, 1, scale="legacy")) for name in ("jpeg", "blur")}
    assert legacy["jpeg"] < 0.83 and legacy["blur"] > 0.97


def test_the_scales_differ_only_for_photometric_distortions():
    image = textured_scene()
    for name in DISTORTIONS:
        same = np.array_equal(distort(image, name, 2), distort(image, name, 2, scale="legacy"))
        assert same == (name in ("rotation", "scale_crop")), name
    with pytest.raises(ValueError, match="unknown severity scale 'psnr'"):
        distort(image, "blur", 1, scale="psnr")
