"""RefCOCO, RefCOCO+ and RefCOCOg in the layout of the ``refer`` API (Yu et al. 2016).

Under the root (e.g. ``data/refcoco``)::

    instances.json        COCO: images (id, file_name, height, width), annotations
                          (id, image_id, category_id, segmentation as flat [x1, y1, x2, ...] lists)
    refs(unc).p           a pickled list of refs: ref_id, ann_id, image_id, split, category_id,
                          sentences [{sent_id, sent, ...}]; refs(umd).p or refs(google).p for
                          RefCOCOg (the first of unc, umd, google present is read)
    images/<file_name>    the COCO train2014 images (a link to train2014/ will do)

Each sentence is one sample: its text is the prompt, the referred annotation's polygons are the
target, and each sentence is its own class for mIoU (the mean of per-expression IoUs).

The refs file is a pickle. It is read by an unpickler that builds only plain containers and
scalars: any reference to a class or function (the way a pickle runs code) is refused before
anything is called, so a malicious refs file raises `DatasetError` and runs nothing.
"""

from __future__ import annotations

import pickle
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

REFS_FILES = ("refs(unc).p", "refs(umd).p", "refs(google).p")
_ALLOWED_GLOBALS = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"),
    ("__builtin__", "set"), ("__builtin__", "frozenset"),
})


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, sets, strings, bytes and numbers; refuses any other
    global (class or function), so no code named by the file is ever looked up or called."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return set if name == "set" else frozenset
        raise pickle.UnpicklingError(
            f"refers to {module}.{name}; only plain containers and scalars are allowed"
        )


def load_plain_pickle(path: Path) -> Any:
    """The plain data (containers and scalars) pickled in ``path``, read without running code.

    Python 2 strings (the refer API's files) are decoded as UTF-8, invalid bytes replaced.
    """
    try:
        with open(path, "rb") as handle:
            return _PlainDataUnpickler(handle, encoding="utf-8", errors="replace").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as error:
        raise DatasetError(f"{path}: not a plain-data pickle ({error})") from error


class RefCOCO(ImagesById):
    """Referring expressions of one split, grouped by image (see the module docstring). The
    refs of the split, their images and annotations are checked when the split is opened."""

    name = "refcoco"

    def __init__(self, root: str | Path, split: str = "val") -> None:
        self.root, self.split = Path(root), split
        self._instances_file = require_file(self.root / "instances.json", "RefCOCO instances")
        present = [self.root / name for name in REFS_FILES if (self.root / name).is_file()]
        if not present:
            raise DatasetError(f"RefCOCO refs: {self.root} holds none of {REFS_FILES}")
        self._refs_file = present[0]
        refs = load_plain_pickle(self._refs_file)
        if not isinstance(refs, list) or not all(isinstance(ref, dict) for ref in refs):
            raise DatasetError(f"{self._refs_file}: expected a list of ref dicts")
        splits = sorted({str(ref.get("split")) for ref in refs})
        self._by_image: dict[int, list[dict]] = {}
        for index, ref in enumerate(refs):
            if ref.get("split") == split:
                where = f"{self._refs_file}: ref {index}"
                self._by_image.setdefault(identifier(ref, "image_id", where), []).append(
                    _checked_ref(ref, where))
        if not self._by_image:
            raise DatasetError(f"{self._refs_file}: no refs of split {split!r} (has {splits})")
        instances = read_json(self._instances_file, dict)
        where = str(self._instances_file)
        self._images = {
            identifier(image, "id", f"{where}: image entry {index}"): image
            for index, image in enumerate(_list_field(instances, "images", where))
        }
        unknown = sorted(set(self._by_image) - set(self._images))
        if unknown:
            raise DatasetError(f"{where} lacks images {unknown[:5]} named in {self._refs_file}")
        needed = {ref["ann_id"] for refs_of in self._by_image.values() for ref in refs_of}
        self._annotations = {}
        for index, annotation in enumerate(_list_field(instances, "annotations", where)):
            key = identifier(annotation, "id", f"{where}: annotation {index}")
            if key in needed:
                self._annotations[key] = annotation
        missing = sorted(needed - set(self._annotations))
        if missing:
            raise DatasetError(f"{self._instances_file} lacks annotations {missing[:5]}")

    def annotation_files(self) -> list[Path]:
        """instances.json and the refs pickle read."""
        return [self._instances_file, self._refs_file]

    def image_samples(self, image_id: str) -> ImageSamples:
        """The image and one sample per sentence of every ref on it."""
        key = int(image_id)
        image = self._images[key]
        where = f"{self._instances_file}: image {key}"
        name = text_field(image, "file_name", where)
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DatasetError(f"{where}: file_name {name!r} leaves {self.root / 'images'}")
        path = require_file(self.root / "images" / name, f"COCO image {key}")
        height, width = size_field(image, "height", where), size_field(image, "width", where)
        if image_size(path) != (height, width):
            raise DatasetError(f"{path}: size {image_size(path)} differs from instances.json's")
        samples = []
        for ref in self._by_image[key]:
            target = self._mask(ref["ann_id"], height, width)
            for sentence in ref["sentences"]:
                sample_id = f"{ref['ref_id']}:{sentence['sent_id']}"
                samples.append(Sample(sample_id, sentence["sent"], target, sample_id))
        return ImageSamples(str(key), path, tuple(samples))

    def _mask(self, annotation_id: int, height: int, width: int):
        where = f"{self._instances_file}: annotation {annotation_id}"
        segmentation = field(self._annotations[annotation_id], "segmentation", where)
        if not isinstance(segmentation, list):
            raise DatasetError(f"{where}: RLE segmentation; RefCOCO refs use polygons")
        return rasterise_polygons([polygon(flat, where) for flat in segmentation], height, width)


def _list_field(entry: Any, key: str, where: str) -> list:
    value = field(entry, key, where)
    if not isinstance(value, list):
        raise DatasetError(f"{where}: {key} must be a list, got {type(value).__name__}")
    return value


def _checked_ref(ref: dict, where: str) -> dict:
    """The ref with its ids as ints and every sentence checked (a non-empty ``sent``)."""
    sentences = _list_field(ref, "sentences", where)
    checked = [{"sent_id": identifier(s, "sent_id", f"{where}, sentence {i}"),
                "sent": text_field(s, "sent", f"{where}, sentence {i}")}
               for i, s in enumerate(sentences)]
    return {"ref_id": identifier(ref, "ref_id", where), "ann_id": identifier(ref, "ann_id", where),
            "sentences": checked}
