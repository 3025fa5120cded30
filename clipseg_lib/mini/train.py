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

`python -m clipseg_lib.mini.train --output data/mini` writes what `load_segmenter` reads
(config, fp16 safetensors, processor, tokenizer) plus `training_summary.json` (settings, wall
time, losses, held-out metrics of the saved weights). `--smoke` trains a tiny model briefly.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPTokenizer,
    ViTImageProcessor,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from clipseg_lib import world
from clipseg_lib.mini.evaluation import held_out_metrics
from clipseg_lib.mini.losses import (
    TRAIN_KIND_WEIGHTS,
    ObjectClassHead,
    contrastive_loss,
    object_class_batch_loss,
    segmentation_loss,
    text_features,
)
from clipseg_lib.model.loading import file_sha256, load_segmenter
from clipseg_lib.model.vocabulary import END, START, write_tokenizer

DEFAULT_OUTPUT = Path(__file__).resolve().parents[2] / "data" / "mini"
#: Words of the world's prompts and captions besides its colours, shapes, words and expressions.
PHRASE_WORDS = (
    "a an the all object shape shapes left right on largest biggest smallest tiniest above below "
    "word sign signs that says saying text face faces cartoon not everything except and no two "
    "three four five six seven eight plain background gradient noisy texture stripes of photo "
    "in image picture this there is are with"
).split()
STATE_FILE = "training_state.pt"
SPREAD_PROMPTS = ["red", "blue", "red triangle", "blue circle", "the word CAT"]


@dataclass(frozen=True)
class Architecture:
    """Sizes of the CLIPSeg model (transformers' classes; no complex transposed convolution)."""

    image_size: int = 96
    patch_size: int = 8
    hidden_size: int = 64
    vision_layers: int = 12
    text_layers: int = 4
    attention_heads: int = 4
    max_text_tokens: int = 32
    projection_dim: int = 64
    reduce_dim: int = 64
    extract_layers: tuple[int, ...] = (3, 6, 9)
    decoder_attention_heads: int = 4
    decoder_intermediate_size: int = 256


@dataclass(frozen=True)
class Schedule:
    """Steps, batch sizes, peak learning rates (warmup + cosine per stage), seed and threads.

    Decoder and finetune batches hold `batch_size` scenes, each asked `prompts_per_scene`
    prompts (its world query plus text prompts about its objects). With `object_class_loss`,
    the objects stage runs and pretraining and finetuning add `ObjectClassHead`'s loss.
    """

    steps_objects: int = 2500
    steps_pretrain: int = 400
    steps_decoder: int = 200
    steps_finetune: int = 4000
    pretrain_batch_size: int = 32
    batch_size: int = 16
    prompts_per_scene: int = 6
    seed: int = 0
    threads: int = 1
    lr_objects: float = 3e-3
    lr_pretrain: float = 1e-3
    lr_pretrain_vision: float = 1e-3
    lr_decoder: float = 1e-3
    lr_finetune_decoder: float = 5e-4
    lr_finetune_text: float = 1e-3
    lr_finetune_vision: float = 1e-3
    object_class_loss: bool = True
    log_every: int = 50


SMOKE_ARCHITECTURE = Architecture(
    image_size=64, hidden_size=32, vision_layers=4, text_layers=2, attention_heads=2,
    projection_dim=32, reduce_dim=32, extract_layers=(1, 2, 3), decoder_attention_heads=2,
    decoder_intermediate_size=64,
)
SMOKE_SCHEDULE = Schedule(
    steps_objects=8, steps_pretrain=8, steps_decoder=30, steps_finetune=8, pretrain_batch_size=16,
    batch_size=8, prompts_per_scene=2, lr_decoder=3e-3, log_every=5,
)


def world_words() -> list[str]:
    """Every word (lower case) the world's prompts and captions use, plus a few common ones."""
    shapes = list(world.SHAPES)
    words = [*world.COLOURS, *shapes, *(f"{s}s" for s in shapes), *world.WORDS,
             *world.EXPRESSIONS, *PHRASE_WORDS]
    return sorted({word.lower() for word in words})


