"""load_image: every image a user may hand over becomes RGB uint8 (H, W, 3), or a clear error."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipseg_lib import ImageError, ImagePrompt, load_image, load_segmenter
from clipseg_lib.model.images import MAX_PIXELS


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_segmenter(tiny_model_dir)


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


@pytest.mark.parametrize("maximum", [255, 256, 65535])
def test_sixteen_bit_values_are_scaled_by_their_type_not_their_maximum(tmp_path, maximum):
    values = np.array([[0, 128, 255, maximum]], dtype=np.uint16)
    path = _save(tmp_path, Image.fromarray(values), "deep.png")
    expected = [0, 0, 1, round(maximum * 255 / 65535)]
    assert Image.open(path).mode.startswith("I")
    assert load_image(path)[0, :, 0].tolist() == expected
    assert load_image(values)[0, :, 0].tolist() == expected  # files and arrays agree


@pytest.mark.parametrize("mode", ["La", "RGBa"])
def test_premultiplied_alpha_is_composited_on_white(mode):
    transparent = Image.new(mode, (3, 2), (0,) * len(mode))
    assert load_image(transparent)[0, 0].tolist() == [255, 255, 255]
    opaque = Image.new(mode, (3, 2), (100,) * (len(mode) - 1) + (255,))
    assert load_image(opaque)[1, 2].tolist() == [100, 100, 100]


def test_exif_orientation_is_honoured(tmp_path):
    image = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = _save(tmp_path, image, "rotated.jpg", exif=exif)
    assert load_image(path).shape == (6, 2, 3)


def test_one_pixel_image():
    assert load_image(np.zeros((1, 1, 3), dtype=np.uint8)).shape == (1, 1, 3)


@pytest.mark.parametrize("height,width", [(1, 1), (1, 7), (3, 7), (7, 3), (7, 1), (3, 3)])
def test_images_one_or_three_pixels_wide_are_read_channels_last(tiny, height, width):
    image = np.random.default_rng(height * 10 + width).integers(
        0, 256, (height, width, 3), dtype=np.uint8
    )
    stated = tiny.processor.image_processor(
        images=image.transpose(2, 0, 1), return_tensors="pt", input_data_format="channels_first"
    )["pixel_values"]
    assert torch.equal(tiny.preprocess(image), stated)
    assert tiny.predict(image, ["red", "cat"]).shape == (2, height, width)
    support = ImagePrompt(image, np.ones((height, width), dtype=bool))
    assert tiny.predict(image, [support]).shape == (1, height, width)


def test_a_three_pixel_high_image_keeps_its_colours(tiny):
    red = np.zeros((3, 8, 3), dtype=np.uint8)
    red[..., 0] = 255
    means = tiny.preprocess(red)[0].mean(dim=(1, 2))
    expected = tiny.preprocess(np.repeat(red, 3, axis=0))[0].mean(dim=(1, 2))
    torch.testing.assert_close(means, expected)
    torch.testing.assert_close(means, torch.tensor([1.0, -1.0, -1.0]))  # mean 0.5, std 0.5


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


def _png_declaring(tmp_path, width: int, height: int) -> str:
    """A small PNG whose header claims width x height pixels (a decompression bomb's header)."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / f"{width}x{height}.png"
    path.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("side", [12000, 100000])
def test_bomb_headers_are_reported_as_too_large(tmp_path, side):
    """12000^2 passes PIL's own limit, 100000^2 does not: both hit ours, with one message."""
    with pytest.raises(ImageError, match=f"limit of {MAX_PIXELS:,}") as error:
        load_image(_png_declaring(tmp_path, side, side))
    assert "corrupt" not in str(error.value)


def test_the_readme_states_the_enforced_pixel_limit():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    guarantees = readme[readme.index("## Guarantees on bad input"):]
    assert f"{MAX_PIXELS:,} pixels" in guarantees
    assert MAX_PIXELS < 2 * Image.MAX_IMAGE_PIXELS  # ours is hit before PIL's error


def test_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr("clipseg_lib.model.images.MAX_PIXELS", 100)
    path = _save(tmp_path, Image.new("RGB", (20, 20)), "big.png")
    with pytest.raises(ImageError, match="over the limit"):
        load_image(path)
