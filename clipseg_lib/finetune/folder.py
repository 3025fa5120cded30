"""The simplest fine-tuning data a user has: a folder of images, masks and a prompt file.

    DIR/images/cat1.jpg        any format PIL reads
    DIR/masks/cat1_ears.png    same size as its image; grey >= 128 is the object (may be empty)
    DIR/prompts.csv            header `image,mask,prompt`, one sample per line:
                               cat1.jpg,cat1_ears.png,the ears of the cat

`image` names a file in `images/`, `mask` one in `masks/`. An image may appear on many lines
(one per prompt); its backbone activations are computed once for all of them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from clipseg_lib.finetune.samples import Sample, load_mask
from clipseg_lib.model.images import load_image

PROMPTS_FILE = "prompts.csv"
COLUMNS = ("image", "mask", "prompt")
#: How many missing files an error lists before it only counts the rest.
LISTED_MISSING = 5


def is_folder(path: str | os.PathLike) -> bool:
    """True when `path` is a directory holding a `prompts.csv`."""
    return (Path(path) / PROMPTS_FILE).is_file()


def read_folder(directory: str | os.PathLike) -> list[Sample]:
    """The samples of a folder in this module's format, in the order of `prompts.csv`.

    Raises ValueError naming the file and line for a missing `prompts.csv`, a header without
    the three columns, an empty prompt, or image/mask files that do not exist (all listed).
    Sizes are checked by `check_samples`.
    """
    root = Path(directory)
    prompts_file = root / PROMPTS_FILE
    if not prompts_file.is_file():
        raise ValueError(
            f"data {os.fspath(root)!r}: no {PROMPTS_FILE} (a folder needs images/, masks/ and "
            f"{PROMPTS_FILE} with the columns {','.join(COLUMNS)})"
        )
    with open(prompts_file, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing_columns = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing_columns:
            raise ValueError(
                f"{prompts_file}: the header {reader.fieldnames} lacks the column(s) "
                f"{missing_columns}; expected {','.join(COLUMNS)}"
            )
        rows = [(reader.line_num, row) for row in reader]
    samples, missing = [], []
    for line, row in rows:
        origin = f"{prompts_file} line {line}"
        image, mask = root / "images" / row["image"], root / "masks" / row["mask"]
        for kind, path in (("image", image), ("mask", mask)):
            if not row[kind] or not path.is_file():
                missing.append(f"line {line}: {kind} {os.fspath(path)!r}")
        samples.append(Sample(image, (row["prompt"] or "").strip(), mask, origin))
    if missing:
        listed = "; ".join(missing[:LISTED_MISSING])
        more = f" and {len(missing) - LISTED_MISSING} more" if len(missing) > LISTED_MISSING else ""
        raise ValueError(f"{prompts_file} names files that do not exist: {listed}{more}")
    if not samples:
        raise ValueError(f"{prompts_file} holds no samples (only a header)")
    return samples


def write_folder(samples: Iterable[Sample], directory: str | os.PathLike) -> Path:
    """Write `samples` in this module's format into `directory` (which must not hold a
    `prompts.csv` yet): images as PNG, one file per distinct image object, masks as 0/255
    PNG. Returns the directory."""
    root = Path(directory)
    if (root / PROMPTS_FILE).exists():
        raise FileExistsError(f"{root / PROMPTS_FILE} exists: write into a new directory")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    image_names: dict[int, str] = {}
    rows = []
    for index, sample in enumerate(samples):
        key = id(sample.image)
        if key not in image_names:
            image_names[key] = f"image_{len(image_names):05d}.png"
            Image.fromarray(load_image(sample.image)).save(root / "images" / image_names[key])
        mask_name = f"mask_{index:05d}.png"
        mask = load_mask(sample.mask).astype(np.uint8) * 255
        Image.fromarray(mask).save(root / "masks" / mask_name)
        rows.append({"image": image_names[key], "mask": mask_name, "prompt": sample.prompt})
    with open(root / PROMPTS_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root
