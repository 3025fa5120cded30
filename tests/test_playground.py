"""The playground app driven through its widgets, as a person in a notebook would.

The model is the bundled `mini` (committed, loads offline in well under a second).
"""

from __future__ import annotations

import io
import zlib
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from clipseg_lib import playground, world
from clipseg_lib.analysis import plotting


@pytest.fixture(scope="session")
def playground_model() -> str:
    return "mini"


@pytest.fixture
def app(playground_model) -> playground.Playground:
    return playground.Playground(playground_model, images_dir=None)


def upload_value(content: bytes, name: str) -> tuple[dict, ...]:
    """A FileUpload value in ipywidgets 8 format holding one file."""
    return ({"name": name, "type": "image/png", "size": len(content),
             "content": memoryview(content), "last_modified": datetime.now(UTC)},)


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="png")
    return buffer.getvalue()


def decode_png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def test_starts_ready_on_the_first_scene_encoded_once(app):
    first = playground.synthetic_scenes()["scene 1 (synthetic)"]
    assert app.progress.value == "Ready"
    assert app.encode_count == 1 and app.decode_count == 0
    np.testing.assert_array_equal(app.image, first.image)
    assert app.image.shape == (playground.SCENE_SIZE, playground.SCENE_SIZE, 3)
    assert all(phrase in app.hint.value for phrase in first.phrases)
    assert app.masks == {}


def test_each_prompt_line_gets_a_mask_overlay_and_presence_score(app):
    app.prompts.value = "red circle\n\n  blue square  \n"
    assert list(app.masks) == ["red circle", "blue square"]
    overlays = app.gallery.children[1:]
    assert len(overlays) == 2
    for (label, mask), panel in zip(app.masks.items(), overlays, strict=True):
        probs = app.last_probabilities[label]
        assert mask.shape == probs.shape == app.image.shape[:2] and mask.dtype == bool
        np.testing.assert_array_equal(mask, probs > 0.5)
        assert app.presence_scores[label] == pytest.approx(float(probs.max()))
        picture, caption = panel.children
        np.testing.assert_array_equal(decode_png(picture.value), plotting.overlay(app.image, mask))
        assert label in caption.value and f"{app.presence_scores[label]:.2f}" in caption.value
    assert app.status == "2 prompts on scene 1 (synthetic), extract layers (3, 6, 9)"
    assert app.encode_count == 1 and app.decode_count == 1


def test_threshold_rethresholds_cached_probabilities_without_model_calls(app):
    app.prompts.value = "red circle"
    probs = app.last_probabilities["red circle"]
    counts = (app.encode_count, app.decode_count)
    areas = []
    for threshold in (0.0, 0.25, 0.5, 0.75, 1.0):
        app.threshold.value = threshold
        mask = app.masks["red circle"]
        np.testing.assert_array_equal(mask, probs > threshold)
        areas.append(mask.mean())
    assert all(a >= b for a, b in zip(areas, areas[1:], strict=False))
    assert areas[0] > 0.9 and areas[-1] == 0.0
    assert (app.encode_count, app.decode_count) == counts
    assert app.last_probabilities["red circle"] is probs


def test_new_prompts_and_layers_run_only_the_decoder_for_misses(app):
    # scene 1 holds a blue square: a different triple must move its probabilities
    app.prompts.value = "blue square"
    first = app.last_probabilities["blue square"]
    app.prompts.value = "blue square\nthe word CAT"
    assert app.decode_count == 2 and app.encode_count == 1
    assert app.last_probabilities["blue square"] is first

    app.layers.value = (3, 5, 8)
    other_layers = app.last_probabilities["blue square"]
    assert app.decode_count == 3 and app.encode_count == 1
    assert np.abs(other_layers - first).max() > 1e-4
    app.layers.value = (3, 6, 9)
    assert app.decode_count == 3
    assert app.last_probabilities["blue square"] is first


