"""Find CLIPSeg weights and build a `Segmenter`: bundled `mini`, local dirs, the hub, `.pth`.

Offline first (see `clipseg_lib.model.hub`). A model that cannot be found raises
`ModelNotFoundError` saying how to get it, and that `mini` (bundled with this project) works
offline. Weights must fit their config exactly: a missing, unexpected or misshapen tensor
raises `ValueError` naming it, as does a weights file that cannot be read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import torch
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
from transformers.utils import logging as transformers_logging

from clipseg_lib.model.hub import DEFAULT_MODEL, HUB_MODELS, download_command, hub_snapshot
from clipseg_lib.model.model_files import (
    ModelNotFoundError,
    file_sha256,
    files_sha256,
    missing_model_files,
    missing_processor_files,
    weights_files,
)
from clipseg_lib.model.original_checkpoint import load_original_checkpoint
from clipseg_lib.model.quantization import INT8, quantize_backbone
from clipseg_lib.model.segmenter import Segmenter

#: The repository's data folder (cases, photos; `data/mini` links to mini's package data).
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
#: mini's files, shipped inside the package (a wheel or ``pip install .`` carries them).
MINI_DIR = Path(str(resources.files("clipseg_lib") / "mini" / "weights"))
#: Models shipped with the package: name -> (directory, sha256 of model.safetensors).
BUNDLED_MODELS = {
    "mini": (MINI_DIR, "d3458f5bd96fb682b2c353ab82dcb2aa0584a1e1a3e02dee271ea7f14c0cde30"),
}
WEIGHTS_FILE = "model.safetensors"
#: Shown in errors when a local directory lacks files.
_DIRECTORY_HINT = "save the model and its processor there with save_pretrained"


class WeightsChecksumError(ValueError):
    """Bundled weights whose sha256 differs from the one this package expects."""


def available_models() -> list[str]:
    """Names `load_segmenter` understands besides local paths."""
    return [*BUNDLED_MODELS, *HUB_MODELS]


def model_kind(source: str | os.PathLike) -> str:
    """Which kind of model `source` names, as `Segmenter.provenance["kind"]` records it:
    "bundled", "original_checkpoint" (a `.pth` decoder), "directory" or "hub"."""
    name = os.fspath(source)
    if name in BUNDLED_MODELS:
        return "bundled"
    path = Path(name).expanduser()
    if path.suffix == ".pth":
        return "original_checkpoint"
    return "directory" if path.is_dir() else "hub"


def load_segmenter(
    source: str | os.PathLike = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: torch.dtype | str | None = None,
    clip_weights: str | os.PathLike | None = None,
    processor: str | os.PathLike | None = None,
) -> Segmenter:
    """Load a CLIPSeg model and its processor as a `Segmenter`.

    `source`: "mini" (bundled), a Hugging Face id (e.g. "CIDAS/clipseg-rd64-refined"), a
    directory saved with `save_pretrained`, or an original-repository decoder checkpoint
    (`rd64-uni.pth`, `rd64-uni-refined.pth`, `rd16-uni.pth`) together with `clip_weights`,
    a CLIP ViT-B/16 state dict. `processor`: a directory or hub id to take the processor from
    instead of the model's own; for a `.pth` only its tokenizer is used (default: the
    tokenizer of DEFAULT_MODEL). `dtype`: None (float32) or e.g. torch.bfloat16 / "bfloat16",
    or "int8" (the vision backbone's linear layers quantized, CPU only: `quantize_backbone`).
    """
    if dtype == INT8:
        return quantize_backbone(load_segmenter(
            source, device=device, clip_weights=clip_weights, processor=processor))
    dtype = _as_dtype(dtype)
    name = os.fspath(source)
    kind = model_kind(name)
    if kind == "original_checkpoint":
        return _from_original_checkpoint(name, clip_weights, processor, device, dtype)
    if kind == "bundled":
        verify_bundled_weights(name)
        directory, hint = BUNDLED_MODELS[name][0], "restore it from the repository"
    else:
        directory, hint = _local_directory(name, "model")
    _require(directory, missing_model_files(directory), f"model {name!r}", hint)
    if processor is None:
        processor_directory = directory
        _require(directory, missing_processor_files(directory), f"model {name!r}", hint)
    else:
        processor_directory = processor_source_directory(processor)
    with quiet_transformers():
        model = _read_model(directory, name)
        loaded_processor = CLIPSegProcessor.from_pretrained(
            processor_directory, local_files_only=True
        )
    return _segmenter(
        model, loaded_processor, name=name, kind=kind, weights=weights_files(directory),
        device=device, dtype=dtype,
    )


def processor_source_directory(source: str | os.PathLike) -> Path:
    """The local directory of a processor source (a directory, or a hub id from the cache or
    downloaded); it must hold a processor config and a CLIP tokenizer."""
    name = os.fspath(source)
    directory, hint = _local_directory(name, "processor")
    _require(directory, missing_processor_files(directory), f"processor {name!r}", hint)
    return directory


def _local_directory(name: str, role: str) -> tuple[Path, str]:
    """(directory, how to complete it) for a local directory or a hub id (cache or download);
    `role` ("model" or "processor") is how errors call it."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path, _DIRECTORY_HINT
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        also = ", nor a .pth checkpoint" if role == "model" else ""
        raise ModelNotFoundError(
            f"{role} {name!r}: not a directory saved with save_pretrained{also}"
        )
    return hub_snapshot(name, role=role), f"complete the cache with `{download_command(name)}`"


def resolve_model_source(source: str) -> str:
    """Turn "auto" into the real CIDAS model when a complete copy can be had (cache or
    download), else "mini"."""
    if source != "auto":
        return source
    try:
        directory = hub_snapshot(DEFAULT_MODEL)
    except ModelNotFoundError:
        return "mini"
    complete = not missing_model_files(directory) and not missing_processor_files(directory)
    return DEFAULT_MODEL if complete else "mini"


def verify_bundled_weights(name: str) -> str:
    """Check a bundled model's weights against the sha256 this package expects; return it."""
    directory, expected = BUNDLED_MODELS[name]
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(
            f"bundled model {name!r}: {weights} is missing. It is part of the repository; "
            f"retrain it with `clipseg-study train-mini` if it was deleted."
        )
    actual = file_sha256(weights)
    if actual != expected:
        raise WeightsChecksumError(
            f"bundled model {name!r}: {weights} has sha256 {actual}, expected {expected}. "
            "The file is corrupt, a Git LFS pointer, or was replaced: "
            "restore it from the repository."
        )
    return actual


def _from_original_checkpoint(
    name: str,
    clip_weights: str | os.PathLike | None,
    processor: str | os.PathLike | None,
    device: str,
    dtype: torch.dtype | None,
) -> Segmenter:
    path = Path(name).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"decoder checkpoint {name!r}: no such file")
    tokenizer_source = None if processor is None else _tokenizer_directory(processor)
    with quiet_transformers():
        model, loaded_processor = load_original_checkpoint(
            path, clip_weights, processor_source=tokenizer_source
        )
    return _segmenter(
        model, loaded_processor, name=path.name, kind="original_checkpoint",
        weights=[path, Path(clip_weights)], device=device, dtype=dtype,
    )


