"""``clipseg-study export-world``: the synthetic world written in each benchmark's own format.

The exported files are fixtures with known answers: `world_images` builds the same images and
samples in memory (exact masks, the world's own scoring), `export_world` writes them as
PhraseCut, Pascal-5i or RefCOCO files, and an adapter reading them back must score a model as
the world does (up to JPEG compression of the images). Masks become polygons that rasterise
back exactly (`mask_to_rectangles`). Every export says so in its files: `MARKER_FILE` at its
root names the format and the command that wrote it, and `export_marker` reads it back
(`dataset_provenance` records it; real data has no such file).

- phrasecut: one task per distinct object phrase ("red triangle", "the word CAT", "smiling
  face") and per shape category ("triangle"); the target is every object it names.
- pascal5i: the 20 classes are the first 20 colour-shape pairs of the "test" world (names in
  class_names.json); signs and faces are labelled 255 (ignored); images are 384 px so objects
  pass PFENet's 2048-pixel rule, and are chosen so every class shows on two or more images.
- refcoco: one ref per object whose phrase is unique in its scene, with two sentences
  ("red triangle", "the red triangle").
"""

from __future__ import annotations

import json
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipseg_lib.datasets.pascal5i import IGNORE_LABEL, MIN_PIXELS, PROMPT_TEMPLATE
from clipseg_lib.datasets.samples import Sample, mask_to_rectangles
from clipseg_lib.world import COLOURS, HELD_OUT_COMBINATIONS, SHAPES, Scene, render_scene

FORMATS = ("phrasecut", "pascal5i", "refcoco")
DEFAULT_IMAGES = 24
EXPORT_SPLITS = {"phrasecut": "test", "pascal5i": "val", "refcoco": "val"}
IMAGE_SIZE = 384
MARKER_FILE = "SYNTHETIC_WORLD.json"
"""At the root of an export: these files are the synthetic world, not the benchmark."""
JPEG_QUALITY = 95
PASCAL_CLASS_NAMES = tuple(
    f"{colour} {shape}"
    for colour in COLOURS
    for shape in SHAPES
    if (colour, shape) not in HELD_OUT_COMBINATIONS
)[:20]


@dataclass(frozen=True, eq=False)
class WorldImage:
    """One exported image: its id in the format, the (H, W, 3) uint8 pixels and its samples."""

    image_id: str
    image: np.ndarray
    samples: tuple[Sample, ...]
    scene: Scene


def world_images(format_name: str, n_images: int = DEFAULT_IMAGES, seed: int = 0):
    """The images and text samples `export_world` writes for ``format_name``, in memory."""
    if format_name not in FORMATS:
        raise ValueError(f"format {format_name!r} is not one of {FORMATS}")
    if n_images < 2:
        raise ValueError(f"n_images {n_images} must be at least 2")
    if format_name == "pascal5i":
        return _pascal_images(n_images, seed)
    images = []
    for index in range(n_images):
        scene = _scene(format_name, seed, index)
        image_id = str(100 + index)
        samples = _phrase_samples(scene, image_id) if format_name == "phrasecut" else (
            _ref_samples(scene, image_id)
        )
        images.append(WorldImage(image_id, scene.image, samples, scene))
    return images


def _scene(format_name: str, seed: int, index: int) -> Scene:
    return render_scene(
        int(np.random.SeedSequence([seed, FORMATS.index(format_name), index]).generate_state(1)[0]),
        size=IMAGE_SIZE,
        split="test",
        n_shapes=(2, 5) if format_name != "pascal5i" else (3, 6),
        n_words=(0, 1),
        n_faces=(0, 1),
    )


def _phrase_samples(scene: Scene, image_id: str) -> tuple[Sample, ...]:
    phrases: dict[str, list[int]] = {}
    for index, obj in enumerate(scene.objects):
        phrases.setdefault(obj.phrase, []).append(index)
        if obj.kind == "shape":
            phrases.setdefault(obj.name, []).append(index)
    return tuple(
        Sample(f"{image_id}__{k}", phrase, scene.union_mask(indices), f"{image_id}__{k}")
        for k, (phrase, indices) in enumerate(phrases.items())
    )


