"""Deterministic, seeded image distortions at severities 0 (identity) to 5 (strong).

Severities sit on one scale across distortions (``scale="ssim"``, the default): for the
photometric distortions, severity s is the parameter at which the median SSIM
(``skimage.metrics.structural_similarity``, per channel) of the distorted image with the clean
one, over 24 synthetic-world test scenes of 96 px, is `SSIM_BANDS` [s]: 0.95 (slight: the
"slightly distorted" images of the study), 0.90, 0.80, 0.70 and 0.60 (strong but
recognisable), so that one severity means one amount of change whichever the distortion.
Where a distortion cannot go that far its severity 5 is its strongest setting (blur stops at
SSIM 0.65, colour jitter at 0.68, JPEG at 0.61 with quality 1), and JPEG's mildest setting,
quality 100, already gives 0.94 (chroma subsampling), so its severity 1 sits below 0.95.
The geometric distortions (rotation, zoom-in crop) keep their own steps: SSIM scores a moved
image as a different one. `clipseg_lib.experiments.severity_calibration` recomputes the
table. ``scale="legacy"`` keeps the earlier hand-set steps (`LEGACY_SEVERITY_TABLE`), on
which severity 1 ranged from SSIM 0.99 (brightness and contrast) and 0.98 (blur) down to 0.82
(JPEG at quality 50). ``SEVERITY_TABLE`` holds the parameter of each distortion per severity
(index = severity):

==================== ===================================================================
distortion           parameters
==================== ===================================================================
gaussian_noise       ``sigma``: standard deviation of additive noise, 0..255 intensity units
blur                 ``radius``: Gaussian blur radius in pixels
jpeg                 ``quality``: JPEG quality of one encode/decode round trip
rotation             ``degrees``: counter-clockwise rotation about the centre, black corners
scale_crop           ``zoom``: the central ``1 / zoom`` crop is resized back to full size
brightness_contrast  ``contrast`` and ``brightness`` factors (PIL ``ImageEnhance``, 1 = same)
occlusion            ``area_fraction``: area hidden by one grey rectangle at a seeded position
colour_jitter        ``hue_shift`` (fraction of the hue circle) and ``saturation_change``
                     (relative); both get a seeded sign and a seeded magnitude in
                     ``[0.5, 1] x`` the table value
==================== ===================================================================

The seed matters only for ``gaussian_noise``, ``occlusion`` and ``colour_jitter``; the
others are fixed functions of the severity. ``rotation`` and ``scale_crop`` are geometric:
:func:`distort_mask` is the transform :func:`distort` applied, for masks. Every reference a
distorted image's prediction is compared with (the ground truth, and the prediction on the
clean image) must go through it, else a rotated prediction is scored against an unrotated
reference and the number measures misalignment, not change.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

DISTORTIONS = (
    "gaussian_noise",
    "blur",
    "jpeg",
    "rotation",
    "scale_crop",
    "brightness_contrast",
    "occlusion",
    "colour_jitter",
)
GEOMETRIC_DISTORTIONS = ("rotation", "scale_crop")
MAX_SEVERITY = 5

SSIM_BANDS = (1.0, 0.95, 0.90, 0.80, 0.70, 0.60)
"""The median SSIM with the clean image that each severity (index) of a photometric
distortion is calibrated to."""
SEVERITY_SCALES = ("ssim", "legacy")

LEGACY_SEVERITY_TABLE: dict[str, dict[str, tuple[float, ...]]] = {
    "gaussian_noise": {"sigma": (0, 4, 8, 16, 28, 45)},
    "blur": {"radius": (0, 0.6, 1.2, 2.0, 3.2, 5.0)},
    "jpeg": {"quality": (100, 50, 30, 18, 10, 5)},
    "rotation": {"degrees": (0, 4, 8, 15, 25, 40)},
    "scale_crop": {"zoom": (1.0, 1.08, 1.18, 1.32, 1.5, 1.8)},
    "brightness_contrast": {
        "contrast": (1.0, 0.85, 0.7, 0.55, 0.4, 0.25),
        "brightness": (1.0, 1.08, 1.16, 1.28, 1.4, 1.6),
    },
    "occlusion": {"area_fraction": (0.0, 0.04, 0.09, 0.16, 0.25, 0.36)},
    "colour_jitter": {
        "hue_shift": (0.0, 0.03, 0.06, 0.1, 0.16, 0.25),
        "saturation_change": (0.0, 0.1, 0.2, 0.35, 0.5, 0.7),
    },
}
"""The hand-set steps of the first studies (``scale="legacy"``)."""

SEVERITY_TABLE: dict[str, dict[str, tuple[float, ...]]] = {
    "gaussian_noise": {"sigma": (0, 2.24, 3.3, 5.13, 6.98, 9.16)},
    "blur": {"radius": (0, 0.82, 1.22, 2.24, 3.88, 23.0)},
    "jpeg": {"quality": (100, 100, 90, 35, 9, 1)},
    "rotation": LEGACY_SEVERITY_TABLE["rotation"],
    "scale_crop": LEGACY_SEVERITY_TABLE["scale_crop"],
    "brightness_contrast": {
        "contrast": (1.0, 0.631, 0.469, 0.28, 0.166, 0.074),
        "brightness": (1.0, 1.215, 1.345, 1.56, 1.713, 1.835),
    },
    "occlusion": {"area_fraction": (0.0, 0.05, 0.115, 0.266, 0.48, 0.669)},
    "colour_jitter": {
        "hue_shift": (0.0, 0.065, 0.128, 0.269, 0.458, 0.5),
        "saturation_change": (0.0, 0.219, 0.419, 0.742, 1.0, 1.0),
    },
}
"""The SSIM-calibrated steps (``scale="ssim"``, the default)."""

OCCLUSION_GREY = 128


def _check_name_and_severity(name: str, severity: int) -> None:
    if name not in DISTORTIONS:
        raise ValueError(f"unknown distortion {name!r}; choose one of {DISTORTIONS}")
    if isinstance(severity, bool) or not isinstance(severity, int | np.integer):
        raise ValueError(f"severity must be an integer, got {severity!r}")
    if not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must lie in 0..{MAX_SEVERITY}, got {severity}")


def severity_parameters(name: str, severity: int, *, scale: str = "ssim") -> dict[str, float]:
    """The parameters of distortion `name` at `severity` on `scale` ("ssim" or "legacy")."""
    _check_name_and_severity(name, severity)
    if scale not in SEVERITY_SCALES:
        raise ValueError(f"unknown severity scale {scale!r}; choose one of {SEVERITY_SCALES}")
    table = SEVERITY_TABLE if scale == "ssim" else LEGACY_SEVERITY_TABLE
    return {parameter: values[severity] for parameter, values in table[name].items()}


def _rotate(image: Image.Image, degrees: float, resample: Image.Resampling) -> Image.Image:
    return image.rotate(degrees, resample=resample, fillcolor=0 if image.mode == "L" else (0, 0, 0))


def _scale_crop(image: Image.Image, zoom: float, resample: Image.Resampling) -> Image.Image:
    width, height = image.size
    crop_width, crop_height = width / zoom, height / zoom
    left, top = (width - crop_width) / 2, (height - crop_height) / 2
    box = (left, top, left + crop_width, top + crop_height)
    return image.resize((width, height), resample=resample, box=box)


def _gaussian_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, size=image.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _occlusion(image: np.ndarray, area_fraction: float, rng: np.random.Generator) -> np.ndarray:
    height, width = image.shape[:2]
    side_fraction = np.sqrt(area_fraction)
    box_height = max(1, round(side_fraction * height))
    box_width = max(1, round(side_fraction * width))
    top = int(rng.integers(0, height - box_height + 1))
    left = int(rng.integers(0, width - box_width + 1))
    occluded = image.copy()
    occluded[top : top + box_height, left : left + box_width] = OCCLUSION_GREY
    return occluded


def _colour_jitter(
    image: Image.Image, hue_shift: float, saturation_change: float, rng: np.random.Generator
) -> Image.Image:
    signs = rng.choice([-1.0, 1.0], size=2)
    magnitudes = rng.uniform(0.5, 1.0, size=2)
    hue_offset = signs[0] * magnitudes[0] * hue_shift
    saturation_factor = 1.0 + signs[1] * magnitudes[1] * saturation_change
    hue, saturation, value = (np.asarray(band) for band in image.convert("HSV").split())
    shifted_hue = np.mod(hue.astype(np.int64) + round(hue_offset * 256), 256).astype(np.uint8)
    scaled_saturation = np.clip(np.rint(saturation * saturation_factor), 0, 255).astype(np.uint8)
    bands = [Image.fromarray(band) for band in (shifted_hue, scaled_saturation, value)]
    return Image.merge("HSV", bands).convert("RGB")


def distort(image: np.ndarray, name: str, severity: int, *, seed: int = 0,
            scale: str = "ssim") -> np.ndarray:
    """Return a distorted copy of an ``(H, W, 3)`` uint8 RGB image, same shape and dtype.

    ``name`` is one of ``DISTORTIONS``; ``severity`` in ``0..5`` on ``scale`` (see
    `severity_parameters`; 0 returns an equal copy). The same ``seed`` always gives the same
    output. The geometry it applied is ``distort_mask(mask, name, severity)``: move every
    reference mask with it.
    """
    parameters = severity_parameters(name, severity, scale=scale)
    if severity == 0:
        _check_image(image)
        return image.copy()
    return distort_with(image, name, parameters, seed=seed)


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got shape {image.shape} "
            f"and dtype {image.dtype}"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must not be empty, got shape {image.shape}")


def distort_with(image: np.ndarray, name: str, parameters: dict[str, float], *,
                 seed: int = 0) -> np.ndarray:
    """`distort` with explicit parameters (the keys of ``SEVERITY_TABLE[name]``), for
    calibrating a scale."""
    _check_image(image)
    rng = np.random.default_rng(seed)
    picture = Image.fromarray(image)
    if name == "gaussian_noise":
        return _gaussian_noise(image, parameters["sigma"], rng)
    if name == "occlusion":
        return _occlusion(image, parameters["area_fraction"], rng)
    if name == "blur":
        distorted = picture.filter(ImageFilter.GaussianBlur(parameters["radius"]))
    elif name == "jpeg":
        distorted = _jpeg(picture, int(parameters["quality"]))
    elif name == "rotation":
        distorted = _rotate(picture, parameters["degrees"], Image.Resampling.BILINEAR)
    elif name == "scale_crop":
        distorted = _scale_crop(picture, parameters["zoom"], Image.Resampling.BILINEAR)
    elif name == "brightness_contrast":
        contrasted = ImageEnhance.Contrast(picture).enhance(parameters["contrast"])
        distorted = ImageEnhance.Brightness(contrasted).enhance(parameters["brightness"])
    elif name == "colour_jitter":
        distorted = _colour_jitter(
            picture, parameters["hue_shift"], parameters["saturation_change"], rng
        )
    else:
        raise ValueError(f"unknown distortion {name!r}; choose one of {DISTORTIONS}")
    return np.asarray(distorted, dtype=np.uint8).copy()


def distort_mask(mask: np.ndarray, name: str, severity: int, *, seed: int = 0) -> np.ndarray:
    """Move an ``(H, W)`` bool mask (ground truth, or a prediction on the clean image) with
    the geometry of :func:`distort`.

    ``rotation`` and ``scale_crop`` apply the same transform as :func:`distort` with
    nearest-neighbour sampling (pixels rotated in from outside are background). Photometric
    distortions return an equal copy; so does ``occlusion``, since the hidden object is still
    there. ``seed`` is accepted so that calls mirror :func:`distort`; geometry does not use it,
    and the geometric steps are the same on both severity scales.
    """
    _check_name_and_severity(name, severity)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.ndim != 2:
        raise ValueError(
            f"mask must be an (H, W) bool array, got shape {np.shape(mask)} and dtype "
            f"{getattr(mask, 'dtype', type(mask).__name__)}"
        )
    if severity == 0 or name not in GEOMETRIC_DISTORTIONS:
        return mask.copy()
    picture = Image.fromarray(mask.astype(np.uint8) * 255)
    if name == "rotation":
        moved = _rotate(picture, SEVERITY_TABLE[name]["degrees"][severity],
                        Image.Resampling.NEAREST)
    else:
        moved = _scale_crop(picture, SEVERITY_TABLE[name]["zoom"][severity],
                            Image.Resampling.NEAREST)
    return np.asarray(moved) > 127
