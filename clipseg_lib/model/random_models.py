"""Randomly initialised CLIPSeg models of the released architectures.

Pretrained weights cannot be downloaded where this project is built, so correctness against
transformers, speed and fine-tuning are checked on these: the computation does not depend on
the weight values. Seeded, so two builds are identical.

`write_hub_cache` puts one into a Hugging Face cache under a CIDAS id, so the whole study can
be run as a user with the real weights would (timings are those of the real model):

    clipseg-study random-model --hf-home /tmp/hf
    HF_HUB_OFFLINE=1 HF_HOME=/tmp/hf clipseg-study run --model CIDAS/clipseg-rd64-refined
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPSegTextConfig,
    CLIPSegVisionConfig,
    CLIPTokenizer,
    ViTImageProcessorPil,
)

from clipseg_lib.model.original_checkpoint import IMAGENET_MEAN, IMAGENET_STD, ORIGINAL_IMAGE_SIZE
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.model.vocabulary import END, START, byte_alphabet, write_tokenizer

DEFAULT_WORDS = (
    "a", "the", "photo", "of", "not", "cat", "dog", "red", "green", "blue", "yellow", "purple",
    "orange", "circle", "square", "triangle", "star", "hexagon", "left", "right",
)
SMOKE_IMAGE_SIZE = 64


#: CIDAS hub id -> (reduce_dim, refined decoder).
HUB_ARCHITECTURES = {
    "CIDAS/clipseg-rd64-refined": (64, True),
    "CIDAS/clipseg-rd64": (64, False),
    "CIDAS/clipseg-rd16": (16, False),
}
#: CLIP's BPE merges as OpenAI published them, shipped inside the open_clip_torch wheel.
CLIP_BPE_FILE = ("open_clip_torch", "open_clip/bpe_simple_vocab_16e6.txt.gz")
CLIP_MERGES = 49152 - 256 - 2
CLIP_MAX_TOKENS = 77


def full_size_config(
    *, smoke: bool = False, refined: bool = True, reduce_dim: int = 64
) -> CLIPSegConfig:
    """CIDAS/clipseg-rd64-refined's architecture (ViT-B/16, `reduce_dim` 64; the plain rd64
    decoder with `refined=False`), or a tiny one of the same shape of code for smoke runs."""
    if smoke:
        vision = CLIPSegVisionConfig(
            image_size=SMOKE_IMAGE_SIZE,
            patch_size=16,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
        )
        text = CLIPSegTextConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=16,
        )
        return CLIPSegConfig(
            text_config=text.to_dict(),
            vision_config=vision.to_dict(),
            projection_dim=16,
            reduce_dim=16,
            decoder_intermediate_size=32,
            use_complex_transposed_convolution=refined,
        )
    return CLIPSegConfig(
        text_config=CLIPSegTextConfig().to_dict(),
        vision_config=CLIPSegVisionConfig(patch_size=16).to_dict(),
        reduce_dim=reduce_dim,
        use_complex_transposed_convolution=refined,
    )


def random_model(
    *, smoke: bool = False, refined: bool = True, seed: int = 0, reduce_dim: int = 64
) -> CLIPSegForImageSegmentation:
    """A seeded random `CLIPSegForImageSegmentation` of `full_size_config`, in eval mode."""
    torch.manual_seed(seed)
    config = full_size_config(smoke=smoke, refined=refined, reduce_dim=reduce_dim)
    return CLIPSegForImageSegmentation(config).eval()


def random_processor(
    directory: str | os.PathLike, *, smoke: bool = False, words: Sequence[str] = DEFAULT_WORDS
) -> CLIPSegProcessor:
    """A CIDAS-style processor (ImageNet statistics, 352 px or 64 px for smoke runs) whose
    CLIP-format vocabulary of `words` is written into `directory`."""
    size = SMOKE_IMAGE_SIZE if smoke else ORIGINAL_IMAGE_SIZE
    image_processor = ViTImageProcessorPil(
        size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    tokenizer = write_tokenizer(directory, list(dict.fromkeys(words)))
    return CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)


def save_random_model(
    directory: str | os.PathLike,
    *,
    smoke: bool = False,
    refined: bool = True,
    seed: int = 0,
    words: Sequence[str] = DEFAULT_WORDS,
) -> Path:
    """Write a random model with its processor as `save_pretrained` does (a directory that
    `load_segmenter(directory)` loads). Returns the directory."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    processor = random_processor(target, smoke=smoke, words=words)
    random_model(smoke=smoke, refined=refined, seed=seed).save_pretrained(target)
    processor.save_pretrained(target)
    return target


