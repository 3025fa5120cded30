"""Segmenter == transformers' CLIPSegForImageSegmentation, on full-size random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipseg_lib import ImagePrompt, mix

pytestmark = pytest.mark.slow  # left out of `make test-fast`

PROMPTS = ["a red triangle", "the cat", "not the left green circle"]
TOLERANCE = 1e-4


def reference_logits(model, processor, image, prompts, *, extract_layers=None) -> np.ndarray:
    """The transformers way: the image repeated once per prompt, one forward."""
    inputs = processor(
        text=prompts, images=[image] * len(prompts), padding=True, return_tensors="pt"
    )
    saved = model.extract_layers
    if extract_layers is not None:
        model.extract_layers = extract_layers
    try:
        with torch.inference_mode():
            return model(**inputs).logits.reshape(len(prompts), 352, 352).numpy()
    finally:
        model.extract_layers = saved


def test_text_prompts_match_transformers(full_size, processor, photo):
    model, segmenter = full_size
    expected = reference_logits(model, processor, photo, PROMPTS)
    actual = segmenter.predict_logits(segmenter.encode_image(photo), PROMPTS)
    assert actual.shape == (3, 352, 352) and actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= TOLERANCE
    assert np.abs(expected).max() > 0.01  # a real signal, not two zero maps


def test_encoding_stops_at_deepest_extract_layer(full_size, photo):
    _, segmenter = full_size
    encoding = segmenter.encode_image(photo)
    assert segmenter.extract_layers == (3, 6, 9)
    assert encoding.max_layer == 10 and len(encoding.hidden_states) == 11
    assert encoding.original_size == (200, 300) and encoding.input_size == (352, 352)


@pytest.mark.parametrize("layers", [(3, 5, 8), (5, 7, 8), (3, 7, 9)])
def test_overridden_extract_layers_match_transformers(full_size, processor, photo, layers):
    model, segmenter = full_size
    encoding = segmenter.encode_image(photo, max_layer=12)
    expected = reference_logits(model, processor, photo, PROMPTS[:2], extract_layers=layers)
    actual = segmenter.predict_logits(encoding, PROMPTS[:2], extract_layers=layers)
    assert np.abs(actual - expected).max() <= TOLERANCE
    default = segmenter.predict_logits(encoding, PROMPTS[:2])
    assert np.abs(actual - default).max() > 1e-3  # the override changes the answer


def test_image_prompt_matches_transformers(full_size, processor, photo):
    model, segmenter = full_size
    support = np.full((120, 160, 3), 30, dtype=np.uint8)
    support[40:80, 60:100] = (200, 40, 40)
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:80, 60:100] = True
    prompt = ImagePrompt(support, mask)
    engineered = prompt.engineered()
    inputs = processor(images=[photo], return_tensors="pt")
    conditional = processor(images=[engineered], return_tensors="pt")["pixel_values"]
    with torch.inference_mode():
        expected = model(
            pixel_values=inputs["pixel_values"], conditional_pixel_values=conditional
        ).logits.reshape(1, 352, 352)
    actual = segmenter.predict_logits(segmenter.encode_image(photo), [prompt])
    assert np.abs(actual - expected.numpy()).max() <= TOLERANCE


def test_mixed_prompt_interpolates_embeddings(full_size):
    _, segmenter = full_size
    support = np.full((64, 64, 3), 100, dtype=np.uint8)
    prompt = ImagePrompt(support)
    text, image, half = segmenter.embed_prompts(["the cat", prompt, mix("the cat", prompt, 0.25)])
    assert torch.allclose(half, 0.25 * text + 0.75 * image, atol=1e-6)


def test_predict_returns_probabilities_at_image_size(full_size, photo):
    _, segmenter = full_size
    probs = segmenter.predict(photo, PROMPTS[:2])
    assert probs.shape == (2, 200, 300) and probs.dtype == np.float32
    assert 0.0 <= probs.min() and probs.max() <= 1.0


def test_text_embeddings_are_cached(full_size):
    _, segmenter = full_size
    first = segmenter.embed_prompts(["a red triangle"])
    assert "a red triangle" in segmenter._text_cache
    assert torch.equal(segmenter.embed_prompts("a red triangle"), first)
    segmenter.clear_text_cache()
    assert segmenter._text_cache == {}
    # Embedded again alone (earlier tests may have batched it with longer prompts).
    again = segmenter.embed_prompts("a red triangle")
    torch.testing.assert_close(again, first, atol=1e-5, rtol=1e-5)
