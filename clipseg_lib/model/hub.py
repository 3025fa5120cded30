"""Hugging Face hub models, offline first.

A cached snapshot is used without touching the network; a download is tried only for a
model that is not cached and only when HF_HUB_OFFLINE is not set, with short timeouts.
Safetensors weights are preferred; a repository or cache holding only `pytorch_model.bin`
gets that file (transformers reads it with `torch.load(weights_only=True)`).
"""

from __future__ import annotations

import os
from pathlib import Path

from clipseg_lib.model.model_files import ModelNotFoundError, weights_files

#: The real checkpoints of the paper's authors, converted by transformers.
HUB_MODELS = ("CIDAS/clipseg-rd64-refined", "CIDAS/clipseg-rd64", "CIDAS/clipseg-rd16")
DEFAULT_MODEL = HUB_MODELS[0]
#: Seconds to wait for the hub before giving up (HF_HUB_ETAG_TIMEOUT / DOWNLOAD_TIMEOUT).
HUB_TIMEOUT_S = 10
#: Configs, processor and tokenizer files, and safetensors weights (single or sharded).
PREFERRED_PATTERNS = ["*.json", "*.txt", "*.safetensors"]
#: Pickle-format weights, fetched only when a repository has no safetensors.
FALLBACK_PATTERNS = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE forbids downloads."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def download_command(repo_id: str) -> str:
    """The shell command that puts `repo_id` into the Hugging Face cache."""
    return f"hf download {repo_id}"


def hub_snapshot(repo_id: str, *, role: str = "model") -> Path:
    """The local snapshot directory of a hub repository: from the cache, else downloaded (if
    allowed). `role` ("model" or "processor") is how errors call it.

    Raises `ModelNotFoundError` saying why and how to get it.
    """
    try:
        return _snapshot(repo_id, local_files_only=True)
    except Exception as cache_miss:  # noqa: BLE001 - every failure means "not cached"
        reason = f"not in the Hugging Face cache ({type(cache_miss).__name__})"
    if hub_offline():
        reason += "; HF_HUB_OFFLINE is set, so no download was tried"
    else:
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(HUB_TIMEOUT_S))
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", str(HUB_TIMEOUT_S))
        try:
            return _snapshot(repo_id, local_files_only=False)
        except Exception as download_error:  # noqa: BLE001 - reported to the user below
            reason += f"; download failed ({type(download_error).__name__}: {download_error})"
    offline_model = " The bundled model 'mini' works offline: load_segmenter('mini')."
    raise ModelNotFoundError(
        f"{role} {repo_id!r}: {reason}. To get it, run once with network access "
        f"`{download_command(repo_id)}` (or save it with save_pretrained and pass the "
        f"directory).{offline_model if role == 'model' else ''}"
    )


def _snapshot(repo_id: str, *, local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download

    directory = Path(
        snapshot_download(
            repo_id, local_files_only=local_files_only, allow_patterns=PREFERRED_PATTERNS
        )
    )
    if weights_files(directory):
        return directory
    return Path(
        snapshot_download(
            repo_id, local_files_only=local_files_only, allow_patterns=FALLBACK_PATTERNS
        )
    )