def _ref_samples(scene: Scene, image_id: str) -> tuple[Sample, ...]:
    counts = Counter(obj.phrase for obj in scene.objects)
    samples = []
    for index, obj in enumerate(scene.objects):
        if counts[obj.phrase] == 1:
            ref_id = _annotation_id(image_id, index)
            for sent_id, sentence in enumerate(_sentences(obj.phrase)):
                sample_id = f"{ref_id}:{ref_id}{sent_id}"
                samples.append(Sample(sample_id, sentence, scene.object_mask(index), sample_id))
    return tuple(samples)


def _annotation_id(image_id: str | int, object_index: int) -> int:
    """A scene object's annotation id; a ref's id is its annotation's."""
    return int(image_id) * 100 + object_index


def _sentences(phrase: str) -> list[str]:
    return [phrase] if phrase.startswith("the ") else [phrase, f"the {phrase}"]


def pascal_label(scene: Scene) -> np.ndarray:
    """(H, W) uint8 label map: class 1..20 of each shape pixel, 255 on signs and faces."""
    label = np.zeros(scene.instance_map.shape, np.uint8)
    for index, obj in enumerate(scene.objects):
        name = obj.phrase if obj.kind == "shape" else None
        if name in PASCAL_CLASS_NAMES or obj.kind != "shape":
            value = PASCAL_CLASS_NAMES.index(name) + 1 if name else IGNORE_LABEL
            label[scene.object_mask(index)] = value
    return label


def _pascal_images(n_images: int, seed: int) -> list[WorldImage]:
    images: list[WorldImage] = []
    shown = Counter()
    for index in range(50 * n_images):
        if len(images) == n_images:
            break
        scene = _scene("pascal5i", seed, index)
        label = _pascal_label_counts(pascal_label(scene))
        needed = [c for c in label if shown[c] < 2]
        if not needed and min(shown[c] for c in range(1, 21)) < 2:
            continue
        shown.update(label)
        image_id = f"world_{index:04d}"
        ignore = pascal_label(scene) == IGNORE_LABEL
        samples = tuple(
            Sample(
                f"{image_id}:{value}",
                PROMPT_TEMPLATE.format(PASCAL_CLASS_NAMES[value - 1]),
                pascal_label(scene) == value,
                value,
                ignore,
            )
            for value in sorted(label)
        )
        images.append(WorldImage(image_id, scene.image, samples, scene))
    return images


def _pascal_label_counts(label: np.ndarray) -> list[int]:
    counts = np.bincount(label.ravel(), minlength=256)
    return [value for value in range(1, 21) if counts[value] >= MIN_PIXELS]


