"""``clipseg-study finetune``: fine-tune a CLIPSeg decoder on your own data, CLIP frozen.

    clipseg-study finetune --model CIDAS/clipseg-rd64-refined --data my_data --output my_model
    clipseg-study run --model my_model          # the study on the fine-tuned model

Exit status: 0 done, 2 invalid input (bad data, model or output directory; nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clipseg_lib.finetune import FinetuneConfig, finetune, open_data
from clipseg_lib.finetune.sources import SPEC_FORMS
from clipseg_lib.finetune.trainer import TRAINING_DTYPES
from clipseg_lib.model.loading import DEFAULT_MODEL

_DEFAULTS = FinetuneConfig()


def add_finetune_command(commands: argparse._SubParsersAction) -> None:
    """Register ``clipseg-study finetune`` on the command line's subcommands."""
    parser = commands.add_parser(
        "finetune", help="fine-tune a model's decoder on (image, prompt, mask) data",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"source model ({DEFAULT_MODEL})")
    parser.add_argument("--data", required=True, metavar="SPEC", help=" or ".join(SPEC_FORMS))
    parser.add_argument("--output", required=True, type=Path, metavar="DIR",
                        help="new directory for the fine-tuned model")
    parser.add_argument("--steps", type=int, default=_DEFAULTS.steps)
    parser.add_argument("--lr", type=float, default=_DEFAULTS.lr,
                        help=f"peak learning rate, cosine decay to --min-lr ({_DEFAULTS.lr})")
    parser.add_argument("--min-lr", type=float, default=_DEFAULTS.min_lr)
    parser.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size)
    parser.add_argument("--negatives", type=float, default=_DEFAULTS.negatives,
                        help="share of rows asked a prompt of another image, empty target")
    parser.add_argument("--image-prompts", type=float, default=_DEFAULTS.image_prompts,
                        help="share of rows whose text is mixed with an image prompt")
    parser.add_argument("--dice", action="store_true",
                        help="add the soft Dice loss to BCE (for decoders trained with it)")
    parser.add_argument("--heldout", type=float, default=_DEFAULTS.heldout,
                        help="share of images held out and scored before and after")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--checkpoint-every", type=int, default=_DEFAULTS.checkpoint_every)
    parser.add_argument("--dtype", choices=TRAINING_DTYPES, default=_DEFAULTS.dtype,
                        help="training arithmetic; float64 gives the same weights on every CPU "
                        "at about twice the time (the saved model is float32 either way)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resume", action="store_true", help="continue a killed run in DIR")
    parser.add_argument("--force", action="store_true",
                        help="write into DIR even if it holds other files")
    parser.set_defaults(handler=finetune_command)


def finetune_command(arguments: argparse.Namespace) -> int:
    """``clipseg-study finetune``: 0 done, 2 invalid input."""
    try:
        config = FinetuneConfig(
            steps=arguments.steps, batch_size=arguments.batch_size, lr=arguments.lr,
            min_lr=arguments.min_lr, negatives=arguments.negatives,
            image_prompts=arguments.image_prompts, dice=arguments.dice, heldout=arguments.heldout,
            seed=arguments.seed, checkpoint_every=arguments.checkpoint_every,
            dtype=arguments.dtype,
        )
        finetune(
            arguments.model, open_data(arguments.data), arguments.output, config,
            data_name=arguments.data, resume=arguments.resume, force=arguments.force,
            device=arguments.device,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"clipseg-study: error: {error}", file=sys.stderr)
        return 2
    return 0
