"""What a segmenter can be asked for: text, an image prompt, a text-image mix, or an embedding.

A prompt list may mix all four kinds. `ImagePrompt` carries the paper's visual prompt
engineering (Lüddecke & Ecker 2022, Sec. 4.3): the support image is cropped to the object
with some context, and the background is blurred and darkened so CLIP's image embedding
describes the object rather than the scene. Their best variant, crop + blur + background
intensity 0.1, is the default here.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from clipseg_lib.model.images import ImageLike, load_image

#: Visual prompt engineering variants: crop to the object or not, background intensity
#: (1.0 keeps it, 0.1 darkens it to a tenth), background blur radius in pixels of a
#: 224-pixel crop (scaled with the image).
ENGINEERING = {
    "none": {"crop": False, "background": 1.0, "blur": 0.0},
    "crop": {"crop": True, "background": 1.0, "blur": 0.0},
    "blur_highlight": {"crop": False, "background": 0.1, "blur": 3.0},
    "crop_blur_highlight": {"crop": True, "background": 0.1, "blur": 3.0},
}
DEFAULT_ENGINEERING = "crop_blur_highlight"
#: Context kept around the object when cropping, as a fraction of its box size per side.
CROP_CONTEXT = 0.1


@dataclass(frozen=True)
class ImagePrompt:
    """A one-shot prompt: a support image and, optionally, the mask of the object meant.

    `image` is anything `load_image` accepts; `mask` a bool (H, W) array of the same size.
    Without a mask the whole image is the prompt and engineering is skipped.
    """

    image: ImageLike
    mask: np.ndarray | None = None
    engineering: str = DEFAULT_ENGINEERING

    def __post_init__(self) -> None:
        if self.engineering not in ENGINEERING:
            raise ValueError(
                f"ImagePrompt engineering {self.engineering!r} is unknown; "
                f"choose one of {sorted(ENGINEERING)}"
            )

    def engineered(self) -> np.ndarray:
        """The support image after visual prompt engineering, RGB uint8 (h, w, 3)."""
        image = load_image(self.image, name="support image")
        if self.mask is None:
            return image
        return engineer_visual_prompt(image, self.mask, self.engineering)


@dataclass(frozen=True)
class Mix:
    """The paper's text-image interpolation: `weight` * text + (1 - weight) * image embedding."""

    text: str
    image_prompt: ImagePrompt
    weight: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise ValueError(f"Mix text has type {type(self.text).__name__}: expected a string")
        if not isinstance(self.image_prompt, ImagePrompt):
            raise ValueError(
                f"Mix image_prompt has type {type(self.image_prompt).__name__}: "
                "expected an ImagePrompt"
            )
        if not isinstance(self.weight, numbers.Real) or not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"Mix weight must be a number in [0, 1], got {self.weight!r}")


@dataclass(frozen=True)
class Embedding:
    """A precomputed conditional embedding, float (projection_dim,)."""

    vector: np.ndarray = field(repr=False)
    label: str = "embedding"


Prompt = str | ImagePrompt | Mix | Embedding | np.ndarray


def mix(text: str, image_prompt: ImagePrompt, weight: float = 0.5) -> Mix:
    """Interpolate a text prompt and an image prompt (weight 1.0 = text only)."""
    return Mix(text, image_prompt, weight)


def describe(prompt: Prompt) -> str:
    """A short human-readable label for a prompt (for titles and results files)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, ImagePrompt):
        return f"<image prompt, {prompt.engineering}>"
    if isinstance(prompt, Mix):
        return f"{prompt.weight:.2f}*{prompt.text!r} + image"
    if isinstance(prompt, Embedding):
        return prompt.label
    return "embedding"


def engineer_visual_prompt(image: np.ndarray, mask: np.ndarray, engineering: str) -> np.ndarray:
    """Apply visual prompt engineering to an RGB uint8 (H, W, 3) image and bool (H, W) mask."""
    if engineering not in ENGINEERING:
        raise ValueError(
            f"engineering {engineering!r} is unknown; choose one of {sorted(ENGINEERING)}"
        )
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"ImagePrompt mask shape {mask.shape} does not match "
            f"the support image {image.shape[:2]}"
        )
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("ImagePrompt mask is empty: it must mark the object the prompt shows")
    settings = ENGINEERING[engineering]
    if settings["crop"]:
        image, mask = _crop_to_mask(image, mask)
    if settings["background"] == 1.0 and settings["blur"] == 0.0:
        return image
    background = Image.fromarray(image)
    if settings["blur"] > 0:
        radius = settings["blur"] * max(image.shape[:2]) / 224.0
        background = background.filter(ImageFilter.GaussianBlur(radius))
    darkened = np.asarray(background, dtype=np.float32) * settings["background"]
    result = np.where(mask[:, :, None], image.astype(np.float32), darkened)
    return (result + 0.5).astype(np.uint8)


def _crop_to_mask(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square crop around the mask's box with `CROP_CONTEXT` margin, clipped to the image."""
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    side = max(bottom - top, right - left) * (1 + 2 * CROP_CONTEXT)
    centre_y, centre_x = (top + bottom) / 2, (left + right) / 2
    height, width = mask.shape
    y0 = int(max(0, round(centre_y - side / 2)))
    x0 = int(max(0, round(centre_x - side / 2)))
    y1 = int(min(height, round(centre_y + side / 2)))
    x1 = int(min(width, round(centre_x + side / 2)))
    return image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
