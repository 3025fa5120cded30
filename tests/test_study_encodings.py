"""A study run shares one encoding cache: what one notebook encoded, the next reads back, and
the run records encodings = distinct inputs."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from clipseg_lib.runner import run_study as runner
from clipseg_lib.study.encodings import (
    ENCODING_CACHE_DIR,
    ENCODING_CACHE_GIB_VARIABLE,
    ENCODING_CACHE_VARIABLE,
    attach_encoding_cache,
)
from clipseg_lib.study.results import load_results

_NOTEBOOK = """
import numpy as np
from clipseg_lib import study

session = study.start(model, seed=seed, parameters=globals())
segmenter = session.segmenter
rng = np.random.default_rng(0)
images = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(4)]
probabilities = [segmenter.predict(segmenter.encode_image(images[i]), "a circle")
                 for i in {indices}]
session.finish(output_dir, "{name}", {{"mean": float(np.mean(probabilities))}})
"""


def _notebook(path: Path, name: str, indices: list[int]) -> None:
    parameters = nbformat.v4.new_code_cell('model = "mini"\noutput_dir = "out"\nseed = 0')
    parameters.metadata["tags"] = ["parameters"]
    code = nbformat.v4.new_code_cell(_NOTEBOOK.format(name=name, indices=indices))
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    nbformat.write(nbformat.v4.new_notebook(cells=[parameters, code], metadata=kernel), path)


@pytest.mark.slow
def test_the_second_notebook_reads_the_images_the_first_encoded(tmp_path: Path) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "01_first.ipynb", "first", [0, 1, 2])
    _notebook(notebooks / "02_second.ipynb", "second", [1, 2, 3, 1])
    output_dir = tmp_path / "study"

    run = runner.run_study(notebooks, output_dir, model="mini")

    assert not run.failed
    results = load_results(output_dir)
    first = results["first"]["provenance"]["encoding_cache"]
    second = results["second"]["provenance"]["encoding_cache"]
    assert (first["misses"], first["hits"]) == (3, 0)
    assert (second["disk_hits"], second["memory_hits"], second["misses"]) == (2, 1, 1)
    assert results["second"]["results"]["work"]["images"] == 4  # the cost, cache or not
    manifest = json.loads((output_dir / "run.json").read_text())
    assert manifest["encodings"] == {"lookups": 7, "hits": 3, "encodings": 4,
                                     "distinct_inputs": 4}
    assert not any(ENCODING_CACHE_DIR in path for paths in manifest["written_files"].values()
                   for path in paths)
    assert len(list((output_dir / ENCODING_CACHE_DIR).glob("*.safetensors"))) == 4
    report = (output_dir / "report" / "index.html").read_text()
    encodings = "<dt>Encodings</dt><dd>4 = distinct inputs (3 repeats read from the cache)</dd>"
    assert encodings in report


def test_a_notebook_on_its_own_caches_in_memory_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipseg_lib.model.random_models import random_segmenter

    monkeypatch.delenv(ENCODING_CACHE_VARIABLE, raising=False)
    segmenter = random_segmenter(tmp_path, smoke=True)
    cache = attach_encoding_cache(segmenter)
    assert segmenter.encoding_cache is cache and cache.directory is None
    monkeypatch.setenv(ENCODING_CACHE_VARIABLE, str(tmp_path / "cache"))
    assert attach_encoding_cache(segmenter).directory == tmp_path / "cache"


def test_the_user_sizes_the_cache_folder_in_gib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clipseg_lib.model.random_models import random_segmenter

    segmenter = random_segmenter(tmp_path, smoke=True)
    monkeypatch.setenv(ENCODING_CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.delenv(ENCODING_CACHE_GIB_VARIABLE, raising=False)
    assert attach_encoding_cache(segmenter).disk_bytes == 8 * 2**30
    monkeypatch.setenv(ENCODING_CACHE_GIB_VARIABLE, "64")
    assert attach_encoding_cache(segmenter).disk_bytes == 64 * 2**30
    for wrong in ("0", "-1", "lots", "inf", "nan"):
        monkeypatch.setenv(ENCODING_CACHE_GIB_VARIABLE, wrong)
        with pytest.raises(ValueError, match=f"CLIPSEG_ENCODING_CACHE_GIB='{wrong}'"):
            attach_encoding_cache(segmenter)