def _tokenizer_directory(source: str | os.PathLike) -> Path:
    """Like `processor_source_directory`, but only a CLIP tokenizer is needed."""
    name = os.fspath(source)
    directory, hint = _local_directory(name, "processor")
    missing = missing_processor_files(directory, image_processor=False)
    _require(directory, missing, f"processor {name!r}", hint)
    return directory


def _segmenter(
    model: CLIPSegForImageSegmentation,
    processor: CLIPSegProcessor,
    *,
    name: str,
    kind: str,
    weights: list[Path],
    device: str,
    dtype: torch.dtype | None,
) -> Segmenter:
    """Check that the tokenizer fits the text tower and that every weight is finite, then wrap
    both with their provenance."""
    vocabulary, rows = len(processor.tokenizer), model.config.text_config.vocab_size
    if vocabulary > rows:
        raise ValueError(
            f"model {name!r}: its tokenizer has {vocabulary} tokens but the text embedding "
            f"only {rows} rows: the tokenizer belongs to another model"
        )
    not_finite = [key for key, tensor in model.state_dict().items()
                  if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if not_finite:
        raise ValueError(
            f"model {name!r}: the weights {', '.join(map(str, weights))} hold NaN or infinite "
            f"values in {_some(not_finite)} (a training run that diverged?)"
        )
    return Segmenter(
        model, processor, name=name, kind=kind, weights_sha256=files_sha256(weights),
        weights_files=[path.name for path in weights], device=device, dtype=dtype,
    )


def _require(directory: Path, missing: list[str], label: str, hint: str) -> None:
    if missing:
        raise ModelNotFoundError(f"{label}: {directory} lacks {', '.join(missing)}; {hint}")


def _read_model(directory: Path, name: str) -> CLIPSegForImageSegmentation:
    """transformers' own loading, then an exact comparison of the weights with the config."""
    files = ", ".join(str(path) for path in weights_files(directory))
    try:
        model, info = CLIPSegForImageSegmentation.from_pretrained(
            directory, local_files_only=True, dtype=torch.float32,
            output_loading_info=True, ignore_mismatched_sizes=True,
        )
    except Exception as error:  # noqa: BLE001 - safetensors, pickle and OS errors alike
        raise ValueError(
            f"model {name!r}: the weights {files} cannot be read (corrupt or truncated?): "
            f"{type(error).__name__}: {str(error)[:200]}"
        ) from error
    problems = [
        f"{label} {_some(keys)}"
        for label, keys in (
            ("missing keys", sorted(info["missing_keys"])),
            ("unexpected keys", sorted(info["unexpected_keys"])),
            ("shape mismatches", [
                f"{key} {tuple(saved)} vs {tuple(expected)}"
                for key, saved, expected in sorted(info["mismatched_keys"])
            ]),
            ("errors", list(info["error_msgs"])),
        )
        if keys
    ]
    if problems:
        raise ValueError(
            f"model {name!r}: the weights {files} do not fit its config: {'; '.join(problems)}"
        )
    return model


def _some(items: list[str], shown: int = 4) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' advice ("install torchvision") and progress bars while loading."""
    previous = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(previous)
        if bars:
            transformers_logging.enable_progress_bar()


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ValueError(
            f"dtype {dtype!r} is not a float torch dtype (try 'float32', 'bfloat16' or 'int8')")
    return resolved