def test_picking_or_uploading_an_image_encodes_it_exactly_once(app):
    app.prompts.value = "red circle"
    app.image_picker.value = "scene 2 (synthetic)"
    assert app.encode_count == 2
    scene_2 = playground.synthetic_scenes()["scene 2 (synthetic)"]
    np.testing.assert_array_equal(app.image, scene_2.image)
    assert app.masks["red circle"].shape == app.image.shape[:2]

    photo = np.random.default_rng(0).integers(0, 256, size=(120, 200, 3), dtype=np.uint8)
    app.image_upload.value = upload_value(png_bytes(photo), "photo.png")
    assert app.encode_count == 3
    assert app.image_picker.value == "upload photo.png"
    np.testing.assert_array_equal(app.image, photo)
    assert app.masks["red circle"].shape == (120, 200)
    assert app.image_upload.value == ()


def test_a_bad_upload_shows_a_message_and_keeps_the_previous_image(app):
    app.prompts.value = "red circle"
    before = app.image.copy()
    garbage = np.random.default_rng(1).bytes(2000)
    app.image_upload.value = upload_value(garbage, "holiday.jpg")
    assert app.status == "uploaded image 'holiday.jpg': not an image file that can be read"
    assert "holiday.jpg" in app.status_widget.value and "#b00020" in app.status_widget.value
    np.testing.assert_array_equal(app.image, before)
    assert app.encode_count == 1
    assert app.image_picker.value == "scene 1 (synthetic)"
    assert list(app.masks) == ["red circle"]


def test_an_empty_prompt_shows_a_message_and_clears_the_overlays(app):
    app.prompts.value = "red circle"
    app.prompts.value = "  \n\t\n"
    app.run_button.click()
    assert app.status == playground.EMPTY_PROMPT_MESSAGE
    assert "#b00020" in app.status_widget.value
    assert app.masks == {} and len(app.gallery.children) == 1
    assert app.decode_count == 1


def test_a_distortion_reencodes_the_distorted_image(app):
    app.prompts.value = "red circle"
    clean = app.image.copy()
    app.severity.value = 5
    assert app.encode_count == 1  # no distortion picked yet: the severity alone changes nothing
    app.distortion.value = "blur"
    assert app.encode_count == 2
    assert np.abs(app.image.astype(int) - clean).mean() > 1.0
    app.severity.value = 1
    assert app.encode_count == 3
    app.distortion.value = playground.NO_DISTORTION
    np.testing.assert_array_equal(app.image, clean)
    assert list(app.masks) == ["red circle"]


def test_an_image_prompt_with_its_mask_adds_a_panel(app):
    query = world.make_query("image", seed=0, size=96)
    app.support_upload.value = upload_value(png_bytes(query.support_image), "support.png")
    assert list(app.masks) == [playground.IMAGE_PROMPT_LABEL]
    unmasked = app.last_probabilities[playground.IMAGE_PROMPT_LABEL]

    mask_image = np.repeat(query.support_mask[:, :, None] * np.uint8(255), 3, axis=2)
    app.support_mask_upload.value = upload_value(png_bytes(mask_image), "mask.png")
    masked = app.last_probabilities[playground.IMAGE_PROMPT_LABEL]
    # compared as logits: where mini is sure the object is absent, both maps are ~1e-7
    logit = lambda p: np.log(p) - np.log1p(-p)  # noqa: E731
    assert np.abs(logit(masked) - logit(unmasked)).max() > 1e-2

    small = np.zeros((10, 10, 3), np.uint8)
    app.support_mask_upload.value = upload_value(png_bytes(small), "small.png")
    assert app.status == ("image prompt mask 'small.png': size (10, 10) does not match the image "
                          "prompt (96, 96)")
    app.clear_support.click()
    assert app.masks == {} and app.status == playground.EMPTY_PROMPT_MESSAGE


