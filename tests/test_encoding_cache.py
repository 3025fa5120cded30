"""The encoding cache: one backbone run per distinct input, in memory and across processes
through safetensors files, with results equal bit for bit to encoding again."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clipseg_lib.experiments.architecture import with_input_size
from clipseg_lib.model.encoding_cache import EncodingCache, encoding_key, ledger_totals
from clipseg_lib.model.lru import LruCache
from clipseg_lib.model.random_models import random_segmenter
from clipseg_lib.model.work import input_digest

PROMPTS = ["a red circle", "a blue square"]


@pytest.fixture()
def tiny(tmp_path):
    return random_segmenter(tmp_path / "tiny", smoke=True)


def _key(segmenter, image: np.ndarray, max_layer: int) -> str:
    digest = input_digest(segmenter.preprocess(image))
    return encoding_key(segmenter, digest, image.shape[:2], max_layer)


def _images(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (50, 70, 3), dtype=np.uint8) for _ in range(count)]


def test_a_repeated_input_is_encoded_once_and_every_lookup_is_counted(tiny):
    first, second = _images(2)
    tiny.encoding_cache = EncodingCache()
    encodings = [tiny.encode_image(image) for image in (first, first.copy(), second, first)]
    assert encodings[0] is encodings[1] is encodings[3]
    stats = tiny.encoding_cache.stats
    assert (stats.memory_hits, stats.disk_hits, stats.misses, stats.hits) == (2, 0, 2, 2)
    assert stats.as_dict()["lookups"] == 4
    assert (tiny.work.images, tiny.work.distinct_images) == (4, 2)  # the cost, cache or not


def test_an_encoding_read_from_disk_gives_the_same_probabilities_bit_for_bit(tmp_path):
    image = _images(1)[0]
    uncached = random_segmenter(tmp_path / "a", smoke=True)
    expected = uncached.predict(uncached.encode_image(image), PROMPTS)
    writer = random_segmenter(tmp_path / "b", smoke=True)
    writer.encoding_cache = EncodingCache(directory=tmp_path / "cache")
    written = writer.encode_image(image)
    reader = random_segmenter(tmp_path / "c", smoke=True)  # same seed, another process's view
    reader.encoding_cache = EncodingCache(directory=tmp_path / "cache")
    read = reader.encode_image(image)

    assert reader.encoding_cache.stats.disk_hits == 1
    assert reader.work.as_dict() | {"seconds": 0} == writer.work.as_dict() | {"seconds": 0}
    assert read is not written and (read.original_size, read.input_size) == (
        written.original_size, written.input_size)
    assert all(torch.equal(a, b) for a, b in zip(read.hidden_states, written.hidden_states,
                                                 strict=True))
    assert np.array_equal(reader.predict(read, PROMPTS), expected)
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".safetensors"]


def test_the_key_changes_with_pixels_shape_dtype_weights_input_size_and_layers(tmp_path, tiny):
    image = _images(1)[0]
    changed, lost_in_resizing = image.copy(), image.copy()
    changed[:10, :10] = 0
    lost_in_resizing[0, 0, 0] ^= 1  # the processor resizes to uint8: the backbone sees no change
    same_model = random_segmenter(tmp_path / "same", smoke=True)
    other_weights = random_segmenter(tmp_path / "other", smoke=True, seed=1)
    half = random_segmenter(tmp_path / "half", smoke=True, dtype=torch.bfloat16)
    keys = {
        "base": _key(tiny, image, 2),
        "pixels": _key(tiny, changed, 2),
        "shape": _key(tiny, image.reshape(70, 50, 3), 2),
        "dtype": _key(half, image, 2),
        "weights": _key(other_weights, image, 2),
        "input size": _key(with_input_size(tiny, 32), image, 2),
        "layers": _key(tiny, image, 1),
    }
    assert len(set(keys.values())) == len(keys)
    assert _key(same_model, image, 2) == keys["base"] == _key(tiny, lost_in_resizing, 2)
    tiny.weights_sha256, same_model.weights_sha256 = "a" * 64, "b" * 64
    assert _key(tiny, image, 2) != _key(same_model, image, 2)

    tiny.encoding_cache = EncodingCache()
    tiny.encode_image(image, max_layer=2)
    tiny.encode_image(image, max_layer=1)
    with_input_size(tiny, 32).encode_image(image, max_layer=2)
    assert tiny.encoding_cache.stats.misses == 3 and tiny.encoding_cache.stats.hits == 0


def _encoding_bytes(tiny, image) -> int:
    return sum(s.numel() * s.element_size() for s in tiny.encode_image(image).hidden_states)


def test_the_memory_tier_keeps_the_most_recently_used_within_its_bound(tiny):
    a, b, c = _images(3)
    tiny.encoding_cache = EncodingCache(memory_bytes=int(2.5 * _encoding_bytes(tiny, a)))
    for image in (a, b, a, c):  # c evicts b, the least recently used
        tiny.encode_image(image)
    assert tiny.encoding_cache.stats.misses == 3
    tiny.encode_image(a)
    assert tiny.encoding_cache.stats.misses == 3
    tiny.encode_image(b)
    assert tiny.encoding_cache.stats.misses == 4
    assert len(tiny.encoding_cache.memory) == 2
    assert tiny.encoding_cache.memory.size <= tiny.encoding_cache.memory.capacity


def test_the_disk_tier_deletes_the_least_recently_used_past_its_bound(tmp_path, tiny):
    a, b, c = _images(3)
    probe = EncodingCache(memory_bytes=1, directory=tmp_path / "probe")
    tiny.encoding_cache = probe
    tiny.encode_image(a)
    file_bytes = next((tmp_path / "probe").glob("*.safetensors")).stat().st_size
    cache = EncodingCache(memory_bytes=1, directory=tmp_path / "cache",
                          disk_bytes=int(2.5 * file_bytes))
    tiny.encoding_cache = cache
    for image in (a, b, a, c):  # reading a makes b the least recently used
        tiny.encode_image(image)
        time.sleep(0.02)  # distinct modification times
    assert (cache.stats.disk_hits, cache.stats.misses) == (1, 3)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    tiny.encode_image(a)
    tiny.encode_image(b)
    assert (cache.stats.disk_hits, cache.stats.misses) == (2, 4)


def test_an_lru_bounds_the_prompt_caches_and_a_call_may_hold_more_texts(tiny):
    tiny._text_cache = LruCache(2)
    texts = ["one", "two", "three"]
    together = tiny.embed_prompts(texts)
    tiny._text_cache.clear()
    alone = torch.stack([tiny.embed_prompts(text)[0] for text in texts])
    assert torch.allclose(together, alone, atol=1e-5)
    assert len(tiny._text_cache) == 2 and "one" not in tiny._text_cache


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from types import SimpleNamespace
    import torch
    from clipseg_lib.model.encoding_cache import EncodingCache
    from clipseg_lib.model.segmenter import ImageEncoding

    folder, counter, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    segmenter = SimpleNamespace(
        weights_sha256="w" * 64, precision="float32", device=torch.device("cpu"))

    def encode():
        time.sleep(0.5)
        with counter.open("a") as handle:
            handle.write("encoded\\n")
        states = tuple(torch.arange(4000, dtype=torch.float32).reshape(1, 40, 100) + layer
                       for layer in range(3))
        return ImageEncoding(states, (8, 8), (8, 8))

    cache = EncodingCache(directory=folder, ledger=folder / "ledger")
    (go.parent / f"ready-{cache._token}").touch()
    while not go.exists():
        time.sleep(0.01)
    encoding = cache.encoding(segmenter, bytes(16), (8, 8), 2, encode)
    print(cache.stats.misses, float(sum(s.sum() for s in encoding.hidden_states)))
""")