def build_processor(directory: Path, architecture: Architecture) -> CLIPSegProcessor:
    """Write the world's CLIP tokenizer into `directory`; return it with a CLIP-normalising
    image processor at the model's resolution."""
    tokenizer = write_tokenizer(directory, world_words())
    side = architecture.image_size
    image_processor = ViTImageProcessor(
        size={"height": side, "width": side}, image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )
    return CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_model(
    architecture: Architecture, tokenizer: CLIPTokenizer
) -> CLIPSegForImageSegmentation:
    """A randomly initialised CLIPSeg of `architecture` whose text side fits `tokenizer`."""
    a = architecture
    shared = {
        "hidden_size": a.hidden_size, "intermediate_size": 4 * a.hidden_size,
        "num_attention_heads": a.attention_heads,
    }
    special = {
        "bos_token_id": tokenizer.convert_tokens_to_ids(START),
        "eos_token_id": tokenizer.convert_tokens_to_ids(END),
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPSegConfig(
        text_config={
            **shared, **special, "vocab_size": len(tokenizer), "num_hidden_layers": a.text_layers,
            "max_position_embeddings": a.max_text_tokens,
        },
        vision_config={
            **shared, "image_size": a.image_size, "patch_size": a.patch_size,
            "num_hidden_layers": a.vision_layers,
        },
        projection_dim=a.projection_dim,
        reduce_dim=a.reduce_dim,
        extract_layers=list(a.extract_layers),
        decoder_num_attention_heads=a.decoder_attention_heads,
        decoder_intermediate_size=a.decoder_intermediate_size,
        use_complex_transposed_convolution=False,
    )
    model = CLIPSegForImageSegmentation(config)
    # CLIPSegConfig has no initializer_range, so transformers draws these layers from N(0, 1);
    # give them PyTorch's default initialisation, as the original CLIPSeg code has.
    decoder = model.decoder
    for layer in (decoder.film_mul, decoder.film_add, decoder.transposed_convolution,
                  *decoder.reduces):
        layer.reset_parameters()
    return model


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

    Progress is saved to `output/training_state.pt` every `checkpoint_every` steps; with
    `resume` a killed run continues from there and ends exactly as an uninterrupted one."""
    started = time.perf_counter()
    torch.manual_seed(schedule.seed)
    output.mkdir(parents=True, exist_ok=True)
    processor = build_processor(output, architecture)
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
    saved = _load_state(state_file, schedule) if resume and state_file.is_file() else None
    losses: dict[str, list[float]] = saved["completed"] if saved else {}
    earlier_seconds = saved["seconds"] if saved else 0.0
    if saved:
        model.load_state_dict(saved["model"])
        head.load_state_dict(saved["head"])
    for index, stage in enumerate(stages):
        if saved and index < saved["stage"]:
            continue

        def save_state(stage_state: dict, index: int = index) -> None:
            seconds = earlier_seconds + time.perf_counter() - started
            state = {"schedule": asdict(schedule), "stage": index, "model": model.state_dict(),
                     "head": head.state_dict(),
                     "completed": losses, "seconds": seconds, **stage_state}
            torch.save(state, state_file.with_suffix(".tmp"))
            state_file.with_suffix(".tmp").replace(state_file)

        clip.requires_grad_(stage.train_encoders)
        resumed = saved if saved and index == saved["stage"] else None
        losses[stage.name] = run_stage(
            stage, schedule.log_every, checkpoint_every, save_state, resumed
        )
    save(model, processor, output)
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


def _load_state(state_file: Path, schedule: Schedule) -> dict:
    state = torch.load(state_file, weights_only=False)
    if state["schedule"] != asdict(schedule):
        raise ValueError(
            f"{state_file} was saved by a run with schedule {state['schedule']}, not "
            f"{asdict(schedule)}: resume with the same options or delete the file"
        )
    return state


def save(model: CLIPSegForImageSegmentation, processor: CLIPSegProcessor, output: Path) -> None:
    """Save fp16 safetensors weights, config and processor (tokenizer included) to `output`."""
    copy.deepcopy(model).half().save_pretrained(output, safe_serialization=True)
    processor.save_pretrained(output)


_OVERRIDES = (
    "steps_objects", "steps_pretrain", "steps_decoder", "steps_finetune", "batch_size", "seed",
    "threads",
)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a step count, batch size or thread count out of range is refused."""
    parser = argparse.ArgumentParser(prog="python -m clipseg_lib.mini.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Schedule()
    for name in _OVERRIDES:
        parser.add_argument(f"--{name.replace('_', '-')}", type=int,
                            help=f"default {getattr(defaults, name)}")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="directory to write the model into (default data/mini)")
    parser.add_argument("--eval-queries", type=int, default=48,
                        help="held-out queries per kind scored after training (0: none)")
    parser.add_argument("--resume", action="store_true",
                        help="continue a killed run from OUTPUT/training_state.pt")
    parser.add_argument("--smoke", action="store_true", help="tiny model, a few steps (CI)")
    arguments = parser.parse_args(argv)
    for name in (*_OVERRIDES, "eval_queries"):
        value = getattr(arguments, name)
        minimum = 1 if name in ("batch_size", "threads") else 0
        if value is not None and value < minimum:
            parser.error(f"--{name.replace('_', '-')} must be >= {minimum}, got {value}")
    return arguments


def main(argv: list[str] | None = None) -> dict:
    """Train as the command line says; print and return the training summary."""
    arguments = parse_arguments(argv)
    architecture = SMOKE_ARCHITECTURE if arguments.smoke else Architecture()
    schedule = SMOKE_SCHEDULE if arguments.smoke else Schedule()
    overrides = {n: getattr(arguments, n) for n in _OVERRIDES if getattr(arguments, n) is not None}
    schedule = replace(schedule, **overrides)
    torch.set_num_threads(schedule.threads)
    summary = train(architecture, schedule, arguments.output, n_eval=arguments.eval_queries,
                    resume=arguments.resume)
    shown = ("train_wall_seconds", "held_out_metrics", "weights_sha256")
    print(json.dumps({key: summary[key] for key in shown}, indent=1))
    return summary


if __name__ == "__main__":
    main()
