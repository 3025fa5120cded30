"""Train `mini`: a small CLIPSeg learned from scratch on the synthetic world.

The paper's recipe in miniature, in four seeded stages with data drawn on the fly:

0. objects: the vision tower alone learns, through the training-only `ObjectClassHead`, which
   object class (shape, sign, face or background) covers each pixel. CLIP brought shape
   knowledge from 400M image-text pairs; the world's captions alone do not teach it (a linear
   probe on the old recipe's tokens read the shape at 53%, the colour at 98%).
1. pretrain: CLIP-style contrastive learning of the image and text encoders on
   (`render_scene`, `caption`) pairs of the train split, plus the object-class loss.
2. decoder: encoders frozen; the decoder learns (scene, prompt) -> mask on `sample_query`
   (train split): text prompts, image prompts (support engineered with crop_blur_highlight,
   embedded with `get_image_features`), text-image interpolation, ~20% absent objects (empty
   target). Negations get weight 0: the study measures a model that never saw "not".
3. finetune: everything trained (plus the object-class loss), each tower at its own
   learning rate.

`clipseg-study train-mini --output DIR` (:mod:`clipseg_lib.cli.train_mini`) writes what
`load_segmenter` reads (config, fp16 safetensors, processor, tokenizer) plus
`training_summary.json` (settings, wall time, losses, held-out metrics of the saved weights)
into DIR, and nothing anywhere else. DIR must
be new or empty (or hold only the state of a killed run, with --resume); --force writes into
any directory (`--output data/mini --force` retrains the bundled model). `--smoke` trains a
tiny model briefly. Every argument is checked before anything is written.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer

from clipseg_lib.mini.evaluation import held_out_metrics
from clipseg_lib.mini.losses import (
    TRAIN_KIND_WEIGHTS,
    ObjectClassHead,
    contrastive_loss,
    object_class_batch_loss,
    segmentation_loss,
    text_features,
)
from clipseg_lib.mini.recipe import (
    Architecture,
    Schedule,
    build_model,
    build_processor,
)
from clipseg_lib.mini.training_state import (
    TrainingStateError,
    load_training_state,
    save_training_state,
)
from clipseg_lib.model.loading import file_sha256, load_segmenter

STATE_FILE = "training_state.safetensors"
#: What older versions wrote with pickle; never loaded.
PICKLED_STATE_FILE = "training_state.pt"
SPREAD_PROMPTS = ["red", "blue", "red triangle", "blue circle", "the word CAT"]


def warmup_cosine(step: int, steps: int) -> float:
    """Learning-rate factor: linear warmup over the first 5% of steps, then cosine to 0."""
    warmup = max(1, steps // 20)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def prompt_spread(model: CLIPSegForImageSegmentation, tokenizer: CLIPTokenizer) -> float:
    """Mean cosine similarity between the text embeddings of a few different prompts: near 1
    means the text tower has collapsed and the decoder cannot tell prompts apart."""
    with torch.no_grad():
        embeddings = F.normalize(text_features(model, tokenizer, SPREAD_PROMPTS), dim=-1)
    similarities = embeddings @ embeddings.T
    return float(similarities[np.triu_indices(len(SPREAD_PROMPTS), 1)].mean())


@dataclass
class Stage:
    """One training stage: its loss on fresh data from `rng`, and the AdamW parameter groups
    (with their peak "lr") it optimises; the encoders are trained or frozen throughout."""

    name: str
    steps: int
    loss_fn: Callable[[], torch.Tensor]
    groups: list[dict]
    rng: np.random.Generator
    train_encoders: bool
    monitor: Callable[[], str] = str


def run_stage(
    stage: Stage, log_every: int, checkpoint_every: int,
    save_state: Callable[[dict], None], resumed: dict | None = None,
) -> list[float]:
    """Optimise `stage` and return its losses. Every `log_every` steps print the mean loss and
    `stage.monitor()`; every `checkpoint_every` steps hand the optimiser, scheduler, data
    generator and losses to `save_state`; continue from such a `resumed` state if given."""
    optimizer = torch.optim.AdamW(stage.groups, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, stage.steps)
    )
    losses: list[float] = []
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        scheduler.load_state_dict(resumed["scheduler"])
        stage.rng.bit_generator.state = resumed["rng"]
        losses = list(resumed["losses"])
    parameters = [p for group in stage.groups for p in group["params"]]
    bar = tqdm(range(len(losses), stage.steps), desc=stage.name, total=stage.steps,
               initial=len(losses), file=sys.stdout, mininterval=5)
    for step in bar:
        loss = stage.loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == stage.steps:
            mean = np.mean(losses[-log_every:])
            bar.write(f"{stage.name} step {step + 1}/{stage.steps} loss {mean:.4f} "
                      f"{stage.monitor()}")
        if (step + 1) % checkpoint_every == 0 and step + 1 < stage.steps:
            save_state({
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": stage.rng.bit_generator.state, "losses": losses,
            })
    return losses


def train(
    architecture: Architecture, schedule: Schedule, output: Path, *, n_eval: int = 48,
    resume: bool = False, checkpoint_every: int = 100,
) -> dict:
    """Run the stages, save the model into `output` and return the training summary.

    Progress is saved to `output/training_state.safetensors` every `checkpoint_every` steps;
    with `resume` a killed run continues from there and ends exactly as an uninterrupted one.
    Nothing is written into `output` before the first checkpoint."""
    started = time.perf_counter()
    torch.manual_seed(schedule.seed)
    with tempfile.TemporaryDirectory() as scratch:
        processor = build_processor(Path(scratch), architecture)
    model = build_model(architecture, processor.tokenizer).train()
    clip, decoder = model.clip, model.decoder
    head = ObjectClassHead(architecture.hidden_size, architecture.patch_size)
    dense = head if schedule.object_class_loss else None
    heads = list(dense.parameters()) if dense else []
    size, batch, k = architecture.image_size, schedule.batch_size, schedule.prompts_per_scene
    rngs = [np.random.default_rng([schedule.seed, stage]) for stage in range(4)]
    spread = lambda: f"prompt cosine {prompt_spread(model, processor.tokenizer):.3f}"  # noqa: E731
    text = [*clip.text_model.parameters(), *clip.text_projection.parameters()]
    vision = [*clip.vision_model.parameters(), *clip.visual_projection.parameters()]
    stages = [
        Stage("objects", schedule.steps_objects if dense else 0, lambda: object_class_batch_loss(
            model, head, rngs[3], schedule.pretrain_batch_size, size),
            [{"params": [*vision, *heads], "lr": schedule.lr_objects}], rngs[3], True),
        Stage("pretrain", schedule.steps_pretrain, lambda: contrastive_loss(
            model, processor.tokenizer, rngs[0], schedule.pretrain_batch_size, size, dense),
            [{"params": [*text, clip.logit_scale], "lr": schedule.lr_pretrain},
             {"params": [*vision, *heads], "lr": schedule.lr_pretrain_vision}], rngs[0], True,
            spread),
        Stage("decoder", schedule.steps_decoder, lambda: segmentation_loss(
            model, processor, rngs[1], batch, size, train_encoders=False, prompts_per_scene=k),
            [{"params": list(decoder.parameters()), "lr": schedule.lr_decoder}], rngs[1], False),
        Stage("finetune", schedule.steps_finetune, lambda: segmentation_loss(
            model, processor, rngs[2], batch, size, train_encoders=True, prompts_per_scene=k,
            head=dense),
            [{"params": list(decoder.parameters()), "lr": schedule.lr_finetune_decoder},
             {"params": text, "lr": schedule.lr_finetune_text},
             {"params": [*vision, *heads], "lr": schedule.lr_finetune_vision}], rngs[2], True,
            spread),
    ]
    state_file = output / STATE_FILE
    saved = _load_state(output, schedule) if resume else None
    losses: dict[str, list[float]] = saved["completed"] if saved else {}
    earlier_seconds = saved["seconds"] if saved else 0.0
    if saved:
        model.load_state_dict(saved["model"])
        head.load_state_dict(saved["head"])
        torch.set_rng_state(saved["torch_rng"])
    output.mkdir(parents=True, exist_ok=True)
    for index, stage in enumerate(stages):
        if saved and index < saved["stage"]:
            continue

        def save_state(stage_state: dict, index: int = index) -> None:
            seconds = earlier_seconds + time.perf_counter() - started
            state = {"schedule": asdict(schedule), "stage": index, "model": model.state_dict(),
                     "head": head.state_dict(), "torch_rng": torch.get_rng_state(),
                     "completed": losses, "seconds": seconds, **stage_state}
            save_training_state(state_file, state)

        clip.requires_grad_(stage.train_encoders)
        resumed = saved if saved and index == saved["stage"] else None
        losses[stage.name] = run_stage(
            stage, schedule.log_every, checkpoint_every, save_state, resumed
        )
    save(model, build_processor(output, architecture), output)
    state_file.unlink(missing_ok=True)
    train_seconds = earlier_seconds + time.perf_counter() - started
    metrics = held_out_metrics(load_segmenter(output), n=n_eval) if n_eval else {}
    summary = {
        "architecture": asdict(architecture),
        "schedule": asdict(schedule),
        "train_kind_weights": TRAIN_KIND_WEIGHTS,
        "train_wall_seconds": round(train_seconds, 1),
        "resumed": resume and saved is not None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "losses": losses,
        "held_out_metrics": metrics,
        "weights_sha256": file_sha256(output / "model.safetensors"),
    }
    (output / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _load_state(output: Path, schedule: Schedule) -> dict | None:
    """The state a killed run left in `output` (None if there is none), made by `schedule`."""
    if (output / PICKLED_STATE_FILE).exists():
        raise TrainingStateError(
            f"{output / PICKLED_STATE_FILE} was written with pickle by an older version and is "
            "never loaded: delete it and train afresh"
        )
    state_file = output / STATE_FILE
    if not state_file.is_file():
        return None
    state = load_training_state(state_file)
    if state["schedule"] != asdict(schedule):
        raise TrainingStateError(
            f"{state_file} was saved by a run with schedule {state['schedule']}, not "
            f"{asdict(schedule)}: resume with the same options or delete the file"
        )
    return state


def save(model: CLIPSegForImageSegmentation, processor: CLIPSegProcessor, output: Path) -> None:
    """Save fp16 safetensors weights, config and processor (tokenizer included) to `output`."""
    copy.deepcopy(model).half().save_pretrained(output, safe_serialization=True)
    processor.save_pretrained(output)


def output_problem(output: Path, *, resume: bool, force: bool) -> str | None:
    """Why training may not write into `output` (None if it may)."""
    if output.exists() and not output.is_dir():
        return f"--output {output} is a file, not a directory"
    if force or not output.exists():
        return None
    ours = {STATE_FILE, Path(STATE_FILE).with_suffix(".tmp").name} if resume else set()
    others = sorted(path.name for path in output.iterdir() if path.name not in ours)
    if not others:
        return None
    held = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
    model = " (a model)" if "config.json" in others else ""
    return (f"--output {output} already holds {held}{model}: choose a new or empty directory, "
            "or pass --force to write into it")
