"""Pascal-5i (Shaban et al. 2017) in the PFENet layout the CLIPSeg paper evaluated on.

Under the root (the VOC2012 directory with SBD's augmented labels)::

    <split>.txt                  PFENet list: "JPEGImages/X.jpg SegmentationClassAug/X.png" a line
    JPEGImages/X.jpg
    SegmentationClassAug/X.png   labels: 0 background, 1-20 the VOC classes, 255 ignore
    class_names.json             optional: 20 class names replacing VOC's (exported worlds)

Fold f tests classes 5f+1 .. 5f+5. As PFENet, a class counts on an image when it covers at
least ``min_pixels`` (2 x 32 x 32) pixels; each such (image, class) pair is one sample (PFENet
draws one of them per image at random; here every pair is scored). The target is the class's
pixels, the 255 pixels are ignored. Prompts: with ``shots=0`` the text "a photo of a {name}."
(the original's wording and VOC names); with ``shots=1`` the image and mask of another image of
the same class, drawn with a seeded generator per (image, class) so every worker and every
rerun draws the same support (the original draws it unseeded).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from clipseg_lib.datasets.samples import (
    DatasetError,
    ImageSamples,
    Sample,
    image_size,
    read_json,
    require_file,
)
from clipseg_lib.model.prompts import ImagePrompt

VOC_CLASS_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
"""Names of labels 1..20, as the original's pascal_classes.json spells them."""
PROMPT_TEMPLATE = "a photo of a {}."
IGNORE_LABEL = 255
MIN_PIXELS = 2 * 32 * 32
FOLDS = (0, 1, 2, 3)


def fold_classes(fold: int) -> tuple[int, ...]:
    """The five labels fold ``fold`` tests: 5 * fold + 1 .. 5 * fold + 5."""
    if fold not in FOLDS:
        raise DatasetError(f"Pascal-5i fold {fold!r} is not one of {FOLDS}")
    return tuple(range(5 * fold + 1, 5 * fold + 6))


class Pascal5i:
    """Samples of one Pascal-5i fold, grouped by image (see the module docstring)."""

    name = "pascal5i"

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        *,
        fold: int = 0,
        shots: int = 1,
        seed: int = 0,
        min_pixels: int = MIN_PIXELS,
    ) -> None:
        if shots not in (0, 1):
            raise DatasetError(f"Pascal-5i shots {shots!r}: 0 (text prompts) or 1 (one-shot)")
        self.root, self.split = Path(root), split
        self.fold, self.shots, self.seed = fold, shots, seed
        self.classes = fold_classes(fold)
        self._list_file = require_file(self.root / f"{split}.txt", "Pascal-5i list")
        self._names_file = self.root / "class_names.json"
        self.class_names = self._read_class_names()
        self._pairs = self._read_list()
        self._classes_of: dict[str, tuple[int, ...]] = {}
        for stem, (_, label_path) in self._pairs.items():
            counts = np.bincount(_read_label(label_path).ravel(), minlength=256)
            present = tuple(c for c in self.classes if counts[c] >= min_pixels)
            if present:
                self._classes_of[stem] = present
        self._images_of = {
            c: [stem for stem, present in self._classes_of.items() if c in present]
            for c in self.classes
        }

    def image_ids(self) -> list[str]:
        """Images (list-file stems) holding at least one of the fold's classes, in list order."""
        return list(self._classes_of)

    def annotation_files(self) -> list[Path]:
        """The list file, and the class names file where there is one."""
        return [self._list_file, *([self._names_file] if self._names_file.is_file() else [])]

    def image_samples(self, image_id: str) -> ImageSamples:
        """The image and one sample per fold class on it; DatasetError when the image is
        missing or unreadable, or its label map is of another size."""
        image_path, label_path = self._pairs[image_id]
        label = _read_label(label_path)
        _require_size(image_path, label.shape)
        ignore = label == IGNORE_LABEL
        samples = tuple(
            Sample(
                sample_id=f"{image_id}:{label_value}",
                prompt=self._prompt(image_id, label_value),
                target=label == label_value,
                class_id=label_value,
                ignore=ignore,
            )
            for label_value in self._classes_of[image_id]
        )
        return ImageSamples(image_id, image_path, samples)

    def support_image_id(self, image_id: str, label_value: int) -> str:
        """The image whose ``label_value`` object is the one-shot support for ``image_id``."""
        others = [stem for stem in self._images_of[label_value] if stem != image_id]
        if not others:
            raise DatasetError(
                f"Pascal-5i fold {self.fold}: class {label_value} appears on {image_id} only; "
                "a one-shot support needs a second image"
            )
        rng = np.random.default_rng([self.seed, zlib.crc32(image_id.encode()), label_value])
        return others[int(rng.integers(len(others)))]

    def _prompt(self, image_id: str, label_value: int) -> str | ImagePrompt:
        if self.shots == 0:
            return PROMPT_TEMPLATE.format(self.class_names[label_value - 1])
        support = self.support_image_id(image_id, label_value)
        support_image, support_label = self._pairs[support]
        support_mask = _read_label(support_label) == label_value
        _require_size(support_image, support_mask.shape)
        return ImagePrompt(support_image, support_mask)

    def _read_class_names(self) -> tuple[str, ...]:
        if not self._names_file.is_file():
            return VOC_CLASS_NAMES
        names = read_json(self._names_file, list)
        if len(names) != len(VOC_CLASS_NAMES) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"{self._names_file}: expected a list of 20 class names")
        return tuple(names)

    def _read_list(self) -> dict[str, tuple[Path, Path]]:
        pairs: dict[str, tuple[Path, Path]] = {}
        for number, line in enumerate(self._list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise DatasetError(
                    f"{self._list_file}:{number}: expected 'JPEGImages/X.jpg "
                    f"SegmentationClassAug/X.png', got {line!r}"
                )
            where = f"{self._list_file}:{number}"
            image, label = (self._inside_root(field, where) for field in fields)
            if image.stem in pairs:
                raise DatasetError(f"{where}: image {image.stem!r} is listed twice")
            pairs[image.stem] = (image, label)
        return pairs

    def _inside_root(self, field: str, where: str) -> Path:
        """``root / field`` for a relative path that stays under the root, else DatasetError."""
        relative = Path(field)
        if relative.is_absolute() or ".." in relative.parts:
            raise DatasetError(f"{where}: {field!r} must be a path inside {self.root} "
                               "(no absolute path, no '..')")
        return self.root / relative


def _read_label(path: Path) -> np.ndarray:
    """(H, W) uint8 label map of a PNG (palette indices are the labels)."""
    require_file(path, "Pascal-5i label")
    try:
        with Image.open(path) as image:
            if image.mode not in ("P", "L"):
                raise DatasetError(f"{path}: label PNG must be mode P or L, got {image.mode}")
            return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, DatasetError):
            raise
        raise DatasetError(f"{path}: not a readable label PNG ({error})") from error


def _require_size(image_path: Path, label_shape: tuple[int, ...]) -> None:
    """DatasetError unless the image is a readable file of the label map's (H, W)."""
    require_file(image_path, "Pascal-5i image")
    try:
        size = image_size(image_path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{image_path}: not a readable image ({error})") from error
    if size != tuple(label_shape):
        raise DatasetError(f"{image_path}: size {size} differs from its label map's "
                           f"{tuple(label_shape)}: a label of another image?")
