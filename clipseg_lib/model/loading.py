"""Find CLIPSeg weights and build a `Segmenter`: bundled `mini`, local dirs, the hub, `.pth`.

Offline first. A local directory or a Hugging Face cache hit never touches the network; a
download is tried only for a hub id that is not cached and only when HF_HUB_OFFLINE is not
set, with short timeouts. A model that cannot be found raises `ModelNotFoundError` saying how
to get it, and that `mini` (bundled with this project) works offline.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
from transformers.utils import logging as transformers_logging

from clipseg_lib.model.segmenter import Segmenter

#: The real checkpoints of the paper's authors, converted by transformers.
HUB_MODELS = ("CIDAS/clipseg-rd64-refined", "CIDAS/clipseg-rd64", "CIDAS/clipseg-rd16")
DEFAULT_MODEL = HUB_MODELS[0]
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
#: Models shipped in `data/`: name -> (directory, sha256 of model.safetensors).
BUNDLED_MODELS = {
    "mini": (DATA_DIR / "mini", "d3458f5bd96fb682b2c353ab82dcb2aa0584a1e1a3e02dee271ea7f14c0cde30"),
}
WEIGHTS_FILE = "model.safetensors"
#: Seconds to wait for the hub before giving up (HF_HUB_ETAG_TIMEOUT / DOWNLOAD_TIMEOUT).
HUB_TIMEOUT_S = 10


class ModelNotFoundError(FileNotFoundError):
    """No weights for the requested model could be found or fetched."""


class WeightsChecksumError(ValueError):
    """Bundled weights whose sha256 differs from the one this package expects."""


def available_models() -> list[str]:
    """Names `load_segmenter` understands besides local paths."""
    return [*BUNDLED_MODELS, *HUB_MODELS]


def load_segmenter(
    source: str | os.PathLike = DEFAULT_MODEL,
    *,
    device: str = "cpu",
    dtype: torch.dtype | str | None = None,
    clip_weights: str | os.PathLike | None = None,
) -> Segmenter:
    """Load a CLIPSeg model and its processor as a `Segmenter`.

    `source`: "mini" (bundled), a Hugging Face id (e.g. "CIDAS/clipseg-rd64-refined"), a
    directory saved with `save_pretrained`, or an original-repository decoder checkpoint
    (`rd64-uni.pth`, `rd64-uni-refined.pth`, `rd16-uni.pth`) together with `clip_weights`,
    a CLIP ViT-B/16 state dict. `dtype`: None (float32) or e.g. torch.bfloat16 / "bfloat16".
    """
    dtype = _as_dtype(dtype)
    name = os.fspath(source)
    if name in BUNDLED_MODELS:
        sha256 = verify_bundled_weights(name)
        return _from_directory(
            BUNDLED_MODELS[name][0], name=name, sha256=sha256, device=device, dtype=dtype
        )
    path = Path(name).expanduser()
    if path.suffix == ".pth":
        from clipseg_lib.model.original_checkpoint import load_original_checkpoint

        if not path.is_file():
            raise ModelNotFoundError(f"decoder checkpoint {name!r}: no such file")
        model, processor = load_original_checkpoint(path, clip_weights)
        return Segmenter(
            model,
            processor,
            name=path.name,
            weights_sha256=file_sha256(path),
            device=device,
            dtype=dtype,
        )
    if path.is_dir():
        return _from_directory(
            path, name=name, sha256=_weights_sha256(path), device=device, dtype=dtype
        )
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(
            f"model {name!r}: not a directory saved with save_pretrained, nor a .pth checkpoint"
        )
    directory = _hub_snapshot(name)
    return _from_directory(
        directory, name=name, sha256=_weights_sha256(directory), device=device, dtype=dtype
    )


def resolve_model_source(source: str) -> str:
    """Turn "auto" into the real CIDAS model when it can be had (cache or download), else "mini"."""
    if source != "auto":
        return source
    try:
        _hub_snapshot(DEFAULT_MODEL)
    except ModelNotFoundError:
        return "mini"
    return DEFAULT_MODEL


def verify_bundled_weights(name: str) -> str:
    """Check a bundled model's weights against the sha256 this package expects; return it."""
    directory, expected = BUNDLED_MODELS[name]
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelNotFoundError(
            f"bundled model {name!r}: {weights} is missing. It is part of the repository; "
            f"retrain it with `python -m clipseg_lib.mini.train` if it was deleted."
        )
    actual = file_sha256(weights)
    if actual != expected:
        raise WeightsChecksumError(
            f"bundled model {name!r}: {weights} has sha256 {actual}, expected {expected}. "
            "The file is corrupt, a Git LFS pointer, or was replaced: "
            "restore it from the repository."
        )
    return actual


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _from_directory(
    directory: Path, *, name: str, sha256: str | None, device: str, dtype: torch.dtype | None
) -> Segmenter:
    processor_files = ("processor_config.json", "preprocessor_config.json")
    if not (directory / "config.json").is_file() or not any(
        (directory / f).is_file() for f in processor_files
    ):
        raise ModelNotFoundError(
            f"model {name!r}: {directory} needs config.json and a processor config; save both "
            "the model and its processor there with save_pretrained"
        )
    with _quiet_transformers():
        try:
            model = CLIPSegForImageSegmentation.from_pretrained(
                directory, local_files_only=True, dtype=torch.float32
            )
        except (RuntimeError, ValueError, OSError) as error:
            raise ValueError(
                f"model {name!r}: the weights in {directory} do not fit its config ({error})"
            ) from error
        processor = CLIPSegProcessor.from_pretrained(directory, local_files_only=True)
    return Segmenter(model, processor, name=name, weights_sha256=sha256, device=device, dtype=dtype)


@contextmanager
def _quiet_transformers() -> Iterator[None]:
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


def _weights_sha256(directory: Path) -> str | None:
    weights = directory / WEIGHTS_FILE
    return file_sha256(weights) if weights.is_file() else None


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _hub_snapshot(repo_id: str) -> Path:
    """The local snapshot of a hub model: from the cache, else downloaded (if allowed)."""
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "*.safetensors"]
    try:
        return Path(snapshot_download(repo_id, local_files_only=True, allow_patterns=patterns))
    except Exception as cache_miss:  # noqa: BLE001 - every failure means "not cached"
        reason = f"not in the Hugging Face cache ({type(cache_miss).__name__})"
    if not _hub_offline():
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(HUB_TIMEOUT_S))
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(HUB_TIMEOUT_S))
        try:
            return Path(snapshot_download(repo_id, allow_patterns=patterns))
        except Exception as download_error:  # noqa: BLE001 - reported to the user below
            reason += f"; download failed ({type(download_error).__name__}: {download_error})"
    else:
        reason += "; HF_HUB_OFFLINE is set, so no download was tried"
    raise ModelNotFoundError(
        f"model {repo_id!r}: {reason}. To get it, run once with network access "
        f"`huggingface-cli download {repo_id}` (or save it with save_pretrained and pass the "
        "directory). The bundled model 'mini' works offline: load_segmenter('mini')."
    )


def _as_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"dtype {dtype!r} is not a torch dtype (try 'float32' or 'bfloat16')")
    return resolved
