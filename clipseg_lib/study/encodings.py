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

from clipseg_lib.model.encoding_cache import DEFAULT_DISK_BYTES, EncodingCache, ledger_totals
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.study.parameters import StudyConfigError
from clipseg_lib.study.results import kernel_run_id

ENCODING_CACHE_VARIABLE = "CLIPSEG_ENCODING_CACHE"
"""Environment variable through which the runner gives each kernel the run's cache folder."""
ENCODING_CACHE_GIB_VARIABLE = "CLIPSEG_ENCODING_CACHE_GIB"
"""Environment variable a user sets to bound the cache folder in GiB (default: 8, about 500
full-size encodings of 16 MB; a full-size study has about 3,700 distinct inputs)."""
ENCODING_CACHE_DIR = "encoding-cache"
"""The cache folder's name in a run's output dir (not a file of any notebook)."""
_LEDGERS = "ledgers"
_NO_RUN = "no-run"


def _ledger(cache_dir: Path, run_id: str | None) -> Path:
    return cache_dir / _LEDGERS / (run_id or _NO_RUN)


def attach_encoding_cache(segmenter: Segmenter) -> EncodingCache:
    """Give `segmenter` (and the twins it makes) the study's encoding cache: on the folder
    `ENCODING_CACHE_VARIABLE` names, with this run's ledger and `disk_gib` GiB at most, or in
    memory only when unset."""
    folder = os.environ.get(ENCODING_CACHE_VARIABLE) or None
    if folder is None:
        cache = EncodingCache()
    else:
        cache = EncodingCache(directory=folder, ledger=_ledger(Path(folder), kernel_run_id()),
                              disk_bytes=round(disk_gib() * 2**30))
    segmenter.encoding_cache = cache
    return cache


def disk_gib() -> float:
    """The cache folder's bound in GiB: `ENCODING_CACHE_GIB_VARIABLE`, else 8
    (StudyConfigError when the variable holds no positive number)."""
    text = os.environ.get(ENCODING_CACHE_GIB_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DISK_BYTES / 2**30
    try:
        gib = float(text)
    except ValueError:
        gib = float("nan")
    if not gib > 0 or gib == float("inf"):
        raise StudyConfigError(f"{ENCODING_CACHE_GIB_VARIABLE}={text!r}: give the encoding cache's "
                         f"size in GiB, a positive number such as 64")
    return gib


def run_encodings(output_dir: Path, run_id: str | None) -> dict[str, Any] | None:
    """What the run `run_id` in `output_dir` looked up in its encoding cache, across all its
    notebooks: lookups, hits, encodings (backbone runs) and distinct inputs; None when no
    notebook used the cache."""
    totals = ledger_totals(_ledger(Path(output_dir) / ENCODING_CACHE_DIR, run_id))
    return None if totals is None else totals.as_dict()
