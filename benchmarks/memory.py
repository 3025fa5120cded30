"""Peak resident memory (MiB) of one image with K prompts, in a fresh process.

python -m benchmarks.memory full float32 16 [--smoke]
"""

from __future__ import annotations

import resource
import sys

import numpy as np
import torch

from benchmarks.models import full_size_segmenter
from benchmarks.run import PROMPTS


def main() -> None:
    _, dtype, prompts, *flags = sys.argv[1:]
    segmenter = full_size_segmenter(smoke="--smoke" in flags, dtype=getattr(torch, dtype))
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    segmenter.predict(image, PROMPTS[: int(prompts)])
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
