"""What a person hands the playground, checked: scenes, a folder of photos, uploads, prompts.

Every problem with an input is an `ImageError` or `ValueError` whose message names the input, so
the app can show it in its status line; nothing here raises anything else for bad input.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from clipseg_lib import world
from clipseg_lib.model import loading
from clipseg_lib.model.images import ImageError, load_image

#: Side in pixels of the bundled synthetic scenes (mini sees them at 96, people at this size).
SCENE_SIZE = 288
#: Seeds of the bundled synthetic scenes (test split: never seen in training).
SCENE_SEEDS = (1, 2, 3, 4)
#: Longer sides are shrunk to this before encoding: CLIPSeg sees 352 pixels at most anyway.
MAX_IMAGE_SIDE = 512
IMAGES_DIR = loading.DATA_DIR / "images"
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


@dataclass(frozen=True)
class BundledImage:
    """An image offered in the picker: RGB uint8 (H, W, 3) and the phrases naming its objects."""

    image: np.ndarray
    phrases: tuple[str, ...] = ()


def synthetic_scenes() -> dict[str, BundledImage]:
    """Label -> image of the synthetic scenes of `SCENE_SEEDS`, with the phrases they hold."""
    scenes = {}
    for seed in SCENE_SEEDS:
        scene = world.render_scene(
            seed, size=SCENE_SIZE, split="test", n_shapes=(3, 5), n_words=(0, 1), n_faces=(0, 1)
        )
        phrases = tuple(dict.fromkeys(obj.phrase for obj in scene.objects))
        scenes[f"scene {seed} (synthetic)"] = BundledImage(scene.image, phrases)
    return scenes


def photos(images_dir: str | Path | None) -> tuple[dict[str, BundledImage], list[str]]:
    """(label -> photo, problems) for the image files of `images_dir`, shrunk to fit.

    A file that cannot be read is left out and named in `problems` (one message each), so one
    bad file never stops the app; a folder that is not there is one problem. None: no photos.
    """
    if images_dir is None:
        return {}, []
    folder = Path(images_dir)
    if not folder.is_dir():
        return {}, [f"images folder {str(folder)!r}: not a directory"]
    found, problems = {}, []
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        try:
            found[f"photo {path.name}"] = BundledImage(fit_image(load_image(path, name=path.name)))
        except (ValueError, OSError) as error:
            problems.append(f"skipped {error}")
    return found, problems


def decode_upload(upload_value: tuple[dict, ...], what: str) -> tuple[str, np.ndarray]:
    """(file name, RGB uint8 (H, W, 3)) of the first file of an ipywidgets 8 FileUpload value.

    Raises `ImageError` naming the file when its bytes are not an image PIL can read or its
    header declares more pixels than PIL decodes safely (refused before any pixel is decoded).
    """
    upload = upload_value[0]
    name = upload.get("name", "upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(bytes(upload["content"]))) as opened:
                opened.load()
                return name, load_image(opened, name=name)
    except Image.DecompressionBombError as error:
        raise ImageError(f"{what} {name!r}: too many pixels to decode safely ({error})") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageError(f"{what} {name!r}: not an image file that can be read") from error


def prompt_lines(text: str) -> list[str]:
    """The non-blank lines of `text`, stripped; ValueError naming a line that is not valid text.

    Lone surrogates (which a browser can send but UTF-8 cannot encode) are refused here
    rather than deep inside the tokenizer.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"prompt {line!r}: character {error.start + 1} is not valid Unicode text "
                "(a lone surrogate); retype the prompt"
            ) from error
    return lines


def fit_image(image: np.ndarray) -> np.ndarray:
    """Shrink an RGB uint8 image so that its longer side is at most `MAX_IMAGE_SIDE`."""
    if max(image.shape[:2]) <= MAX_IMAGE_SIDE:
        return image
    picture = Image.fromarray(image)
    picture.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(picture)
