"""Real-photo cases: a folder of images plus a CSV file of (image, prompt, optional mask) rows.

The cases file has a header with the columns `image` and `prompt`, and optionally `mask`:

    image,prompt,mask
    chelsea.jpg,a cat,
    horse.png,a horse,masks/horse.png

The file is UTF-8 text. `image` is a path relative to the images folder (sub-folders allowed,
nothing outside it: no absolute paths, no `..`); `mask`, when given, is a PNG path relative
to the folder holding the cases file (under the same rule), white (>= 128) where the prompt's
object is, the same size as its image. Rows naming the same image share one image array, so
an experiment can encode each image once (`by_image`). The default set in `data/` is
described in `data/README.md` (origins and licenses); `data/cases_quick.csv`, two of its
photos, is what `clipseg-study run --quick` uses.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipseg_lib.datasets import dataset_provenance, load_samples, open_dataset
from clipseg_lib.model.images import ImageError, load_image
from clipseg_lib.model.loading import DATA_DIR
from clipseg_lib.model.segmenter import Segmenter

DEFAULT_CASES_FILE = DATA_DIR / "cases.csv"
DEFAULT_IMAGES_DIR = DATA_DIR / "images"
#: Two of the default photos (one with a mask): the real-photo cases of a quick run.
QUICK_CASES_FILE = DATA_DIR / "cases_quick.csv"
#: Models whose input is at least this many pixels per side are full-size CLIPSeg; smaller
#: ones (`mini`) know only the synthetic world and skip the photos.
FULL_SIZE_INPUT = 224
REQUIRED_COLUMNS = ("image", "prompt")
OPTIONAL_COLUMNS = ("mask",)
#: Mask pixels at or above this grey level (0..255) belong to the object.
MASK_LEVEL = 128


class CasesError(ValueError):
    """A cases file, or an image or mask it names, that cannot be used; says which line."""


@dataclass(frozen=True, eq=False)
class Case:
    """One real-photo case.

    `image`: RGB uint8 (H, W, 3), read-only and shared by the cases of the same image.
    `mask`: bool (H, W) ground truth, or None when the cases file gives none.
    `name`: the image's file name as written in the cases file.
    """

    image: np.ndarray
    prompt: str
    mask: np.ndarray | None
    name: str


def load_cases(
    cases_file: str | Path = DEFAULT_CASES_FILE, images_dir: str | Path = DEFAULT_IMAGES_DIR
) -> list[Case]:
    """Read every row of `cases_file` into a `Case`, in file order.

    Raises FileNotFoundError when `cases_file` or `images_dir` does not exist, and `CasesError`
    (a ValueError) naming the file and line for text that is not UTF-8, a field over csv's
    size limit, a missing, unknown or repeated column, a row with too many fields, an empty
    image or prompt, a path reaching outside its folder, or an image or mask that is missing,
    unreadable or of the wrong size.
    """
    cases_file, images_dir = Path(cases_file), Path(images_dir)
    if not cases_file.is_file():
        raise FileNotFoundError(f"cases file {cases_file}: no such file")
    if not images_dir.is_dir():
        raise FileNotFoundError(f"images dir {images_dir}: no such directory")
    reader = csv.DictReader(io.StringIO(_read_text(cases_file), newline=""), restval="")
    try:
        reader.fieldnames = _checked_columns(reader.fieldnames, cases_file)
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise CasesError(
            f"{cases_file} line {reader.line_num + 1}: not a valid CSV row ({error})"
        ) from error
    if not rows:
        raise CasesError(f"cases file {cases_file}: no cases after the header")
    images: dict[str, np.ndarray] = {}
    cases = []
    for line, row in rows:
        where = f"{cases_file} line {line}"
        if None in row:
            raise CasesError(
                f"{where}: more fields than the header's {len(reader.fieldnames)}; "
                'quote a prompt that contains a comma ("a cat, sleeping")'
            )
        name, prompt = row["image"].strip(), row["prompt"].strip()
        if not name:
            raise CasesError(f"{where}: the image column is empty")
        if not prompt:
            raise CasesError(f"{where}: the prompt column is empty")
        if name not in images:
            images[name] = _read_image(_inside(images_dir, name, "image", where), where)
        mask_path = row.get("mask", "").strip()
        mask = (
            _read_mask(_inside(cases_file.parent, mask_path, "mask", where), images[name], where)
            if mask_path
            else None
        )
        cases.append(Case(image=images[name], prompt=prompt, mask=mask, name=name))
    return cases


def cases_for_model(
    segmenter: Segmenter,
    cases_file: str | Path = DEFAULT_CASES_FILE,
    images_dir: str | Path = DEFAULT_IMAGES_DIR,
    *,
    with_mask: bool = False,
) -> list[Case]:
    """The cases (only those with a mask if `with_mask`) for a full-size model; for a smaller
    one print one line saying they are skipped and return []."""
    if segmenter.image_size < FULL_SIZE_INPUT:
        print(f"Real-photo cases skipped: {segmenter.name} only knows the synthetic world.")
        return []
    loaded = load_cases(cases_file, images_dir)
    kept = [case for case in loaded if case.mask is not None or not with_mask]
    print(f"Real-photo cases: {len(kept)} prompts on {len(by_image(kept))} photos.")
    return kept


def dataset_cases(
    dataset: str,
    dataset_root: str | Path | None,
    *,
    limit: int | None,
    seed: int = 0,
    split: str | None = None,
) -> tuple[list[Case], dict]:
    """Up to ``limit`` text-prompt samples of a dataset (`clipseg_lib.datasets.load_samples`,
    images visited in a seeded order) as `Case`s, and the data's provenance
    (`dataset_provenance`: dataset, root, split, annotation files' sha256).

    Each case's mask is the sample's target; its name is the dataset's image id, and the cases
    of one image share one read-only image array. Pascal-5i gives its text prompts (shots=0);
    ignore masks are dropped (a case has none).
    Raises ValueError without a ``dataset_root`` and `DatasetError` for a root or split that
    cannot be read as ``dataset``.
    """
    if dataset_root is None:
        raise ValueError(f"dataset {dataset!r} needs dataset_root, the folder holding its files")
    options = {"shots": 0} if dataset == "pascal5i" else {}
    samples = load_samples(dataset, dataset_root, split, limit=limit, seed=seed, **options)
    for loaded in samples:
        loaded.image.flags.writeable = False
    drawn = [
        Case(image=loaded.image, prompt=loaded.sample.prompt, mask=loaded.sample.target,
             name=loaded.image_id)
        for loaded in samples
    ]
    provenance = dataset_provenance(open_dataset(dataset, dataset_root, split, **options))
    print(f"Dataset cases: {len(drawn)} prompts on {len(by_image(drawn))} images of "
          f"{dataset} {provenance['split']}.")
    return drawn, provenance


def by_image(cases: list[Case]) -> dict[str, list[Case]]:
    """Cases grouped by image name, in order of first appearance (encode each image once)."""
    grouped: dict[str, list[Case]] = {}
    for case in cases:
        grouped.setdefault(case.name, []).append(case)
    return grouped


def _read_text(cases_file: Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed), or CasesError naming the line."""
    data = cases_file.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise CasesError(
            f"{cases_file} line {line}: byte 0x{data[error.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from error


def _inside(folder: Path, relative: str, what: str, where: str) -> Path:
    """``folder / relative`` when ``relative`` stays inside ``folder``, else CasesError."""
    path = PurePath(relative)
    if path.is_absolute() or path.anchor or ".." in path.parts:
        raise CasesError(
            f"{where}: {what} {relative!r} reaches outside {folder}; give a path inside it"
        )
    return folder / path


def _checked_columns(columns: list[str] | None, cases_file: Path) -> list[str]:
    """The header's column names without surrounding spaces, or CasesError."""
    if not columns:
        raise CasesError(f"cases file {cases_file}: empty, expected a header image,prompt[,mask]")
    names = [column.strip() for column in columns]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise CasesError(f"cases file {cases_file}: header repeats the columns {repeated}")
    missing = [column for column in REQUIRED_COLUMNS if column not in names]
    unknown = [column for column in names if column not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        problem = f"missing {missing}" if missing else f"unknown {unknown}"
        raise CasesError(
            f"cases file {cases_file}: header {names} has {problem} columns; "
            "expected image,prompt and optionally mask"
        )
    return names


def _read_image(path: Path, where: str) -> np.ndarray:
    try:
        image = load_image(path, name=str(path))
    except ImageError as error:
        raise CasesError(f"{where}: {error}") from error
    image.flags.writeable = False
    return image


def _read_mask(path: Path, image: np.ndarray, where: str) -> np.ndarray:
    if not path.is_file():
        raise CasesError(f"{where}: mask {path}: no such file")
    try:
        with Image.open(path) as opened:
            grey = np.asarray(opened.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise CasesError(f"{where}: mask {path}: not an image file PIL can read") from error
    if grey.shape != image.shape[:2]:
        raise CasesError(
            f"{where}: mask {path} is {grey.shape[1]}x{grey.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]} (width x height)"
        )
    return grey >= MASK_LEVEL
