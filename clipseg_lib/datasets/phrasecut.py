"""PhraseCut (VGPhraseCut_v0, Wu et al. 2020) as distributed, read from its own files.

Layout under the root::

    refer_{train,val,test,miniv}.json   tasks: task_id, image_id, phrase, Polygons, instance_boxes
    image_data_split.json               images: image_id, width, height, split
    images/<image_id>.jpg

A task is one phrase on one image; its mask is the union of the polygons of all its instances
(``Polygons``: per instance a list of polygons, each a list of [x, y]), rasterised at the
image size. Each task is its own class for mIoU, as in the original evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipseg_lib.datasets.samples import (
    DatasetError,
    ImageSamples,
    ImagesById,
    Sample,
    field,
    identifier,
    image_size,
    polygon,
    rasterise_polygons,
    read_json,
    require_file,
    size_field,
    text_field,
)

SPLITS = ("train", "val", "test", "miniv")
SKIPPED_IMAGE_IDS = frozenset({
    150417, 285665, 498246, 61564, 285743, 498269, 498010, 150516, 150344, 286093, 61530,
    150333, 286065, 285814, 498187, 285761, 498042,
})
"""Images whose annotated size differs from the file's; the original evaluation skips them."""


class PhraseCut(ImagesById):
    """PhraseCut tasks of one split, grouped by image (see the module docstring). Every task
    and image entry is checked when the split is opened: a malformed one is a DatasetError
    naming the file, the entry and the problem, before anything is scored."""

    name = "phrasecut"

    def __init__(self, root: str | Path, split: str = "test") -> None:
        if split not in SPLITS:
            raise DatasetError(f"PhraseCut split {split!r} is not one of {SPLITS}")
        self.root, self.split = Path(root), split
        self._tasks_file = require_file(self.root / f"refer_{split}.json", "PhraseCut tasks")
        self._images_file = require_file(self.root / "image_data_split.json", "PhraseCut images")
        self._sizes = {}
        for index, image in enumerate(read_json(self._images_file, list)):
            where = f"{self._images_file}: image entry {index}"
            self._sizes[identifier(image, "image_id", where)] = (
                size_field(image, "height", where), size_field(image, "width", where))
        self._by_image: dict[int, list[Task]] = {}
        seen: set[str] = set()
        for index, entry in enumerate(read_json(self._tasks_file, list)):
            task = _read_task(entry, f"{self._tasks_file}: task entry {index}")
            if task.task_id in seen:
                raise DatasetError(f"{self._tasks_file}: task_id {task.task_id!r} appears twice")
            seen.add(task.task_id)
            if task.image_id not in SKIPPED_IMAGE_IDS:
                self._by_image.setdefault(task.image_id, []).append(task)
        unknown = sorted(set(self._by_image) - set(self._sizes))
        if unknown:
            raise DatasetError(
                f"{self._images_file} lacks images {unknown[:5]} named in {self._tasks_file}"
            )

    def annotation_files(self) -> list[Path]:
        """The split's task file and the image table."""
        return [self._tasks_file, self._images_file]

    def image_samples(self, image_id: str) -> ImageSamples:
        """The image and one sample per task on it, masks rasterised at the image size."""
        key = int(image_id)
        path = require_file(self.root / "images" / f"{key}.jpg", f"PhraseCut image {key}")
        height, width = self._sizes[key]
        if image_size(path) != (height, width):
            raise DatasetError(
                f"{path}: size {image_size(path)} differs from image_data_split.json's "
                f"{(height, width)}"
            )
        samples = tuple(
            Sample(
                sample_id=task.task_id,
                prompt=task.phrase,
                target=rasterise_polygons(task.polygons, height, width),
                class_id=task.task_id,
            )
            for task in self._by_image[key]
        )
        return ImageSamples(str(key), path, samples)


@dataclass(frozen=True)
class Task:
    """One checked PhraseCut task: its id, image, phrase and the polygons of all instances."""

    task_id: str
    image_id: int
    phrase: str
    polygons: list[list[tuple[float, float]]]


def _read_task(entry: Any, where: str) -> Task:
    """A task entry checked field by field (see `Task`)."""
    task_id = field(entry, "task_id", where)
    if isinstance(task_id, bool) or not isinstance(task_id, str | int) or task_id == "":
        raise DatasetError(f"{where}: task_id {task_id!r} is not a string or number")
    instances = field(entry, "Polygons", where)
    if not isinstance(instances, list) or not all(isinstance(i, list) for i in instances):
        raise DatasetError(f"{where}: Polygons must be a list of instances (lists of polygons), "
                           f"got {instances!r:.40}")
    return Task(
        task_id=str(task_id),
        image_id=identifier(entry, "image_id", where),
        phrase=text_field(entry, "phrase", where),
        polygons=[polygon(vertices, where) for instance in instances for vertices in instance],
    )
