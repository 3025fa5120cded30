"""``clipseg-study random-model``: a random full-size CIDAS model in a Hugging Face cache, for
offline full-size runs (see :func:`clipseg_lib.model.random_models.write_hub_cache`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from transformers import CLIPTokenizer

from clipseg_lib.model.loading import HUB_MODELS
from clipseg_lib.model.random_models import HUB_ARCHITECTURES, write_hub_cache


def add_random_model_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study random-model``."""
    parser = commands.add_parser(
        "random-model", help="write a random full-size CIDAS model into a Hugging Face cache",
        description="Write a random full-size CIDAS model into a Hugging Face cache (HF_HOME) "
        "for offline full-size runs.",
    )
    parser.add_argument("--hf-home", type=Path, required=True, help="the HF_HOME to write into")
    parser.add_argument("--model", default=HUB_MODELS[0], choices=sorted(HUB_ARCHITECTURES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bpe-file", type=Path, default=None,
                        help="CLIP's bpe_simple_vocab_16e6.txt.gz (default: open_clip_torch's)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for tests")
    parser.set_defaults(handler=random_model_command)


def random_model_command(arguments: argparse.Namespace) -> int:
    """Write the cache and say where: 0."""
    snapshot = write_hub_cache(arguments.hf_home, arguments.model, seed=arguments.seed,
                               bpe_file=arguments.bpe_file, smoke=arguments.smoke)
    tokens = len(CLIPTokenizer.from_pretrained(snapshot))
    print(f"{arguments.model}: random weights (seed {arguments.seed}), {tokens} tokens "
          f"-> {snapshot}")
    return 0
