"""Which model a run's verdicts are about, in words, and where its card is.

The model is named as the runner resolved it (``run.json``'s ``model_resolved``) or as results
recorded it (provenance ``model``). Only the bundled model and hub ids are known to be what their
name says; a local directory or checkpoint is described as what it is, never as "pretrained
CLIPSeg weights".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clipseg_lib.model.loading import BUNDLED_MODELS

CARD_NAMES = ("MODEL_CARD.md", "README.md")
HUB_URL = "https://huggingface.co/{}"
RANDOM_PREFIX = "random"


@dataclass(frozen=True)
class ModelDescription:
    """``kind`` (bundled, hub, local directory, original checkpoint, random, unknown), a
    sentence for readers, and its card: a local Markdown file or a web address (or neither)."""

    kind: str
    sentence: str
    card_file: Path | None = None
    card_url: str | None = None


def _card_in(directory: Path) -> Path | None:
    return next((directory / name for name in CARD_NAMES if (directory / name).is_file()), None)


def describe_model(model: str | None, weights_sha256: str | None = None) -> ModelDescription:
    """What ``model`` is; ``weights_sha256`` (from provenance) is quoted for local models."""
    if not model:
        return ModelDescription("unknown", "an unrecorded model (no run.json and no provenance)")
    digest = f" (weights sha256 {weights_sha256[:12]}…)" if weights_sha256 else ""
    if model in BUNDLED_MODELS:
        directory = BUNDLED_MODELS[model][0]
        return ModelDescription(
            "bundled",
            f"{model}, the small model bundled with this repository, trained from scratch on "
            "its synthetic world: not CLIPSeg's pretrained weights. A verdict on it says what "
            "this architecture learns from that world, not what the released CLIPSeg does.",
            card_file=_card_in(directory),
        )
    if model.lower().startswith(RANDOM_PREFIX):
        return ModelDescription(
            "random",
            f"{model}, a randomly initialised network: its numbers say nothing about CLIPSeg.",
        )
    path = Path(model).expanduser()
    if path.suffix == ".pth":
        return ModelDescription(
            "original checkpoint",
            f"the original repository's decoder checkpoint {model}{digest}, with the CLIP "
            "backbone it was loaded with",
        )
    if path.is_dir() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        return ModelDescription(
            "local directory",
            f"the model saved in the local directory {model}{digest}; what it holds is whatever "
            "was saved there",
            card_file=_card_in(path) if path.is_dir() else None,
        )
    return ModelDescription(
        "hub", f"the Hugging Face checkpoint {model}{digest}", card_url=HUB_URL.format(model)
    )
