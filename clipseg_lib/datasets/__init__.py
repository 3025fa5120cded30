"""Dataset adapters: the paper's benchmarks read from the files users have on disk.

``open_dataset("phrasecut" | "pascal5i" | "refcoco", root, split)`` returns an adapter that
lists its images and reads one image with all its samples at a time (`ImageSamples`), so a
model encodes each image once for all its prompts. `load_samples` draws a seeded set of cases
for an experiment; `dataset_provenance` names the data a result came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clipseg_lib.datasets.export import export_marker
from clipseg_lib.datasets.pascal5i import Pascal5i
from clipseg_lib.datasets.phrasecut import PhraseCut
from clipseg_lib.datasets.refcoco import RefCOCO, load_plain_pickle
from clipseg_lib.datasets.samples import Dataset, DatasetError, ImageSamples, Sample
from clipseg_lib.model.images import load_image
from clipseg_lib.model.loading import file_sha256

__all__ = [
    "DATASETS",
    "DEFAULT_SPLITS",
    "Dataset",
    "DatasetError",
    "ImageSamples",
    "LoadedSample",
    "Pascal5i",
    "PhraseCut",
    "RefCOCO",
    "Sample",
    "dataset_provenance",
    "load_plain_pickle",
    "load_samples",
    "open_dataset",
]

DATASETS = ("phrasecut", "pascal5i", "refcoco")
DEFAULT_SPLITS = {"phrasecut": "test", "pascal5i": "val", "refcoco": "val"}


def open_dataset(
    dataset: str,
    root: str | Path,
    split: str | None = None,
    *,
    fold: int = 0,
    shots: int = 1,
    seed: int = 0,
) -> Dataset:
    """The adapter of ``dataset`` over ``root``; ``split`` defaults to `DEFAULT_SPLITS`.

    ``fold``, ``shots`` (0: text prompts, 1: one-shot) and ``seed`` (support draws) apply to
    Pascal-5i only.
    """
    if dataset not in DATASETS:
        raise DatasetError(f"dataset {dataset!r} is not one of {DATASETS}")
    if not Path(root).is_dir():
        raise DatasetError(f"{dataset} root {root}: not a directory")
    split = split or DEFAULT_SPLITS[dataset]
    if dataset == "pascal5i":
        return Pascal5i(root, split, fold=fold, shots=shots, seed=seed)
    return PhraseCut(root, split) if dataset == "phrasecut" else RefCOCO(root, split)


@dataclass(frozen=True, eq=False)
class LoadedSample:
    """A sample with its image read: image (H, W, 3) uint8 RGB."""

    image_id: str
    image: np.ndarray
    sample: Sample


def load_samples(
    dataset: str,
    root: str | Path,
    split: str | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
    **options,
) -> list[LoadedSample]:
    """Up to ``limit`` samples (all without a limit) from images visited in a seeded order.

    ``options`` go to `open_dataset` (fold, shots). Images are visited in the order of a
    permutation drawn with ``seed``; all samples of one image are taken before the next.
    """
    adapter = open_dataset(dataset, root, split, seed=seed, **options)
    image_ids = adapter.image_ids()
    order = np.random.default_rng(seed).permutation(len(image_ids))
    drawn: list[LoadedSample] = []
    for index in order:
        if limit is not None and len(drawn) >= limit:
            break
        group = adapter.image_samples(image_ids[index])
        image = load_image(group.image_path)
        drawn += [LoadedSample(group.image_id, image, sample) for sample in group.samples]
    return drawn[:limit]


def dataset_provenance(adapter: Dataset) -> dict:
    """``{"dataset", "root", "split", "files": {file name: sha256}, "synthetic"}`` of an
    adapter's annotation files (images are not hashed); "synthetic" is the marker of an export
    of the synthetic world (`export.export_marker`), None for real data."""
    return {
        "dataset": adapter.name,
        "root": str(Path(adapter.root).resolve()),
        "split": adapter.split,
        "files": {path.name: file_sha256(path) for path in adapter.annotation_files()},
        "synthetic": export_marker(adapter.root),
    }
