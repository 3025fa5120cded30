"""Fine-tuning data: (image, text prompt, mask) samples, their checks, checksum and grouping.

Any iterable of `Sample` is training data: the folder format (`clipseg_lib.finetune.folder`),
the synthetic world (`clipseg_lib.finetune.world_data`) or a dataset adapter. Images and masks
may be files (read when needed) or arrays. Samples that show the same image (same file or
same pixels) form one group: the backbone runs once per group and answers all its prompts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipseg_lib.model.images import ImageError, ImageLike, load_image

MaskLike = np.ndarray | str | os.PathLike
_Read = TypeVar("_Read")
#: An 8-bit mask pixel at or above this value is foreground (0/255 PNGs, antialiased edges).
MASK_LEVEL = 128


@dataclass(frozen=True, eq=False)
class Sample:
    """One training example: segment what `prompt` names in `image`, the answer being `mask`.

    `image`: a path or an (H, W, 3) uint8 array (anything `load_image` reads). `mask`: a path
    to a single-channel or RGB image (pixels >= `MASK_LEVEL` in grey are the object) or an
    (H, W) array (bool, uint8 >= `MASK_LEVEL`, float >= 0.5); same H, W as the image; may be
    empty. `origin` names the sample in error messages (e.g. "prompts.csv line 4").
    """

    image: ImageLike
    prompt: str
    mask: MaskLike
    origin: str = ""


def _read_file(path: str | os.PathLike, name: str, read: Callable[[Image.Image], _Read]) -> _Read:
    """`read(opened image)` for an image file, or ImageError naming `name` and the file."""
    if not Path(path).is_file():
        raise ImageError(f"{name} {os.fspath(path)!r}: no such file")
    try:
        with Image.open(path) as opened:
            return read(opened)
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"{name} {os.fspath(path)!r}: not a readable image ({error})") from error


def load_mask(mask: MaskLike, *, name: str = "mask") -> np.ndarray:
    """`mask` as an (H, W) bool array (see `Sample` for what counts as foreground)."""
    if isinstance(mask, str | os.PathLike):
        return _read_file(mask, name, lambda opened: np.asarray(opened.convert("L")) >= MASK_LEVEL)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ImageError(f"{name}: expected an (H, W) array, got shape {array.shape}")
    if array.dtype == bool:
        return array
    if array.dtype == np.uint8:
        return array >= MASK_LEVEL
    if np.issubdtype(array.dtype, np.floating):
        return array >= 0.5
    raise ImageError(f"{name}: dtype {array.dtype} is not bool, uint8 or float")


def image_size(image: ImageLike | MaskLike, *, name: str) -> tuple[int, int]:
    """(H, W) of an image or mask; files are measured from their header, not decoded."""
    if isinstance(image, str | os.PathLike):
        return _read_file(image, name, lambda opened: (opened.height, opened.width))
    if isinstance(image, Image.Image):
        return image.height, image.width
    return tuple(np.asarray(image).shape[:2])


def check_samples(samples: Iterable[Sample]) -> list[Sample]:
    """The samples as a list, or ValueError naming the first bad one: no samples, an empty
    prompt, or a mask whose size differs from its image's."""
    checked = list(samples)
    if not checked:
        raise ValueError("the data holds no samples: give at least one (image, prompt, mask)")
    for index, sample in enumerate(checked):
        where = sample.origin or f"sample {index}"
        if not isinstance(sample.prompt, str) or not sample.prompt.strip():
            raise ValueError(f"{where}: the prompt {sample.prompt!r} is empty")
        image_hw = image_size(sample.image, name=f"{where}: image")
        mask_hw = image_size(sample.mask, name=f"{where}: mask")
        if image_hw != mask_hw:
            raise ValueError(
                f"{where}: the mask is {mask_hw[1]}x{mask_hw[0]} pixels but the image is "
                f"{image_hw[1]}x{image_hw[0]}: masks must have their image's size"
            )
    return checked


def _digest(item: ImageLike | MaskLike) -> str:
    """sha256 of a file's bytes, or of an array's shape, dtype and bytes."""
    if isinstance(item, str | os.PathLike):
        digest = hashlib.sha256()
        with open(item, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    array = np.ascontiguousarray(load_image(item) if isinstance(item, Image.Image) else item)
    header = f"{array.shape}{array.dtype}".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    """What the data is: its checksum, and which samples share an image.

    `checksum`: sha256 over every sample's image bytes, prompt and mask bytes, in order.
    `groups`: sample indices per distinct image, in order of first appearance.
    """

    checksum: str
    groups: tuple[tuple[int, ...], ...]


def fingerprint(samples: Sequence[Sample]) -> Fingerprint:
    """Hash every image and mask once; group the samples by image content."""
    total = hashlib.sha256()
    by_image: dict[str, list[int]] = {}
    image_digests: dict[str | int, str] = {}
    for index, sample in enumerate(samples):
        # An image file or array shared by many prompts is hashed once.
        key = (os.fspath(sample.image) if isinstance(sample.image, str | os.PathLike)
               else id(sample.image))
        if key not in image_digests:
            image_digests[key] = _digest(sample.image)
        image_digest, mask_digest = image_digests[key], _digest(sample.mask)
        by_image.setdefault(image_digest, []).append(index)
        total.update(f"{image_digest}\n{sample.prompt}\n{mask_digest}\n".encode())
    return Fingerprint(total.hexdigest(), tuple(tuple(g) for g in by_image.values()))


def split_groups(
    groups: Sequence[Sequence[int]], heldout_share: float, *, seed: int
) -> tuple[list[list[int]], list[list[int]]]:
    """(train, held-out) image groups: a seeded `heldout_share` of the images (at least one
    when the share is positive and there are two or more images) is held out."""
    if not 0.0 <= heldout_share < 1.0:
        raise ValueError(f"the held-out share must be in [0, 1), got {heldout_share}")
    count = round(heldout_share * len(groups))
    if heldout_share > 0 and len(groups) >= 2:
        count = min(max(count, 1), len(groups) - 1)
    order = np.random.default_rng([seed, len(groups)]).permutation(len(groups))
    heldout = set(order[:count].tolist())
    train = [list(g) for i, g in enumerate(groups) if i not in heldout]
    return train, [list(g) for i, g in enumerate(groups) if i in heldout]
