"""Fine-tuning steps per second on the full-size CLIPSeg, with and without activation reuse.

    python -m benchmarks.finetune_speed            # ~5 minutes on 2 cores
    python -m benchmarks.finetune_speed --smoke    # the tiny model, seconds

A randomly initialised CLIPSeg (ViT-B/16, 352 x 352, rd64-refined; speed does not depend on
weight values) is fine-tuned with batch 8 on 8 synthetic scenes of 4 prompts each (2 images
per batch) in three ways: every row runs the backbone (what a plain transformers training loop
does); each image of a batch runs it once for its 4 prompts; and each image runs it once for
the whole run (the default: the frozen backbone's activations are cached). The timings are
those of the training loop (`train_seconds` of `finetune.json`), on torch threads = --threads.
Writes benchmarks/results/finetune_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from clipseg_lib import world
from clipseg_lib.finetune import FinetuneConfig, Sample, finetune
from clipseg_lib.mini.losses import scene_prompts
from clipseg_lib.model.random_models import save_random_model

RESULTS = Path(__file__).resolve().parent / "results" / "finetune_speed.json"
#: Name -> (reuse activations, cache megabytes).
MODES = {
    "backbone per row": (False, 0),
    "backbone per image per batch": (True, 0),
    "backbone once per image (cached)": (True, 4096),
}


def scene_samples(n_images: int, prompts_per_image: int, seed: int = 0) -> list[Sample]:
    """`prompts_per_image` (prompt, mask) samples about each of `n_images` train scenes."""
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(n_images):
        scene = world.render_scene(index, size=96, split="train")
        for prompt, mask in scene_prompts(scene, rng, prompts_per_image):
            samples.append(Sample(scene.image, prompt, mask, f"scene {index}"))
    return samples


def main(argv: list[str] | None = None) -> dict:
    """Time each mode; print and save steps per second."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.finetune_speed")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="the tiny model, for CI")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    samples = scene_samples(n_images=8, prompts_per_image=4)
    config = FinetuneConfig(steps=arguments.steps, batch_size=8, prompts_per_image=4,
                            heldout=0.0, checkpoint_every=10**6)
    rows = []
    with tempfile.TemporaryDirectory(prefix="finetune-speed-") as scratch:
        model = save_random_model(Path(scratch) / "model", smoke=arguments.smoke)
        for name, (reuse, cache_mb) in MODES.items():
            result = finetune(model, samples, Path(scratch) / name.replace(" ", "_"), config,
                              reuse_activations=reuse, cache_mb=cache_mb, progress=False)
            seconds = result.record["train_seconds"]
            rows.append({"mode": name, "steps": arguments.steps, "seconds": round(seconds, 2),
                         "steps_per_second": round(arguments.steps / seconds, 3),
                         "backbone_passes": result.record["training_backbone_passes"]})
            print(f"{name:34s} {rows[-1]['steps_per_second']:.3f} steps/s "
                  f"({rows[-1]['backbone_passes']} backbone passes in {arguments.steps} steps)",
                  flush=True)
    report = {
        "model": "random CLIPSeg " + ("(tiny smoke config)" if arguments.smoke
                                       else "ViT-B/16 rd64-refined, 352 x 352"),
        "batch_size": 8, "images_per_batch": 2, "threads": arguments.threads,
        "machine": {"processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
        "torch": torch.__version__, "rows": rows,
    }
    if not arguments.smoke:
        RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
