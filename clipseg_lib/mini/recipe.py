"""What `mini` is: its architecture, training schedule, vocabulary and initialisation.

`clipseg_lib.mini.train` trains it (`clipseg-study train-mini`); tests and benchmarks build
small models from the same pieces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformers import (
    CLIPSegConfig,
    CLIPSegForImageSegmentation,
    CLIPSegProcessor,
    CLIPTokenizer,
    ViTImageProcessorPil,
)
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from clipseg_lib import world
from clipseg_lib.model.vocabulary import END, START, write_tokenizer

#: Words of the world's prompts and captions besides its colours, shapes, words and expressions.
PHRASE_WORDS = (
    "a an the all object shape shapes left right on largest biggest smallest tiniest above below "
    "word sign signs that says saying text face faces cartoon not everything except and no two "
    "three four five six seven eight plain background gradient noisy texture stripes of photo "
    "in image picture this there is are with"
).split()

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
    image_processor = ViTImageProcessorPil(
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