def test_a_model_that_cannot_be_found_shows_why_and_keeps_the_current_one(app, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    app.prompts.value = "red circle"
    segmenter = app.segmenter
    app.model_picker.value = "CIDAS/clipseg-rd16"
    assert app.status.startswith("model 'CIDAS/clipseg-rd16': not in the Hugging Face cache")
    assert "load_segmenter('mini')" in app.status
    assert app.segmenter is segmenter and app.model_picker.value == segmenter.name
    assert app.progress.value == "Ready"
    assert list(app.masks) == ["red circle"]


def test_photos_in_the_images_dir_are_offered(playground_model, tmp_path):
    photo = np.random.default_rng(2).integers(0, 256, size=(900, 600, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "street.png")
    (tmp_path / "notes.txt").write_text("not an image")
    app = playground.Playground(playground_model, images_dir=tmp_path, image="photo street.png")
    assert list(app.image_picker.options)[-1] == "photo street.png"
    assert app.image_picker.value == "photo street.png"
    assert app.image.shape == (playground.MAX_IMAGE_SIDE, 341, 3)
    assert app.encode_count == 1


def test_an_image_path_given_at_start_is_used(playground_model, tmp_path):
    photo = np.random.default_rng(3).integers(0, 256, size=(80, 100, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "mine.png")
    app = playground.Playground(playground_model, images_dir=None, image=str(tmp_path / "mine.png"),
                                prompts="red circle", threshold=0.3)
    assert app.image_picker.value == "custom image"
    np.testing.assert_array_equal(app.image, photo)
    probs = app.last_probabilities["red circle"]
    np.testing.assert_array_equal(app.masks["red circle"], probs > 0.3)
    assert app.encode_count == 1 and app.decode_count == 1


def png_declaring_size(width: int, height: int) -> bytes:
    """A PNG whose header declares `width` x `height` (with a valid CRC), one tiny data chunk."""
    content = bytearray(png_bytes(np.zeros((1, 1, 3), np.uint8)))
    content[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    content[29:33] = zlib.crc32(bytes(content[12:29])).to_bytes(4, "big")
    return bytes(content)


def test_an_upload_declaring_a_huge_image_is_refused_before_decoding(app):
    app.prompts.value = "red circle"
    app.image_upload.value = upload_value(png_declaring_size(100_000, 100_000), "bomb.png")
    assert app.status.startswith("uploaded image 'bomb.png': too many pixels to decode safely "
                                 "(Image size (10000000000 pixels)")
    assert "#b00020" in app.status_widget.value
    assert app.image_picker.value == "scene 1 (synthetic)" and app.encode_count == 1
    assert app.image_upload.value == ()


def test_an_unreadable_photo_is_skipped_and_named_in_the_status(playground_model, tmp_path):
    photo = np.random.default_rng(4).integers(0, 256, size=(40, 60, 3), dtype=np.uint8)
    Image.fromarray(photo).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (tmp_path / "bomb.png").write_bytes(png_declaring_size(100_000, 100_000))
    app = playground.Playground(playground_model, images_dir=tmp_path)
    assert [label for label in app.image_picker.options if label.startswith("photo")] == [
        "photo good.png"
    ]
    assert "broken.jpg" in app.status and "bomb.png" in app.status
    assert app.status.startswith("skipped image ")
    assert "#b00020" in app.status_widget.value
    assert app.progress.value == "Ready" and app.encode_count == 1


def test_a_missing_images_dir_is_a_message_not_a_failure(playground_model, tmp_path):
    app = playground.Playground(playground_model, images_dir=tmp_path / "nowhere")
    assert app.status == f"images folder {str(tmp_path / 'nowhere')!r}: not a directory"
    assert app.image_picker.value == "scene 1 (synthetic)"


def test_a_lone_surrogate_prompt_is_a_message_and_clears_the_overlays(app):
    app.prompts.value = "red circle"
    app.prompts.value = "red circle\nblue \ud800square"
    assert app.status.startswith("prompt 'blue \\ud800square': character 6 is not valid")
    assert "#b00020" in app.status_widget.value
    assert app.masks == {} and len(app.gallery.children) == 1
    app.prompts.value = "blue square"
    assert list(app.masks) == ["blue square"]


def test_an_unexpected_error_in_a_handler_is_shown_not_raised(app, monkeypatch):
    def broken_predict(*_args, **_kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(app.segmenter, "predict", broken_predict)
    app.prompts.value = "red circle"
    assert app.status == "unexpected RuntimeError: decoder exploded"
    assert app.masks == {}
