"""Speed and memory of the Segmenter against the transformers way, and of the whole study.

    python -m benchmarks.run            # full: ~10 minutes on 2 cores, writes benchmarks/results.*
    python -m benchmarks.run --smoke    # tiny sizes, seconds (CI checks the machinery only)

Timings of the full-size model use a randomly initialised CLIPSeg (ViT-B/16, 352 x 352, rd64
refined): pretrained weights cannot be downloaded here, and speed does not depend on weight
values. Every goal is a ratio of two timings taken in the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.models import full_size_segmenter, mini_segmenter, transformers_logits
from benchmarks.scale import evaluate_throughput, full_size_hub, study_jobs
from clipseg_lib import world
from clipseg_lib.analysis.metrics import iou
from clipseg_lib.model.hardware import bf16_units

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROMPTS = [f"a {c} {s}" for c in world.COLOURS for s in world.SHAPES]
LAYER_TRIPLES = [(3, 5, 8), (2, 4, 7), (4, 5, 6), (3, 6, 9), (5, 7, 8)]


def best_of(function: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def prompt_scaling(segmenter, image, counts, repeats) -> list[dict]:
    """Segmenter (cold text cache) vs transformers (image repeated K times) for K prompts."""
    rows = []
    for count in counts:
        prompts = PROMPTS[:count]

        def ours(prompts=prompts):
            segmenter.clear_text_cache()
            segmenter.predict_logits(segmenter.encode_image(image), prompts)

        theirs = best_of(lambda p=prompts: transformers_logits(segmenter, image, p), repeats)
        mine = best_of(ours, repeats)
        rows.append(
            {
                "prompts": count,
                "transformers_s": theirs,
                "segmenter_s": mine,
                "ratio": mine / theirs,
            }
        )
    return rows


def extract_layer_experiment(segmenter, image, repeats) -> dict:
    """5 triples x 4 prompts: one encoding vs 20 transformers forwards."""
    prompts = PROMPTS[:4]
    deepest = max(max(t) for t in LAYER_TRIPLES) + 1

    def ours():
        segmenter.clear_text_cache()
        encoding = segmenter.encode_image(image, max_layer=deepest)
        for triple in LAYER_TRIPLES:
            segmenter.predict_logits(encoding, prompts, extract_layers=triple)

    def theirs():
        for triple in LAYER_TRIPLES:
            for prompt in prompts:
                transformers_logits(segmenter, image, [prompt], extract_layers=triple)

    mine, reference = best_of(ours, repeats), best_of(theirs, max(1, repeats // 2))
    return {"segmenter_s": mine, "transformers_s": reference, "ratio": mine / reference}


def bf16_comparison(fp32, bf16, images, prompts, repeats) -> dict:
    """Speed of bf16 weights vs fp32, and how far the probabilities move."""
    differences, ious = [], []
    for image in images:
        reference, reduced = fp32.predict(image, prompts), bf16.predict(image, prompts)
        differences.append(float(np.abs(reference - reduced).mean()))
        ious += [iou(a > 0.5, b > 0.5) for a, b in zip(reference, reduced, strict=True)]
    speed = {}
    for name, segmenter in (("fp32", fp32), ("bf16", bf16)):
        speed[name] = best_of(lambda s=segmenter: s.predict(images[0], prompts), repeats)
    return {
        "fp32_s": speed["fp32"],
        "bf16_s": speed["bf16"],
        "speedup": speed["fp32"] / speed["bf16"],
        "mean_abs_dp": float(np.mean(differences)),
        "min_mask_iou": float(np.min(ious)),
        "mean_mask_iou": float(np.mean(ious)),
    }


def backbone_throughput(segmenter, image, repeats) -> dict:
    """Achieved GFLOP/s of encode_image (FLOPs as `Segmenter.work` counts them, attention
    included) next to a square fp32 matmul's in this process."""
    segmenter.reset_work()
    segmenter.encode_image(image)
    flops = segmenter.work.flops
    seconds = best_of(lambda: segmenter.encode_image(image), repeats)
    size = 1024
    a, b = torch.randn(size, size), torch.randn(size, size)
    matmul_s = best_of(lambda: a @ b, 10)
    return {
        "backbone_gflop": flops / 1e9,
        "backbone_s": seconds,
        "backbone_gflops": flops / 1e9 / seconds,
        "matmul_gflops": 2 * size**3 / 1e9 / matmul_s,
    }


def peak_memory(model: str, dtype: str, prompts: int, smoke: bool) -> dict[str, float | None]:
    """Peak RSS (MiB) of a fresh process: {"load": building the model, "predict": segmenting
    one image with `prompts` prompts} (see benchmarks/memory.py)."""
    command = [sys.executable, "-m", "benchmarks.memory", model, dtype, str(prompts)]
    if smoke:
        command.append("--smoke")
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def study_wall_time(quick: bool) -> dict[str, float | int]:
    """{"seconds": wall time of `clipseg-study run --model mini` (with --quick when asked),
    "returncode": its exit status (not 0: some notebook failed and the time does not count)}."""
    command = [
        sys.executable,
        "-m",
        "clipseg_lib",
        "run",
        "--model",
        "mini",
        "--output-dir",
        str(ROOT / "results" / ("bench-quick" if quick else "bench-full")),
    ]
    start = time.perf_counter()
    finished = subprocess.run(
        command + (["--quick"] if quick else []), cwd=ROOT, check=False, capture_output=True
    )
    return {"seconds": time.perf_counter() - start, "returncode": finished.returncode}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--output", type=Path, default=HERE / "results")
    parser.add_argument(
        "--skip-study", action="store_true", help="do not time the study and evaluate runs"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    repeats = 1 if args.smoke else 3
    counts = [1, 2] if args.smoke else [1, 4, 16]
    memory_prompts = 2 if args.smoke else 16
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    full = full_size_segmenter(smoke=args.smoke)
    full_bf16 = full_size_segmenter(smoke=args.smoke, dtype=torch.bfloat16)
    mini, mini_bf16 = mini_segmenter(torch.float32), mini_segmenter(torch.bfloat16)
    scenes = [world.make_query("composite", seed, split="test").scene.image for seed in range(8)]
    results = {
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "smoke": args.smoke,
            "bf16_units": bf16_units(),
        },
        "prompt_scaling": prompt_scaling(full, image, counts, repeats),
        "extract_layers": extract_layer_experiment(full, image, repeats),
        "bf16_full_size": bf16_comparison(full, full_bf16, [image], PROMPTS[:4], repeats),
        "bf16_mini": bf16_comparison(mini, mini_bf16, scenes, PROMPTS[:8], repeats),
        "throughput": backbone_throughput(full, image, repeats),
        "memory_prompts": memory_prompts,
        "peak_rss_mib": {
            dtype: peak_memory("full", dtype, memory_prompts, args.smoke)
            for dtype in ("float32", "bfloat16")
        },
    }
    if not args.skip_study:
        results["study_s"] = {"full": study_wall_time(False), "quick": study_wall_time(True)}
        results["study_jobs"] = study_jobs()
        with tempfile.TemporaryDirectory(prefix="bench-hf-") as hf_home:
            model, environment = "mini", {}
            if not args.smoke:
                model, environment = "CIDAS/clipseg-rd64-refined", full_size_hub(hf_home)
            results["evaluate"] = {
                **evaluate_throughput(model, environment, args.smoke), "model": model
            }
    from benchmarks.table import markdown

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.output / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