def export_world(
    format_name: str, directory: str | Path, *, n_images: int = DEFAULT_IMAGES, seed: int = 0,
    force: bool = False,
) -> Path:
    """Write `world_images` into ``directory`` in the format's own layout; returns it.

    A non-empty directory is refused unless ``force``.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()) and not force:
        raise FileExistsError(f"{directory} is not empty; pass --force to write into it")
    images = world_images(format_name, n_images, seed)
    writer = {"phrasecut": _write_phrasecut, "pascal5i": _write_pascal, "refcoco": _write_refcoco}
    directory.mkdir(parents=True, exist_ok=True)
    writer[format_name](images, directory, EXPORT_SPLITS[format_name])
    (directory / MARKER_FILE).write_text(json.dumps({
        "synthetic": True, "format": format_name, "written_by": "clipseg-study export-world",
        "n_images": n_images, "seed": seed,
    }))
    return directory


def export_marker(root: str | Path) -> dict | None:
    """The `MARKER_FILE` content of an export of the world at ``root``, or None (real data)."""
    path = Path(root) / MARKER_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def world_export(format_name: str, output_dir: str | Path) -> Path:
    """The world in ``format_name`` under ``<output_dir>/datasets/<format_name>``, (re)written:
    the data a notebook evaluates when it is given no dataset root."""
    return export_world(format_name, Path(output_dir) / "datasets" / format_name, force=True)


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, quality=JPEG_QUALITY)


def _box(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def _write_phrasecut(images: list[WorldImage], directory: Path, split: str) -> None:
    tasks, table = [], []
    for world_image in images:
        scene = world_image.scene
        height, width = scene.instance_map.shape
        table.append({"image_id": int(world_image.image_id), "width": width, "height": height,
                      "split": split})
        _save_jpeg(world_image.image, directory / "images" / f"{world_image.image_id}.jpg")
        for sample in world_image.samples:
            instances = [
                scene.object_mask(i) for i in range(len(scene.objects))
                if (scene.object_mask(i) & sample.target).any()
            ]
            tasks.append({
                "task_id": sample.sample_id,
                "image_id": int(world_image.image_id),
                "phrase": sample.prompt,
                "Polygons": [mask_to_rectangles(mask) for mask in instances],
                "instance_boxes": [_box(mask) for mask in instances],
            })
    (directory / f"refer_{split}.json").write_text(json.dumps(tasks))
    (directory / "image_data_split.json").write_text(json.dumps(table))


def _voc_palette() -> list[int]:
    """The VOC colour map: label bits spread over the high bits of R, G and B."""
    palette = []
    for label in range(256):
        red = green = blue = 0
        for shift in range(8):
            red |= ((label >> 0) & 1) << (7 - shift)
            green |= ((label >> 1) & 1) << (7 - shift)
            blue |= ((label >> 2) & 1) << (7 - shift)
            label >>= 3
        palette += [red, green, blue]
    return palette


def _write_pascal(images: list[WorldImage], directory: Path, split: str) -> None:
    lines = []
    for world_image in images:
        stem = world_image.image_id
        _save_jpeg(world_image.image, directory / "JPEGImages" / f"{stem}.jpg")
        label = Image.fromarray(pascal_label(world_image.scene), mode="P")
        label.putpalette(_voc_palette())
        (directory / "SegmentationClassAug").mkdir(parents=True, exist_ok=True)
        label.save(directory / "SegmentationClassAug" / f"{stem}.png")
        lines.append(f"JPEGImages/{stem}.jpg SegmentationClassAug/{stem}.png")
    (directory / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (directory / "class_names.json").write_text(json.dumps(list(PASCAL_CLASS_NAMES)))


def _write_refcoco(images: list[WorldImage], directory: Path, split: str) -> None:
    categories = [*SHAPES, "word", "face"]
    coco_images, annotations, refs = [], [], []
    for world_image in images:
        scene, image_id = world_image.scene, int(world_image.image_id)
        file_name = f"COCO_train2014_{image_id:012d}.jpg"
        height, width = scene.instance_map.shape
        coco_images.append({"id": image_id, "file_name": file_name, "height": height,
                            "width": width})
        _save_jpeg(world_image.image, directory / "images" / file_name)
        for index, obj in enumerate(scene.objects):
            mask = scene.object_mask(index)
            annotations.append({
                "id": _annotation_id(image_id, index), "image_id": image_id,
                "category_id": _category_id(obj, categories),
                "iscrowd": 0, "area": int(mask.sum()), "bbox": _box(mask),
                "segmentation": [np.ravel(r).tolist() for r in mask_to_rectangles(mask)],
            })
        refs += _refs_of(world_image, split, categories)
    (directory / "instances.json").write_text(json.dumps({
        "images": coco_images, "annotations": annotations,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(categories)],
    }))
    with open(directory / "refs(unc).p", "wb") as handle:
        pickle.dump(refs, handle, protocol=2)


def _category_id(obj, categories: list[str]) -> int:
    return categories.index(obj.name if obj.kind == "shape" else obj.kind) + 1


def _refs_of(world_image: WorldImage, split: str, categories: list[str]) -> list[dict]:
    refs: dict[int, dict] = {}
    for sample in world_image.samples:
        ref_id, sent_id = (int(part) for part in sample.sample_id.split(":"))
        obj = world_image.scene.objects[ref_id % 100]
        ref = refs.setdefault(ref_id, {
            "ref_id": ref_id, "ann_id": ref_id, "image_id": int(world_image.image_id),
            "split": split, "category_id": _category_id(obj, categories),
            "sent_ids": [], "sentences": [],
        })
        ref["sent_ids"].append(int(sent_id))
        ref["sentences"].append({"sent_id": int(sent_id), "sent": sample.prompt,
                                 "raw": sample.prompt, "tokens": sample.prompt.split()})
    return list(refs.values())
