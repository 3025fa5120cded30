"""What every dataset adapter yields, and the pieces the adapters share.

An adapter lists its images (`image_ids`, cheap, from the annotation files) and reads one image
with all its samples on demand (`image_samples`), so an evaluation streams from disk and a
model encodes each image once for all its prompts.

Conventions: masks are (H, W) bool at the image's own size; ``ignore`` marks pixels left out
of every metric (Pascal's 255 label); polygons are lists of (x, y) vertices in pixel
coordinates, rasterised with PIL (filled, outline included) at the image size.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw

from clipseg_lib.model.images import MAX_PIXELS
from clipseg_lib.model.prompts import ImagePrompt


class DatasetError(ValueError):
    """A dataset root, split or annotation file that cannot be read as the named format."""


@dataclass(frozen=True, eq=False)
class Sample:
    """One prompt on one image and its ground truth.

    prompt: a text or an `ImagePrompt` (one-shot support); target (H, W) bool; ignore (H, W)
    bool or None; class_id: what mIoU averages over; sample_id: unique within the dataset.
    """

    sample_id: str
    prompt: str | ImagePrompt
    target: np.ndarray
    class_id: str | int
    ignore: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class ImageSamples:
    """An image (path on disk) with every sample asked of it."""

    image_id: str
    image_path: Path
    samples: tuple[Sample, ...]


class Dataset(Protocol):
    """What `clipseg_lib.datasets.open_dataset` returns."""

    name: str
    root: Path
    split: str

    def image_ids(self) -> list[str]:
        """Every image of the split, in a fixed order."""

    def image_samples(self, image_id: str) -> ImageSamples:
        """One image and its samples, read from disk."""

    def annotation_files(self) -> list[Path]:
        """The files whose checksums identify the annotations evaluated."""


class ImagesById:
    """Shared by formats that index their annotations by an integer image id."""

    _by_image: dict[int, list[dict]]

    def image_ids(self) -> list[str]:
        """Image ids with at least one annotation in the split, in numeric order."""
        return [str(image_id) for image_id in sorted(self._by_image)]


def rasterise_polygons(polygons: Iterable[Sequence[Sequence[float]]], height: int, width: int):
    """(H, W) bool union of polygons given as sequences of (x, y) vertices."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        vertices = [(float(x), float(y)) for x, y in polygon]
        if len(vertices) >= 2:
            draw.polygon(vertices, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def mask_to_rectangles(mask: np.ndarray) -> list[list[list[int]]]:
    """Polygons (axis-aligned rectangles, inclusive pixel corners) whose rasterisation by
    `rasterise_polygons` is exactly ``mask``: row runs merged down while they stay the same."""
    mask = np.asarray(mask, dtype=bool)
    rectangles: list[list[list[int]]] = []
    open_runs: dict[tuple[int, int], int] = {}
    for row in range(mask.shape[0] + 1):
        runs = set(_row_runs(mask[row])) if row < mask.shape[0] else set()
        for run in [run for run in open_runs if run not in runs]:
            top, (left, right), bottom = open_runs.pop(run), run, row - 1
            rectangles.append([[left, top], [right, top], [right, bottom], [left, bottom]])
        for run in runs - open_runs.keys():
            open_runs[run] = row
    return sorted(rectangles)


def _row_runs(row: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, row.astype(np.int8), 0]))
    starts, stops = edges[::2], edges[1::2]
    return [(int(start), int(stop) - 1) for start, stop in zip(starts, stops, strict=True)]


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header; DatasetError naming the file when it is
    not a readable image or declares more than `MAX_PIXELS`."""
    try:
        with Image.open(path) as image:
            size = image.height, image.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from error
    if size[0] * size[1] > MAX_PIXELS:
        raise DatasetError(f"{path}: {size[1]}x{size[0]} pixels is over the limit of "
                           f"{MAX_PIXELS:,}")
    return size


def field(entry: Any, key: str, where: str) -> Any:
    """``entry[key]`` of an annotation record, else DatasetError naming `where` and `key`."""
    if not isinstance(entry, dict):
        raise DatasetError(f"{where}: expected an object, got {type(entry).__name__}")
    if key not in entry:
        raise DatasetError(f"{where}: lacks {key!r}")
    return entry[key]


def identifier(entry: Any, key: str, where: str) -> int:
    """A numeric id (an int, or a string of digits) at ``entry[key]``, else DatasetError."""
    value = field(entry, key, where)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise DatasetError(f"{where}: {key} {value!r} is not a numeric id")


def size_field(entry: Any, key: str, where: str) -> int:
    """A positive integer size at ``entry[key]``, else DatasetError."""
    value = field(entry, key, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"{where}: {key} {value!r} is not a positive integer")
    return value


def text_field(entry: Any, key: str, where: str) -> str:
    """A non-empty string at ``entry[key]`` (a prompt), else DatasetError: no other value is
    turned into a prompt."""
    value = field(entry, key, where)
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: {key} {value!r} is not a non-empty string")
    return value


def polygon(vertices: Any, where: str) -> list[tuple[float, float]]:
    """A polygon given as [[x, y], ...] or flat [x1, y1, x2, y2, ...] of finite numbers."""
    def number(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
            raise DatasetError(f"{where}: polygon coordinate {value!r} is not a finite number")
        return float(value)

    if not isinstance(vertices, list):
        raise DatasetError(f"{where}: a polygon must be a list, got {vertices!r:.40}")
    if all(not isinstance(vertex, list) for vertex in vertices):
        if len(vertices) % 2:
            raise DatasetError(f"{where}: a flat polygon has an odd number ({len(vertices)}) "
                               "of coordinates")
        return [(number(x), number(y)) for x, y in zip(vertices[0::2], vertices[1::2],
                                                         strict=True)]
    if not all(isinstance(vertex, list) and len(vertex) == 2 for vertex in vertices):
        raise DatasetError(f"{where}: polygon vertices must be [x, y] pairs")
    return [(number(x), number(y)) for x, y in vertices]


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else a `DatasetError` naming ``what`` and the path."""
    if not path.is_file():
        raise DatasetError(f"{what}: {path} is not a file")
    return path


def read_json(path: Path, expected: type) -> Any:
    """The JSON content of ``path``, which must be of type ``expected`` (list or dict)."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path}: not readable as JSON ({error})") from error
    if not isinstance(content, expected):
        raise DatasetError(
            f"{path}: expected a JSON {expected.__name__}, got {type(content).__name__}"
        )
    return content
