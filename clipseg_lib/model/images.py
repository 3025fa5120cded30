"""Reading any image a user may hand over into one convention: RGB, uint8, (H, W, 3).

Accepted: a PIL image, a numpy array, or a path to an image file. Grayscale, RGBA, palette,
CMYK and 16-bit images are converted to RGB (16-bit values scaled by 255/65535, whatever the
image's own maximum); transparent pixels (straight or premultiplied alpha) are composited on
white; EXIF orientation is honoured. Anything else raises `ImageError` (a `ValueError`) that names
the input and the problem.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ImageLike = Image.Image | np.ndarray | str | os.PathLike

#: Images with more pixels than this are refused (10000 x 10000 is still accepted). It lies
#: below PIL's own decompression-bomb limit (2 x 89,478,485), so this is the limit enforced;
#: files whose header declares more are refused by PIL before decoding, reported the same way.
MAX_PIXELS = 10**8
#: PIL modes of 16-bit (or 32-bit integer) grey values, scaled from 0..65535 to 0..255.
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
#: Premultiplied-alpha modes PIL cannot convert to RGBA directly, and their straight twins.
PREMULTIPLIED_MODES = {"La": "LA", "RGBa": "RGBA"}


class ImageError(ValueError):
    """An input image that cannot be used, with the reason."""


def load_image(image: ImageLike, *, name: str | None = None) -> np.ndarray:
    """Return `image` as an RGB uint8 array of shape (H, W, 3).

    `name` is how the input is called in error messages (defaults to the path or type).
    Float arrays must hold values in [0, 1]; uint16 arrays are scaled by 255/65535.
    """
    label = name or (str(image) if isinstance(image, str | os.PathLike) else type(image).__name__)
    if isinstance(image, str | os.PathLike):
        return _read_file(Path(image), label)
    if isinstance(image, Image.Image):
        return _from_pil(image, label)
    if isinstance(image, np.ndarray):
        return _from_array(image, label)
    raise ImageError(
        f"image {label!r}: expected a PIL image, a numpy array or a file path, "
        f"got {type(image).__name__}"
    )


def _read_file(path: Path, label: str) -> np.ndarray:
    if not path.is_file():
        raise ImageError(f"image {label!r}: no such file")
    if path.stat().st_size == 0:
        raise ImageError(f"image {label!r}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                _check_pixels(opened.size, label)
                opened.load()
                return _from_pil(opened, label)
    except UnidentifiedImageError as error:
        raise ImageError(f"image {label!r}: not an image file PIL can read") from error
    except Image.DecompressionBombError as error:
        raise ImageError(
            f"image {label!r}: its header declares more pixels than the limit of "
            f"{MAX_PIXELS:,} ({error})"
        ) from error
    except (OSError, SyntaxError) as error:
        raise ImageError(f"image {label!r}: corrupt or truncated image file ({error})") from error


def _check_pixels(size: tuple[int, int], label: str) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageError(
            f"image {label!r}: {size[0]}x{size[1]} pixels is over the limit of {MAX_PIXELS:,}"
        )


def _from_pil(image: Image.Image, label: str) -> np.ndarray:
    _check_pixels(image.size, label)
    image = ImageOps.exif_transpose(image)
    if image.mode in SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_sixteen_bit_to_uint8(np.asarray(image, dtype=np.int64)))
    if image.mode == "F":
        return _from_array(np.asarray(image, dtype=np.float32), label)
    if image.mode in PREMULTIPLIED_MODES:
        image = image.convert(PREMULTIPLIED_MODES[image.mode])
    if image.has_transparency_data:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA"))
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _from_array(array: np.ndarray, label: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"image {label!r}: array shape {array.shape} is not (H, W), (H, W, 3) or (H, W, 4)"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"image {label!r}: array shape {array.shape} has no pixels")
    _check_pixels((array.shape[1], array.shape[0]), label)
    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _sixteen_bit_to_uint8(array)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"image {label!r}: array contains NaN or infinite values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageError(
                f"image {label!r}: float arrays must hold values in [0, 1], "
                f"got [{array.min():.3g}, {array.max():.3g}]"
            )
        pixels = (array * 255.0 + 0.5).astype(np.uint8)
    else:
        raise ImageError(
            f"image {label!r}: dtype {array.dtype} is not supported "
            "(use uint8, uint16 or float in [0, 1])"
        )
    if pixels.ndim == 2:
        return _gray_to_rgb(pixels)
    if pixels.shape[2] == 4:
        alpha = pixels[:, :, 3:4].astype(np.float32) / 255.0
        blended = pixels[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return (blended + 0.5).astype(np.uint8)
    return np.ascontiguousarray(pixels)


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    """16-bit values (0..65535; outside clipped) to uint8 by the type's range, rounded."""
    return ((np.clip(values, 0, 65535).astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)
