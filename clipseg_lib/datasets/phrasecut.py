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

from pathlib import Path

from clipseg_lib.datasets.samples import (
    DatasetError,
    ImageSamples,
    ImagesById,
    Sample,
    image_size,
    rasterise_polygons,
    read_json,
    require_file,
)

SPLITS = ("train", "val", "test", "miniv")
SKIPPED_IMAGE_IDS = frozenset({
    150417, 285665, 498246, 61564, 285743, 498269, 498010, 150516, 150344, 286093, 61530,
    150333, 286065, 285814, 498187, 285761, 498042,
})
"""Images whose annotated size differs from the file's; the original evaluation skips them."""


class PhraseCut(ImagesById):
    """PhraseCut tasks of one split, grouped by image (see the module docstring)."""

    name = "phrasecut"

    def __init__(self, root: str | Path, split: str = "test") -> None:
        if split not in SPLITS:
            raise DatasetError(f"PhraseCut split {split!r} is not one of {SPLITS}")
        self.root, self.split = Path(root), split
        self._tasks_file = require_file(self.root / f"refer_{split}.json", "PhraseCut tasks")
        self._images_file = require_file(self.root / "image_data_split.json", "PhraseCut images")
        self._sizes = {
            int(image["image_id"]): (int(image["height"]), int(image["width"]))
            for image in read_json(self._images_file, list)
        }
        self._by_image: dict[int, list[dict]] = {}
        for task in read_json(self._tasks_file, list):
            image_id = int(task["image_id"])
            if image_id not in SKIPPED_IMAGE_IDS:
                self._by_image.setdefault(image_id, []).append(task)
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
                sample_id=str(task["task_id"]),
                prompt=str(task["phrase"]),
                target=rasterise_polygons(
                    (polygon for instance in task["Polygons"] for polygon in instance),
                    height,
                    width,
                ),
                class_id=str(task["task_id"]),
            )
            for task in self._by_image[key]
        )
        return ImageSamples(str(key), path, samples)