@pytest.mark.slow
def test_two_processes_asking_for_the_same_key_encode_it_once(tmp_path):
    folder, counter, go = tmp_path / "cache", tmp_path / "encoded.txt", tmp_path / "go"
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(folder), str(counter),
                                 str(go)], stdout=subprocess.PIPE, text=True, env=environment)
               for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # both have imported torch: they ask at the same moment
    outputs = [writer.communicate(timeout=300)[0].split() for writer in writers]

    assert all(writer.returncode == 0 for writer in writers)
    assert counter.read_text().splitlines() == ["encoded"]
    assert sorted(misses for misses, _ in outputs) == ["0", "1"]
    assert outputs[0][1] == outputs[1][1]
    assert sorted(p.suffix for p in folder.iterdir() if p.is_file()) == [".safetensors"]
    totals = ledger_totals(folder / "ledger")
    assert (totals.lookups, totals.hits, totals.encodings, totals.distinct_inputs) == (2, 1, 1, 1)


def test_a_claim_left_by_a_dead_process_is_taken_over(tmp_path, tiny):
    image = _images(1)[0]
    cache = EncodingCache(directory=tmp_path / "cache")
    key = _key(tiny, image, max(tiny.extract_layers) + 1)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    claim = tmp_path / "cache" / f"{key}.claim"
    claim.write_text(f"{socket.gethostname()} {finished.stdout.strip()}")
    tiny.encoding_cache = cache
    tiny.encode_image(image)
    assert cache.stats.misses == 1 and not claim.exists()


def test_a_damaged_file_is_encoded_again_and_replaced(tmp_path, tiny):
    image = _images(1)[0]
    tiny.encoding_cache = EncodingCache(directory=tmp_path / "cache")
    expected = tiny.encode_image(image)
    [stored] = (tmp_path / "cache").glob("*.safetensors")
    stored.write_bytes(stored.read_bytes()[:100])
    tiny.encoding_cache = EncodingCache(directory=tmp_path / "cache")
    again = tiny.encode_image(image)
    assert tiny.encoding_cache.stats.misses == 1
    assert torch.equal(again.hidden_states[-1], expected.hidden_states[-1])
    assert stored.stat().st_size > 100
