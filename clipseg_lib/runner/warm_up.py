"""How fast this machine runs the study's model: a short measured warm-up before the plan.

`measure_speed` times the model the notebooks will load (same weights, dtype, device and
thread count) on a world scene (the processor resizes it to the model's input): an image
encoding, a decoder pass and a support-image embedding, each the median of a few runs after
one untimed run; and, in a fresh interpreter, what every notebook pays before its first
case: starting Python with the study's imports and loading the model.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cache

import torch

from clipseg_lib.model.prompts import ImagePrompt
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.world import make_queries

STARTUP_IMPORTS = (
    "import ipykernel.kernelapp, matplotlib.pyplot, clipseg_lib.study, "
    "clipseg_lib.experiments.robustness_figures, clipseg_lib.experiments.probe_figures"
)
"""What a notebook's kernel imports before its first case (the heaviest of the notebooks')."""
MAX_REPEATS = 50
SCENE_SIZE = 64


@dataclass(frozen=True)
class Speed:
    """Seconds on this machine: one `encode_image` at the model's input size (`image_s`), one
    decoder pass on a cached encoding (`decode_s`), one support-image embedding
    (`support_s`), and a notebook's start-up (`startup_s`: interpreter, imports, model load),
    measured on `threads` threads of `device`."""

    image_s: float
    decode_s: float
    support_s: float
    startup_s: float
    threads: int
    device: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Plain numbers for run.json, seconds rounded to the microsecond."""
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _median_seconds(function: Callable[[], object], repeats: int, budget_s: float) -> float:
    """Median seconds of `function` after one untimed call: `repeats` runs, more while the
    runs so far took under `budget_s` (at most `MAX_REPEATS`)."""
    function()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < budget_s and len(times) < MAX_REPEATS):
        start = time.perf_counter()
        function()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def _threads(count: int | None) -> Iterator[int]:
    before = torch.get_num_threads()
    torch.set_num_threads(count or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


@cache
def startup_seconds(load_model: str) -> float:
    """Wall seconds of a fresh interpreter importing `STARTUP_IMPORTS` and running
    `load_model` (Python source that loads the model as a notebook does); measured once per
    process (a grid's combinations share it). An estimate never stops a run: a fresh
    interpreter that fails gives the time it took."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"{STARTUP_IMPORTS}\n{load_model}"], check=False,
                   capture_output=True)
    return time.perf_counter() - start


def measure_speed(segmenter: Segmenter, *, load_model: str, threads: int | None = None,
                  repeats: int = 3, budget_s: float = 1.0) -> Speed:
    """Time `segmenter` here (see the module): each timing the median of `repeats` runs, or
    of as many as `budget_s` seconds allow for a fast model (a busy machine's spread);
    `load_model` is the source `startup_seconds` runs; `threads` (None: torch's current
    count) as the notebooks' kernels will use."""
    # The processor resizes any scene to the model's input: the world's smallest will do.
    [query] = make_queries("image", 1, seed=0, size=SCENE_SIZE)
    support = ImagePrompt(query.support_image, query.support_mask)

    def embed_support() -> None:
        segmenter.clear_text_cache()
        segmenter.predict(encoding, support)

    with _threads(threads) as used:
        image_s = _median_seconds(
            lambda: segmenter.encode_image(query.scene.image), repeats, budget_s
        )
        encoding = segmenter.encode_image(query.scene.image)
        decode_s = _median_seconds(
            lambda: segmenter.predict(encoding, "a shape"), repeats, budget_s
        )
        support_s = max(_median_seconds(embed_support, repeats, budget_s) - decode_s, 0.0)
    return Speed(image_s, decode_s, support_s, startup_seconds(load_model), used,
                 str(segmenter.device))
