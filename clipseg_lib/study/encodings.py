"""The study run's encoding cache: where it lives, how a notebook attaches it, what it counted.

The runner names the folder, ``<output_dir>/encoding-cache`` (`ENCODING_CACHE_DIR`), to every
notebook kernel through `ENCODING_CACHE_VARIABLE`; `attach_encoding_cache` (called by
``study.start``) then gives the segmenter an `EncodingCache` on that folder, so an image one
notebook encoded is read back by the others, and records each lookup in the run's ledger
(``ledgers/<run id>/``). A notebook executed on its own gets a memory-only cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clipseg_lib.model.encoding_cache import EncodingCache, ledger_totals
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.study.results import kernel_run_id

ENCODING_CACHE_VARIABLE = "CLIPSEG_ENCODING_CACHE"
"""Environment variable through which the runner gives each kernel the run's cache folder."""
ENCODING_CACHE_DIR = "encoding-cache"
"""The cache folder's name in a run's output dir (not a file of any notebook)."""
_LEDGERS = "ledgers"
_NO_RUN = "no-run"


def _ledger(cache_dir: Path, run_id: str | None) -> Path:
    return cache_dir / _LEDGERS / (run_id or _NO_RUN)


def attach_encoding_cache(segmenter: Segmenter) -> EncodingCache:
    """Give `segmenter` (and the twins it makes) the study's encoding cache: on the folder
    `ENCODING_CACHE_VARIABLE` names, with this run's ledger, or in memory only when unset."""
    folder = os.environ.get(ENCODING_CACHE_VARIABLE) or None
    if folder is None:
        cache = EncodingCache()
    else:
        cache = EncodingCache(directory=folder, ledger=_ledger(Path(folder), kernel_run_id()))
    segmenter.encoding_cache = cache
    return cache


def run_encodings(output_dir: Path, run_id: str | None) -> dict[str, Any] | None:
    """What the run `run_id` in `output_dir` looked up in its encoding cache, across all its
    notebooks: lookups, hits, encodings (backbone runs) and distinct inputs; None when no
    notebook used the cache."""
    totals = ledger_totals(_ledger(Path(output_dir) / ENCODING_CACHE_DIR, run_id))
    return None if totals is None else totals.as_dict()
