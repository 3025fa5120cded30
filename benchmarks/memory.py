"""Peak resident memory (MiB) of loading a model and of segmenting one image with K prompts.

python -m benchmarks.memory full float32 16 [--smoke]

Runs in a fresh process and prints one JSON line: {"load": MiB, "predict": MiB}. "load" is the
peak while the model is built; "predict" the peak while one image is segmented, measured after
resetting Linux's peak counter (VmHWM, via /proc/self/clear_refs), so it is not hidden by the
build; null where the kernel does not allow the reset.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.models import full_size_segmenter
from benchmarks.run import PROMPTS

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _reset_peak() -> bool:
    """Reset the process's peak RSS to its current RSS; False where that is not possible."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _peak_mib() -> float:
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{STATUS} has no VmHWM line")


def main() -> None:
    _, dtype, prompts, *flags = sys.argv[1:]
    segmenter = full_size_segmenter(smoke="--smoke" in flags, dtype=getattr(torch, dtype))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    resettable = _reset_peak()
    segmenter.predict(image, PROMPTS[: int(prompts)])
    print(json.dumps({"load": load, "predict": _peak_mib() if resettable else None}))


if __name__ == "__main__":
    main()
