"""Recompute the SSIM-calibrated severities of `distortions.SEVERITY_TABLE`.

Each photometric distortion is moved along its legacy path (`LEGACY_SEVERITY_TABLE`,
interpolated between its severities and extended past severity 5, within each parameter's
`LIMITS`) until the median SSIM of distorted and clean images reaches each of `SSIM_BANDS`.
``python -m clipseg_lib.experiments.severity_calibration`` prints the table for the 24 world test
scenes the committed one was calibrated on; tests check the committed table against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.metrics import structural_similarity

from clipseg_lib.analysis.distortions import (
    DISTORTIONS,
    GEOMETRIC_DISTORTIONS,
    LEGACY_SEVERITY_TABLE,
    SSIM_BANDS,
    distort_with,
)
from clipseg_lib.experiments.robustness import world_queries

PHOTOMETRIC = tuple(name for name in DISTORTIONS if name not in GEOMETRIC_DISTORTIONS)
LIMITS = {
    "sigma": (0.0, 200.0), "radius": (0.0, 30.0), "quality": (1, 100),
    "contrast": (0.02, 1.0), "brightness": (1.0, 3.0), "area_fraction": (0.0, 0.8),
    "hue_shift": (0.0, 0.5), "saturation_change": (0.0, 1.0),
}
"""The range each parameter stays in while the path is extended."""
PATH_END = 15.0
"""How far past severity 0 the legacy path is followed (5 is its last hand-set step)."""


def path_parameters(name: str, position: float) -> dict[str, float]:
    """The parameters at `position` (0..`PATH_END`) on distortion `name`'s legacy path."""
    parameters = {}
    for parameter, steps in LEGACY_SEVERITY_TABLE[name].items():
        values = np.asarray(steps, float)
        value = (np.interp(position, np.arange(values.size), values) if position <= 5
                 else values[5] + (position - 5) * (values[5] - values[4]))
        low, high = LIMITS[parameter]
        value = float(np.clip(value, low, high))
        parameters[parameter] = int(round(value)) if parameter == "quality" else value
    return parameters


def median_ssim(images: Sequence[np.ndarray], name: str, parameters: dict[str, float]) -> float:
    """The median SSIM of each image with its distorted copy (image i seeded i)."""
    return float(np.median([
        structural_similarity(image, distort_with(image, name, parameters, seed=index),
                              channel_axis=2, data_range=255)
        for index, image in enumerate(images)
    ]))


def calibrate(images: Sequence[np.ndarray], name: str, *, steps: int = 22
              ) -> list[tuple[dict[str, float], float]]:
    """Per band of `SSIM_BANDS` after the first: (parameters, median SSIM reached), by
    bisection on the path; the path's end where it cannot reach the band."""
    found = []
    for band in SSIM_BANDS[1:]:
        low, high = 0.0, PATH_END
        if median_ssim(images, name, path_parameters(name, high)) <= band:
            for _ in range(steps):
                middle = (low + high) / 2
                if median_ssim(images, name, path_parameters(name, middle)) > band:
                    low = middle
                else:
                    high = middle
        parameters = path_parameters(name, high)
        found.append((parameters, median_ssim(images, name, parameters)))
    return found


def world_scenes() -> list[np.ndarray]:
    """The 24 world test scenes (96 px, seed 0) the committed table was calibrated on."""
    return [query.scene.image for query in world_queries(24, seed=0, size=96)]


if __name__ == "__main__":
    scenes_ = world_scenes()
    for distortion in PHOTOMETRIC:
        print(distortion)
        for (found_parameters, reached), band in zip(calibrate(scenes_, distortion),
                                                     SSIM_BANDS[1:], strict=True):
            print(f"  SSIM {band:.2f}: {found_parameters} reaches {reached:.3f}")
