"""load_image: every image a user may hand over becomes RGB uint8 (H, W, 3), or a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from clipseg_lib import ImageError, load_image


def _save(tmp_path, image: Image.Image, name: str, **options) -> str:
    path = tmp_path / name
    image.save(path, **options)
    return str(path)


@pytest.mark.parametrize(
    "mode,expected",
    [("L", (77, 77, 77)), ("RGBA", (255, 255, 255)), ("CMYK", None), ("P", None), ("LA", None)],
)
def test_modes_become_rgb(tmp_path, mode, expected):
    source = Image.new("RGB", (5, 4), (77, 77, 77)).convert(mode)
    if mode == "RGBA":
        source.putalpha(0)  # fully transparent: composited on white
    for image in (source, _save(tmp_path, source, f"x.{'jpg' if mode == 'CMYK' else 'png'}")):
        pixels = load_image(image)
        assert pixels.shape == (4, 5, 3) and pixels.dtype == np.uint8
        if expected is not None:
            assert tuple(pixels[0, 0]) == expected


def test_sixteen_bit_png_is_scaled(tmp_path):
    array = np.full((3, 3), 65535, dtype=np.uint16)
    array[0, 0] = 0
    path = _save(tmp_path, Image.fromarray(array), "deep.png")
    pixels = load_image(path)
    assert pixels[0, 0].tolist() == [0, 0, 0] and pixels[1, 1].tolist() == [255, 255, 255]
    assert load_image(array)[1, 1].tolist() == [255, 255, 255]


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(tmp_path, image, "rotated.jpg", exif=exif)
    assert load_image(path).shape == (6, 2, 3)


def test_one_pixel_image():
    assert load_image(np.zeros((1, 1, 3), dtype=np.uint8)).shape == (1, 1, 3)


@pytest.mark.parametrize(
    "content,problem",
    [(b"", "empty"), (b"not an image at all", "not an image"), (None, "corrupt or truncated")],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    if content is None:  # a PNG cut in half
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, format="PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    path.write_bytes(content)
    with pytest.raises(ImageError, match=problem) as error:
        load_image(str(path))
    assert "bad.png" in str(error.value)


def test_missing_file():
    with pytest.raises(ImageError, match="no such file"):
        load_image("/nonexistent/picture.png")


@pytest.mark.parametrize(
    "array,problem",
    [
        (np.full((4, 4, 3), np.nan, dtype=np.float32), "NaN"),
        (np.full((4, 4, 3), np.inf), "NaN or infinite"),
        (np.full((4, 4, 3), 2.0), r"\[0, 1\]"),
        (np.zeros((4, 4, 3), dtype=np.int64), "dtype int64"),
        (np.zeros((4, 4, 2), dtype=np.uint8), "shape"),
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "shape"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "no pixels"),
    ],
)
def test_bad_arrays_are_refused(array, problem):
    with pytest.raises(ImageError, match=problem):
        load_image(array, name="query")


def test_float_and_rgba_arrays():
    assert load_image(np.ones((2, 2, 3)))[0, 0].tolist() == [255, 255, 255]
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # black, fully transparent -> white
    assert load_image(rgba)[0, 0].tolist() == [255, 255, 255]


def test_wrong_type():
    with pytest.raises(ImageError, match="expected a PIL image"):
        load_image(42)


def test_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr("clipseg_lib.model.images.MAX_PIXELS", 100)
    path = _save(tmp_path, Image.new("RGB", (20, 20)), "big.png")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(path)
