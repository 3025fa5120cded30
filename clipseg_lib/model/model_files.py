"""What a CLIPSeg model directory must hold, and the fingerprint of its weights.

A directory (saved with `save_pretrained`, or a Hugging Face snapshot) needs `config.json`,
a processor config, the tokenizer's files and weights in one of the layouts transformers
reads: `model.safetensors`, sharded safetensors, or `pytorch_model.bin` (read by transformers
with `torch.load(weights_only=True)`). The weights are fingerprinted by the sha256 of their
bytes, files concatenated in the order transformers reads them (`cat FILES | sha256sum`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

#: Weight layouts in transformers' order of preference: (single file, shard index).
WEIGHTS_LAYOUTS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
#: A CLIP tokenizer is either one fast-tokenizer file or a BPE vocabulary with its merges.
TOKENIZER_FILE_SETS = (("tokenizer.json",), ("vocab.json", "merges.txt"))


class ModelNotFoundError(FileNotFoundError):
    """A model, or a file it needs, could not be found or fetched."""


def weights_files(directory: Path) -> list[Path]:
    """The weight files transformers would read from `directory` (empty list if none)."""
    for single, index in WEIGHTS_LAYOUTS:
        if (directory / single).is_file():
            return [directory / single]
        if (directory / index).is_file():
            try:
                shards = json.loads((directory / index).read_text())["weight_map"].values()
            except (ValueError, KeyError, AttributeError, TypeError) as error:
                raise ValueError(f"{directory / index}: not a shard index ({error})") from error
            return [directory / shard for shard in sorted(set(shards))]
    return []


def missing_model_files(directory: Path) -> list[str]:
    """What `directory` lacks of a CLIPSeg model's config and weights."""
    missing = [] if (directory / "config.json").is_file() else ["config.json"]
    if not weights_files(directory):
        missing.append(" or ".join(single for single, _ in WEIGHTS_LAYOUTS))
    return missing


def missing_processor_files(directory: Path, *, image_processor: bool = True) -> list[str]:
    """What `directory` lacks of a processor: its config (if `image_processor`) and a CLIP
    tokenizer (one fast-tokenizer file, or a BPE vocabulary with its merges)."""
    missing = []
    if image_processor and not any((directory / name).is_file() for name in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if not any(all((directory / f).is_file() for f in files) for files in TOKENIZER_FILE_SETS):
        missing.append(" or ".join(" + ".join(files) for files in TOKENIZER_FILE_SETS))
    return missing


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    return files_sha256([path])


def files_sha256(paths: list[str | os.PathLike] | list[Path]) -> str:
    """Hex sha256 of the files' bytes one after the other (= `cat PATHS | sha256sum`)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
