"""Where the time of one segmentation goes, in float32 and in bfloat16 (torch.profiler).

    python -m benchmarks.profile [--smoke]    # writes benchmarks/results/profile.txt

Written because bf16 misses its speed goal on the build machine: the tables show which
operators take the time in each precision, on the full-size random CLIPSeg (ViT-B/16, 352 x 352).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.models import full_size_segmenter
from benchmarks.run import PROMPTS

HERE = Path(__file__).resolve().parent
ROWS = 8


def operator_table(dtype: torch.dtype, image: np.ndarray, smoke: bool) -> str:
    """torch.profiler's table of the top operators (by self CPU time) of one image + 4 prompts,
    after one warm-up call."""
    segmenter = full_size_segmenter(smoke=smoke, dtype=dtype)
    segmenter.predict(image, PROMPTS[:4])
    segmenter.clear_text_cache()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as profiler:
        segmenter.predict(image, PROMPTS[:4])
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=ROWS)


def cpu_flags() -> str:
    """The CPU's vector extensions that matter for bf16/int8 matmuls (Linux)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16")
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags", 2)[1].split("\n", 1)[0].split()
    except (OSError, IndexError):
        return "unknown (no /proc/cpuinfo)"
    return ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in wanted)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "profile.txt")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    sections = [
        f"CPU: {cpu_flags()}; torch {torch.__version__}, {torch.get_num_threads()} threads",
        *(
            f"\n## {name}: one image + 4 prompts\n\n{operator_table(dtype, image, args.smoke)}"
            for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16))
        ),
    ]
    text = "\n".join(sections) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