def random_segmenter(
    directory: str | os.PathLike,
    *,
    smoke: bool = False,
    refined: bool = True,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Segmenter:
    """A `Segmenter` over `random_model`, its tokenizer files written into `directory`."""
    processor = random_processor(directory, smoke=smoke)
    name = "random CLIPSeg " + ("(tiny)" if smoke else "ViT-B/16 rd64" + "-refined" * refined)
    return Segmenter(
        random_model(smoke=smoke, refined=refined, seed=seed), processor, name=name, dtype=dtype
    )


def installed_clip_bpe() -> Path | None:
    """CLIP's `bpe_simple_vocab_16e6.txt.gz` from an installed open_clip_torch (read as a data
    file, never imported: `pip install --no-deps open_clip_torch` is enough), else None."""
    distribution, relative = CLIP_BPE_FILE
    try:
        path = Path(importlib.metadata.distribution(distribution).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def write_clip_tokenizer(
    directory: str | os.PathLike, bpe_file: str | os.PathLike
) -> CLIPTokenizer:
    """Write CLIP's real 49,408-token tokenizer (`vocab.json`, `merges.txt`, as
    openai/clip-vit-base-patch16 has them) built from OpenAI's BPE file into `directory`."""
    lines = gzip.decompress(Path(bpe_file).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : CLIP_MERGES + 1]]
    if len(merges) != CLIP_MERGES or any(len(pair) != 2 for pair in merges):
        raise ValueError(f"{bpe_file}: not CLIP's BPE file ({CLIP_MERGES} merge lines expected)")
    alphabet = byte_alphabet()
    tokens = [*alphabet, *(a + "</w>" for a in alphabet), *("".join(m) for m in merges)]
    vocabulary = {token: index for index, token in enumerate([*tokens, START, END])}
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    (target / "vocab.json").write_text(json.dumps(vocabulary, ensure_ascii=False), "utf-8")
    (target / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), "utf-8"
    )
    tokenizer = CLIPTokenizer(
        vocab=vocabulary, merges=merges, pad_token=END, model_max_length=CLIP_MAX_TOKENS
    )
    tokenizer.save_pretrained(target)
    return CLIPTokenizer.from_pretrained(target)


def write_hub_cache(
    hf_home: str | os.PathLike,
    repo_id: str = "CIDAS/clipseg-rd64-refined",
    *,
    seed: int = 0,
    bpe_file: str | os.PathLike | None = None,
    smoke: bool = False,
) -> Path:
    """Write a random full-size model of `repo_id`'s architecture with a CIDAS-style processor
    into the Hugging Face cache under `hf_home` (`hub/models--CIDAS--.../snapshots/<rev>` and
    `refs/main`), so `HF_HOME=hf_home HF_HUB_OFFLINE=1 load_segmenter(repo_id)` loads it.

    The tokenizer is CLIP's real vocabulary from `bpe_file` (default: `installed_clip_bpe()`),
    else the small project vocabulary. `<rev>` is derived from the seed and the vocabulary, so
    it names no real hub revision. `smoke`: tiny sizes, for tests. Returns the snapshot
    directory.
    """
    if repo_id not in HUB_ARCHITECTURES:
        raise ValueError(f"repo_id {repo_id!r} is not one of {sorted(HUB_ARCHITECTURES)}")
    bpe = Path(bpe_file) if bpe_file is not None else installed_clip_bpe()
    vocabulary = "clip" if bpe is not None else "small"
    label = f"random {repo_id} seed {seed} {vocabulary}" + " smoke" * smoke
    revision = hashlib.sha1(label.encode()).hexdigest()
    storage = Path(hf_home) / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = storage / "snapshots" / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    size = SMOKE_IMAGE_SIZE if smoke else ORIGINAL_IMAGE_SIZE
    image_processor = ViTImageProcessorPil(
        size={"height": size, "width": size}, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD
    )
    tokenizer = (
        write_clip_tokenizer(snapshot, bpe)
        if bpe is not None
        else write_tokenizer(snapshot, list(DEFAULT_WORDS))
    )
    CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(snapshot)
    reduce_dim, refined = HUB_ARCHITECTURES[repo_id]
    model = random_model(smoke=smoke, refined=refined, seed=seed, reduce_dim=reduce_dim)
    model.save_pretrained(snapshot)
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / "main").write_text(revision)
    return snapshot
