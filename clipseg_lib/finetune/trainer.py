"""Fine-tune a CLIPSeg decoder on (image, prompt, mask) samples: the paper's recipe.

CLIP (vision and text towers) stays frozen, bit for bit (`train_text_encoder`, the positive
control of that recipe, trains the text tower beside the decoder); the decoder is trained with
AdamW, learning rate `lr` decayed on a cosine to `min_lr`, binary cross-entropy on the logits,
PhraseCut+-style negatives and optional text-image prompt mixing (`batches`). A seeded share
of the images is held out and scored before and after. The output directory is a
`save_pretrained` model (float32 safetensors, config, processor) that `load_segmenter`
loads, with `finetune.json` beside it: the source model and its sha256, the data's checksum,
every hyper-parameter, the losses, the before/after scores and the library versions.
Progress is saved every `checkpoint_every` steps without pickle (`state`); `resume=True`
continues a killed run to the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch
from tqdm import tqdm

from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD
from clipseg_lib.analysis.stats import Estimate, mean_ci, paired_difference_ci
from clipseg_lib.finetune.batches import BatchPlan
from clipseg_lib.finetune.samples import Sample, check_samples, fingerprint, split_groups
from clipseg_lib.finetune.state import (
    PROVENANCE_FILE,
    OutputDirError,
    TrainingState,
    load_optimizer_tensors,
    optimizer_tensors,
    prepare_output,
    remove_state,
    save_state,
)
from clipseg_lib.finetune.steps import (
    ActivationCache,
    batch_loss,
    cosine_lr,
    embed_all_prompts,
    heldout_ious,
)
from clipseg_lib.model.loading import (
    BUNDLED_MODELS,
    file_sha256,
    load_segmenter,
    quiet_transformers,
)
from clipseg_lib.model.segmenter import Segmenter

_VERSIONED = ("torch", "transformers", "safetensors", "numpy")
TRAINING_DTYPES = ("float32", "float64")
#: The modules of `CLIPSegForImageSegmentation` that make up CLIP's text tower.
TEXT_TOWER = ("clip.text_model", "clip.text_projection")


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters; the defaults are the paper's (AdamW, lr 1e-3 -> 1e-4 cosine, batch
    64, 20% negatives, BCE only; `dice` adds the soft Dice loss). A batch takes up to
    `prompts_per_image` rows per image; `heldout` is the share of images scored and never
    trained on; `image_prompts` the share of rows whose text is mixed with an image prompt of
    the same text. `dtype` is the training arithmetic's: "float64" makes the fine-tuned weights
    the same on every CPU (float32 rounding, which differs between instruction sets, compounds
    over the steps: one decoder's control mIoU moved by 0.019 between AVX2 and AVX-512 kernels),
    at about twice the cost; the saved model is float32 either way. `train_text_encoder` also
    trains CLIP's text tower (`TEXT_TOWER`) with the same optimizer and schedule, its prompts
    embedded again every step; the vision tower stays frozen."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    min_lr: float = 1e-4
    weight_decay: float = 0.01
    negatives: float = 0.2
    image_prompts: float = 0.0
    prompts_per_image: int = 4
    dice: bool = False
    heldout: float = 0.1
    seed: int = 0
    checkpoint_every: int = 100
    dtype: str = "float32"
    train_text_encoder: bool = False

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "prompts_per_image", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "min_lr", "weight_decay", "negatives", "image_prompts", "heldout"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(self, name)}")
        if self.dtype not in TRAINING_DTYPES:
            raise ValueError(f"dtype must be one of {TRAINING_DTYPES}, got {self.dtype!r}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr {self.min_lr}, lr {self.lr}")


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tune produced: the model directory, the fine-tuned model in memory (eval
    mode), the losses (one per step) and the held-out scores (None without held-out images)."""

    output: Path
    segmenter: Segmenter
    losses: list[float]
    before: Estimate | None
    after: Estimate | None
    difference: Estimate | None
    record: dict

    def summary(self) -> str:
        """The before/after lines printed at the end of a run."""
        if self.before is None:
            return f"Saved to {self.output} (no held-out images to score)"
        return (
            f"Held-out mIoU before: {self.before}\nHeld-out mIoU after:  {self.after}\n"
            f"Difference (after - before, paired): {self.difference}\nSaved to {self.output}"
        )


