"""Segmenter.work: encodings counted, FLOPs equal torch's flop counter, support images once."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.flop_counter import FlopCounterMode

from clipseg_lib import ImagePrompt, mix
from clipseg_lib.experiments.architecture import with_input_size
from clipseg_lib.model.random_models import full_size_config, random_segmenter
from clipseg_lib.model.work import backbone_flops

pytestmark = pytest.mark.slow  # left out of `make test-fast`


@pytest.fixture()
def tiny(tmp_path):
    segmenter = random_segmenter(tmp_path, smoke=True)
    # torch's flop counter does not count the CPU sdpa kernel; eager attention is plain matmuls
    segmenter.model.set_attn_implementation("eager")
    return segmenter


@pytest.fixture()
def image():
    return np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)


def test_encode_flops_equal_torch_flop_counter(tiny, image):
    for max_layer in (2, tiny.num_layers):
        before = tiny.work.flops
        with FlopCounterMode(display=False) as counter:
            tiny.encode_image(image, max_layer=max_layer)
        assert tiny.work.flops - before == counter.get_total_flops() > 0


def test_support_flops_equal_torch_flop_counter(tiny, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[10:30, 20:50] = True
    with FlopCounterMode(display=False) as counter:
        tiny.embed_prompts([ImagePrompt(image, mask)])
    assert tiny.work.supports == 1
    assert tiny.work.flops == counter.get_total_flops()


def test_repeated_images_are_counted_and_told_apart(tiny, image):
    tiny.encode_image(image)
    tiny.encode_image(image.copy())
    tiny.encode_image(image[::-1].copy())
    work = tiny.work
    assert (work.images, work.distinct_images, work.supports) == (3, 2, 0)
    assert str(work).startswith("3 encodings (3 images, 2 distinct; 0 support images)")
    tiny.reset_work()
    assert tiny.work.encodings == 0 and tiny.work.flops == 0


def test_identical_support_images_are_encoded_once(tiny, image):
    mask = np.zeros(image.shape[:2], bool)
    mask[5:25, 5:30] = True
    first = ImagePrompt(image, mask)
    encoding = tiny.encode_image(image)
    probs = tiny.predict(encoding, [first, ImagePrompt(image.copy(), mask.copy()), mix("a", first)])
    again = tiny.predict(encoding, [first])
    assert tiny.work.supports == 1
    np.testing.assert_array_equal(probs[0], probs[1])
    # A batch of 1, not 3: another reduction order; 1.2e-5 apart under ATEN's default kernels.
    np.testing.assert_allclose(probs[0], again[0], atol=1e-4)
    other = ImagePrompt(image, mask, engineering="none")
    tiny.embed_prompts([other])
    assert tiny.work.supports == 2
    tiny.clear_text_cache()
    fresh = tiny.predict(encoding, [first])
    assert tiny.work.supports == 3
    np.testing.assert_allclose(fresh[0], again[0], atol=1e-6)


def test_full_size_encoding_cost():
    """ViT-B/16 at 352 x 352 (485 tokens), the 10 layers the default extract layers need."""
    config = full_size_config().vision_config
    assert backbone_flops(config, (352, 352), 10) == 76_452_575_232
    assert backbone_flops(config, (352, 352), 12, projection=512) == 91_629_686_784


def test_a_segmenter_at_another_input_size_counts_its_work_in_the_original(tiny, image):
    resized = with_input_size(tiny, 48)
    resized.encode_image(image)
    tiny.encode_image(image)
    resized.encode_image(image)
    work = tiny.work
    assert (work.images, work.distinct_images) == (3, 2)
    assert resized.work == work
    assert work.flops == 2 * backbone_flops(
        tiny.model.config.vision_config, (48, 48), max(tiny.extract_layers) + 1
    ) + backbone_flops(tiny.model.config.vision_config, (tiny.image_size,) * 2,
                       max(tiny.extract_layers) + 1)
    tiny.reset_work()
    assert resized.work.encodings == 0