def finetune(
    model: str | os.PathLike,
    data: Iterable[Sample],
    output: str | os.PathLike,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    data_name: str = "samples given in Python",
    resume: bool = False,
    force: bool = False,
    reuse_activations: bool = True,
    cache_mb: float = 2048,
    device: str = "cpu",
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune `model`'s decoder on `data` and save it into `output` (see the module).

    `output` must be new or empty, unless `resume` (continue its saved state) or `force`.
    `reuse_activations` / `cache_mb`: encode each image once and keep its activations (speed
    only: the numbers are the same). Raises ValueError (OutputDirError, ImageError) on bad
    input, before anything is written.
    """
    samples = check_samples(data)
    prints = fingerprint(samples)
    segmenter = load_segmenter(model, device=device, dtype=config.dtype)
    output = Path(output)
    protected = [directory for directory, _ in BUNDLED_MODELS.values()]
    if Path(model).expanduser().is_dir():
        protected.append(Path(model).expanduser())
    train_groups, heldout_groups = split_groups(prints.groups, config.heldout, seed=config.seed)
    if not train_groups:
        raise ValueError("no training images are left after the held-out split")
    resumed = prepare_output(output, resume=resume, force=force, protected=protected)
    run = {
        "source_model": segmenter.name, "source_sha256": segmenter.weights_sha256,
        "data": data_name, "data_checksum": prints.checksum, "config": asdict(config),
    }
    saved, now = _flat(resumed.record["run"] if resumed else run), _flat(run)
    differing = [f"{k} (saved {saved.get(k)}, now {now[k]})" for k in now
                 if k != "data" and saved.get(k) != now[k]]
    if differing:
        raise OutputDirError(
            f"{output} holds the state of a run with another {'; '.join(differing)}: resume "
            "with the same model, data and options, or pass --force to start over"
        )
    torch.manual_seed(config.seed)
    trained = trained_modules(segmenter, config)
    segmenter.model.clip.requires_grad_(False)
    for module in trained.values():
        module.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        [p for module in trained.values() for p in module.parameters()], lr=config.lr,
        weight_decay=config.weight_decay,
    )
    plan = BatchPlan(
        [s.prompt for s in samples], train_groups, batch_size=config.batch_size,
        prompts_per_image=config.prompts_per_image, negatives=config.negatives,
        image_prompts=config.image_prompts, seed=config.seed,
    )
    embed_all_prompts(segmenter, samples)
    if resumed is None:
        before = heldout_ious(segmenter, samples, heldout_groups)
        losses: list[float] = []
        earlier_seconds = 0.0
    else:
        for path, module in trained.items():
            module.load_state_dict({k.removeprefix(f"{path}."): v for k, v in
                                    resumed.tensors.items() if k.startswith(f"{path}.")})
        load_optimizer_tensors(optimizer, resumed.tensors)
        torch.set_rng_state(resumed.tensors["rng.torch"])
        plan.load_state(resumed.record["plan"])
        before, losses = resumed.record["before_ious"], list(resumed.record["losses"])
        earlier_seconds = float(resumed.record["train_seconds"])
    cache = ActivationCache(
        segmenter, samples, plan.groups, reuse=reuse_activations, limit_mb=cache_mb
    )
    bar = tqdm(range(len(losses), config.steps), total=config.steps, initial=len(losses),
               desc="fine-tune", file=sys.stdout, disable=not progress, dynamic_ncols=True)
    started = time.perf_counter()
    for module in trained.values():
        module.train()
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, config.steps, config.lr, config.min_lr)
        loss = batch_loss(segmenter, cache, plan.next_batch(), samples, dice=config.dice,
                          trained_text=config.train_text_encoder)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        _check_finite(trained, losses[-1], step, config)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            seconds = earlier_seconds + time.perf_counter() - started
            _save_progress(output, trained, optimizer, plan, run, before, losses, seconds)
    seconds = earlier_seconds + time.perf_counter() - started
    segmenter = _in_float32(segmenter)
    after = heldout_ious(segmenter, samples, heldout_groups)
    result = _save_model(output, segmenter, run, losses, before, after, len(prints.groups),
                         seconds, cache.encodings, frozen=_frozen_parts(config))
    remove_state(output)
    if progress:
        print(result.summary())
    return result


class DivergedError(ValueError):
    """Training produced a non-finite loss or weight; nothing of it was saved."""


def trained_modules(segmenter: Segmenter, config: FinetuneConfig) -> dict[str, torch.nn.Module]:
    """The modules a run trains, by their path in the model: the decoder, and with
    `config.train_text_encoder` the text tower's (`TEXT_TOWER`)."""
    paths = ("decoder", *(TEXT_TOWER if config.train_text_encoder else ()))
    return {path: segmenter.model.get_submodule(path) for path in paths}


def _frozen_parts(config: FinetuneConfig) -> str:
    if config.train_text_encoder:
        return "clip vision tower; decoder and clip text tower trained"
    return "clip (vision and text towers); decoder trained"


def _check_finite(trained: dict[str, torch.nn.Module], loss: float, step: int,
                  config: FinetuneConfig) -> None:
    """DivergedError naming the step when the loss or a trained weight is NaN or infinite."""
    broken = [f"{path}.{name}" for path, module in trained.items()
              for name, value in module.named_parameters() if not torch.isfinite(value).all()]
    if math.isfinite(loss) and not broken:
        return
    what = f"the loss is {loss}" if not math.isfinite(loss) else f"{broken[0]} is not finite"
    raise DivergedError(
        f"fine-tuning diverged at step {step + 1} of {config.steps}: {what} (lr {config.lr:g}; "
        "a smaller learning rate may help); nothing was saved from this step on"
    )


def _in_float32(segmenter: Segmenter) -> Segmenter:
    """The trained model in float32 and eval mode, as it is saved and will be loaded."""
    return Segmenter(
        segmenter.model.float(), segmenter.processor, name=segmenter.name, kind=segmenter.kind,
        weights_sha256=segmenter.weights_sha256, weights_files=segmenter.weights_files,
        device=segmenter.device, dtype=torch.float32,
    )


def _flat(run: dict) -> dict:
    """A run's identity with the config's entries as "config.<name>" keys."""
    return {**{k: v for k, v in run.items() if k != "config"},
            **{f"config.{k}": v for k, v in run["config"].items()}}


def _save_progress(
    output: Path, trained: dict[str, torch.nn.Module], optimizer: torch.optim.Optimizer,
    plan: BatchPlan, run: dict, before: list[float], losses: list[float], seconds: float,
) -> None:
    tensors = {f"{path}.{k}": v.detach() for path, module in trained.items()
               for k, v in module.state_dict().items()}
    tensors.update(optimizer_tensors(optimizer))
    tensors["rng.torch"] = torch.get_rng_state()
    record = {"step": len(losses), "run": run, "plan": plan.state(), "losses": losses,
              "before_ious": before, "train_seconds": seconds}
    save_state(output, TrainingState(tensors, record))


def _save_model(
    output: Path, segmenter: Segmenter, run: dict, losses: list[float], before: list[float],
    after: list[float], n_images: int, seconds: float, encodings: int, *, frozen: str,
) -> FinetuneResult:
    with quiet_transformers():
        segmenter.model.save_pretrained(output, safe_serialization=True)
        segmenter.processor.save_pretrained(output)
    estimates = (
        (mean_ci(before), mean_ci(after), paired_difference_ci(after, before))
        if before else (None, None, None)
    )
    record = {
        **run,
        "weights_sha256": file_sha256(output / "model.safetensors"),
        "frozen": frozen,
        "n_images": n_images,
        "train_seconds": round(seconds, 3),
        "training_backbone_passes": encodings,  # of this process (after a resume: since it)
        "losses": losses,
        "heldout": {
            "metric": f"IoU of probability > {DEFAULT_THRESHOLD} with the mask, per sample",
            "before_ious": before, "after_ious": after,
            **{name: e.as_dict() if e else None
               for name, e in zip(("before", "after", "difference"), estimates, strict=True)},
        },
        "versions": {name: metadata.version(name) for name in _VERSIONED},
    }
    (output / PROVENANCE_FILE).write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    return FinetuneResult(output, segmenter, losses, *estimates, record)

