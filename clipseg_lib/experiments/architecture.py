"""CLIPSeg's architecture read from its config: parts, parameter counts, tensor shapes, input sizes.

CLIPSeg (Lüddecke & Ecker 2022) keeps CLIP frozen and trains only a small decoder:

- Backbone: CLIP's vision transformer cuts the image into patches (16 px for ViT-B/16), one
  token each plus a CLS token, and runs them through its layers. Extract layer k is the output
  of layer k + 1, i.e. hidden state index k + 1 (index 0 is the patch embedding), so the default
  (3, 6, 9) reads up to hidden state 10 and `Segmenter` skips the last two of twelve layers.
- Conditioning (FiLM): the prompt's CLIP embedding (text encoder, or image encoder for a visual
  prompt) gives a scale `film_mul` and a shift `film_add` (one Linear each) applied to the
  decoder's first, deepest activation.
- Decoder (U-Net-like skip connections): each extracted activation is reduced to `reduce_dim`
  by a Linear, added to the running decoder state, and passed through one transformer block,
  deepest layer first.
- Transposed convolution: the token grid (CLS dropped) becomes logits at input resolution,
  either in one step (kernel = stride = patch size) or, in the "refined" variant, through a
  3x3 convolution and two transposed convolutions with kernel = stride = patch size / 4.

Counting needs no weights: `decoder_parameters` builds the model on torch's "meta" device.
The paper's 1,122,305 counts its rd64 model on ViT-B/16, but no released module has that many:
the original repository's rd64 module counts 1,122,369 (`original_module_parameters`: the
decoder's 1,073,153 plus a `reduce` Linear(768 -> 64) its forward pass never uses, 49,216),
64 more, exactly that Linear's bias. The same 1,122,305 is also, by coincidence, the rd64
decoder of transformers' default `CLIPSegConfig()`, whose vision patch is 32 px: the larger
transposed-convolution kernel adds 64 x (32² - 16²) = 49,152, as many as the Linear's weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from transformers import CLIPSegConfig, CLIPSegForImageSegmentation, CLIPSegProcessor

from clipseg_lib.analysis.stats import Estimate, mean_ci, paired_difference_ci
from clipseg_lib.model.segmenter import ImageEncoding, Segmenter

ModelOrConfig = Segmenter | CLIPSegConfig

#: Configs whose decoder sizes are quoted: name -> CLIPSegConfig keyword arguments.
REFERENCE_CONFIGS = {
    "CLIPSegConfig() default (patch 32)": {},
    "CLIPSegConfig() default, refined": {"use_complex_transposed_convolution": True},
    "rd64 (ViT-B/16)": {"vision_config": {"patch_size": 16}},
    "rd64-refined (ViT-B/16)": {
        "vision_config": {"patch_size": 16}, "use_complex_transposed_convolution": True,
    },
    "rd16 (ViT-B/16)": {"vision_config": {"patch_size": 16}, "reduce_dim": 16},
}
#: Decoder parts: label -> the `CLIPSegDecoder` attributes holding their parameters.
DECODER_PARTS = {
    "FiLM": ("film_mul", "film_add"),
    "reduces": ("reduces",),
    "blocks": ("layers",),
    "transposed conv": ("transposed_convolution",),
}


PAPER_PARAMETERS = 1_122_305
"""The trainable parameters the paper (and the poster) give for CLIPSeg rd64 on ViT-B/16."""


def original_module_parameters(model: ModelOrConfig) -> int:
    """Trainable parameters of the original repository's module for this config: the decoder
    and its unused ``reduce`` Linear(vision width -> reduce_dim), weights and bias."""
    config = as_config(model)
    unused = (config.vision_config.hidden_size + 1) * config.reduce_dim
    return decoder_parameters(model)["decoder"] + unused


def reference_configs() -> dict[str, CLIPSegConfig]:
    """`REFERENCE_CONFIGS` as configs (text and vision towers of CLIP ViT-B size)."""
    return {name: CLIPSegConfig(**kwargs) for name, kwargs in REFERENCE_CONFIGS.items()}


def as_config(model: ModelOrConfig) -> CLIPSegConfig:
    """The config of a `Segmenter`, or the config itself."""
    if isinstance(model, Segmenter):
        return model.model.config
    if isinstance(model, CLIPSegConfig):
        return model
    raise ValueError(f"expected a Segmenter or a CLIPSegConfig, got {type(model).__name__}")


def decoder_parameters(model: ModelOrConfig) -> dict[str, int]:
    """Parameter counts: each of `DECODER_PARTS`, "decoder" (their sum, all trainable) and
    "CLIP (frozen)". A config is instantiated on the meta device: no memory, no weights."""
    if isinstance(model, Segmenter):
        network = model.model
    else:
        with torch.device("meta"):
            network = CLIPSegForImageSegmentation(as_config(model))
    decoder = network.decoder
    counts = {
        part: sum(p.numel() for name in names for p in getattr(decoder, name).parameters())
        for part, names in DECODER_PARTS.items()
    }
    counts["decoder"] = sum(p.numel() for p in decoder.parameters())
    if counts["decoder"] != sum(counts[part] for part in DECODER_PARTS):
        raise RuntimeError("DECODER_PARTS does not cover every decoder parameter")
    counts["CLIP (frozen)"] = sum(p.numel() for p in network.clip.parameters())
    return counts


def upsampling(model: ModelOrConfig) -> int:
    """How many output pixels per token side the transposed convolution makes.

    Equals the patch size for the simple variant; (patch // 4) ** 2 for the refined one,
    which fits only 16 px patches.
    """
    config = as_config(model)
    patch = config.vision_config.patch_size
    return (patch // 4) ** 2 if config.use_complex_transposed_convolution else patch


def parameter_rows(models: Mapping[str, ModelOrConfig]) -> list[dict[str, object]]:
    """One table row per named config or segmenter: patch, reduce_dim, variant, counts."""
    rows = []
    for name, model in models.items():
        config = as_config(model)
        refined = config.use_complex_transposed_convolution
        rows.append({
            "model": name,
            "patch": config.vision_config.patch_size,
            "reduce_dim": config.reduce_dim,
            "upsampling": f"{'refined' if refined else 'simple'} x{upsampling(config)}",
            **decoder_parameters(model),
        })
    return rows


def parameter_finding(rows: Sequence[Mapping[str, object]]) -> str:
    """The paper's 1,122,305 beside the original rd64 module's count, and the decoders of the
    configs, read from `parameter_rows` that include the first four `REFERENCE_CONFIGS`."""
    by_name = {row["model"]: row for row in rows}
    missing = [name for name in list(REFERENCE_CONFIGS)[:4] if name not in by_name]
    if missing:
        raise ValueError(f"rows lack the reference configs {missing}")
    default, default_refined, b16, b16_refined = (by_name[n] for n in list(REFERENCE_CONFIGS)[:4])
    gap = default["decoder"] - b16["decoder"]
    kernel_gap = default["transposed conv"] - b16["transposed conv"]
    cause = "only" if gap == kernel_gap else "not only"
    module = original_module_parameters(reference_configs()["rd64 (ViT-B/16)"])
    return (
        f"The paper's {PAPER_PARAMETERS:,} counts its rd64 model on ViT-B/16; the original "
        f"repository's rd64 module has {module:,} trainable parameters ({b16['decoder']:,} in "
        f"the decoder, the rest an unused reduce Linear), {module - PAPER_PARAMETERS:,} more "
        f"than the paper says. transformers' default CLIPSegConfig() has a decoder of "
        f"{default['decoder']:,} parameters ({default_refined['decoder']:,} refined); its "
        f"vision patch is {default['patch']} px. With the {b16['patch']} px patches of ViT-B/16 "
        f"(the released CIDAS weights) the rd64 decoder has {b16['decoder']:,} "
        f"({b16_refined['decoder']:,} refined): the "
        f"{gap:,} missing parameters are {cause} the transposed convolution's larger kernel "
        f"({kernel_gap:,} of them)."
    )


def input_size_finding(segmenter: Segmenter, rows: Sequence[Mapping[str, object]],
                       per_case: Mapping[int, Mapping[str, Sequence[float]]], *,
                       seed: int = 0) -> str:
    """What other input sizes did, from `input_size_rows` and the per-case IoUs it came from:
    each size's mIoU against the processor's size, judged on the paired interval."""
    default = processor_size(segmenter)
    reference = next(row for row in rows if row["input px"] == default)
    parts = []
    for row in rows:
        if row is reference:
            continue
        change = paired_difference_ci(per_case[row["input px"]]["iou_gt"],
                                      per_case[default]["iou_gt"], seed=seed)
        verdict = ("higher" if change.ci_low > 0 else "lower" if change.ci_high < 0
                   else "not detectably different")
        parts.append(
            f"at {row['input px']} px it sees {row['tokens']} tokens (positions "
            f"{row['positions']}): mIoU {_estimate_text(row['mIoU vs target'])}, {verdict} "
            f"(paired change {change}), masks overlapping the {default} px ones at IoU "
            f"{_estimate_text(row['IoU vs default size'])}"
        )
    base = (f"On {segmenter.name}, at the processor's {default} px ({reference['tokens']} tokens) "
            f"the mIoU vs target is {_estimate_text(reference['mIoU vs target'])}")
    return "; ".join([base, *parts]) + "."


def describe(model: ModelOrConfig, *, input_size: int | None = None) -> str:
    """The architecture in a few lines: backbone, extract layers, FiLM, decoder, upsampling.

    `input_size` is the side of the square the processor resizes images to; it defaults to
    the segmenter's processor size, or the config's position-embedding size.
    """
    config = as_config(model)
    vision, text = config.vision_config, config.text_config
    size = input_size or (processor_size(model) if isinstance(model, Segmenter) else None)
    size = size or vision.image_size
    patch, native = vision.patch_size, vision.image_size // vision.patch_size
    grid = size // patch
    layers = tuple(config.extract_layers)
    deepest = max(layers) + 1
    positions = "as trained" if grid == native else f"bicubic from {native} x {native}"
    refined = config.use_complex_transposed_convolution
    kernel = patch // 4
    head = (
        f"3x3 conv ({config.reduce_dim} -> {config.reduce_dim}), ReLU, transposed convs "
        f"{config.reduce_dim} -> {config.reduce_dim // 2} -> 1 with kernel = stride = {kernel}"
        if refined
        else f"one transposed conv {config.reduce_dim} -> 1 with kernel = stride = {patch}"
    )
    factor = upsampling(config)
    fits = "" if factor == patch else f", not {patch}: the refined variant assumes 16 px patches"
    return "\n".join([
        f"Backbone: CLIP ViT, {vision.num_hidden_layers} layers, hidden size {vision.hidden_size},"
        f" {vision.num_attention_heads} heads, {patch} px patches; position embeddings for "
        f"{vision.image_size} px ({native} x {native} tokens + CLS).",
        f"Input: {size} px -> {grid} x {grid} = {grid * grid} patch tokens + CLS; positions "
        f"{positions}.",
        f"Prompt: CLIP text encoder ({text.num_hidden_layers} layers, up to "
        f"{text.max_position_embeddings} tokens) or image encoder -> conditional embedding of "
        f"{config.projection_dim} values.",
        f"Extract layers {layers} = hidden states {tuple(k + 1 for k in layers)}: the backbone "
        f"runs {deepest} of its {vision.num_hidden_layers} layers.",
        f"FiLM: film_mul, film_add = Linear({config.projection_dim} -> {config.reduce_dim}) each;"
        f" scale and shift the deepest activation (conditional layer {config.conditional_layer}).",
        f"Decoder: for layers {tuple(reversed(layers))}: Linear({vision.hidden_size} -> "
        f"{config.reduce_dim}), add, transformer block ({config.reduce_dim} dims, "
        f"{config.decoder_num_attention_heads} heads, MLP {config.decoder_intermediate_size}).",
        f"Transposed convolution ({'refined' if refined else 'simple'}): {head}; "
        f"{grid} x {grid} tokens -> {grid * factor} x {grid * factor} logits (x{factor}{fits}).",
    ])


def trace_shapes(segmenter: Segmenter, encoding: ImageEncoding, prompt: str
                 ) -> list[dict[str, str]]:
    """The tensors one prediction from `encoding` (an RGB image's, by `segmenter`) passes
    through, in order: rows {"stage", "shape"}. Only the decoder runs."""
    layers = segmenter.extract_layers
    states = encoding.hidden_states
    rows = [
        {"stage": "image", "shape": _shape((*encoding.original_size, 3))},
        {"stage": "patch tokens + CLS (hidden state 0)", "shape": _shape(states[0].shape)},
    ]
    rows += [
        {"stage": f"extract layer {k} = hidden state {k + 1}", "shape": _shape(states[k + 1].shape)}
        for k in layers
    ]
    conditional = segmenter.embed_prompts(prompt)
    rows.append({"stage": "conditional embedding", "shape": _shape(conditional.shape)})
    decoder = segmenter.model.decoder
    steps = [(f"reduce layer {k}", decoder.reduces[i]) for i, k in enumerate(reversed(layers))]
    steps += [("FiLM scale (film_mul)", decoder.film_mul)]
    steps += [("FiLM shift (film_add)", decoder.film_add)]
    steps += [(f"transformer block {i + 1}", block) for i, block in enumerate(decoder.layers)]
    steps += [("transposed convolution", decoder.transposed_convolution)]
    recorded: list[tuple[str, str]] = []
    hooks = [
        module.register_forward_hook(
            lambda _module, _inputs, output, label=label: recorded.append(
                (label, _shape((output[0] if isinstance(output, tuple) else output).shape))
            )
        )
        for label, module in steps
    ]
    try:
        probabilities = segmenter.predict(encoding, [prompt])
    finally:
        for hook in hooks:
            hook.remove()
    rows += [{"stage": label, "shape": shape} for label, shape in recorded]
    rows.append({"stage": "probabilities (sigmoid, resized)", "shape": _shape(probabilities.shape)})
    return rows


def with_input_size(segmenter: Segmenter, size: int) -> Segmenter:
    """A segmenter sharing `segmenter`'s model, caches and work count whose processor resizes
    images to size x size."""
    patch = as_config(segmenter).vision_config.patch_size
    if not isinstance(size, int) or not patch <= size <= 2048:
        raise ValueError(f"input size {size!r} must be an integer in {patch}..2048 pixels")
    image_processor = copy.deepcopy(segmenter.processor.image_processor)
    image_processor.size = {"height": size, "width": size}
    processor = CLIPSegProcessor(
        image_processor=image_processor, tokenizer=segmenter.processor.tokenizer
    )
    return segmenter.with_processor(processor, name=f"{segmenter.name} at {size} px")


def larger_input_size(segmenter: Segmenter) -> int:
    """1.5 x the processor's input size, rounded to whole patches: a size every model reads
    with more tokens than it was trained on (96 -> 144 px for mini, 352 -> 528 for ViT-B/16)."""
    patch = as_config(segmenter).vision_config.patch_size
    return patch * round(1.5 * processor_size(segmenter) / patch)


def input_sizes(segmenter: Segmenter, larger: int | None = None) -> tuple[int, ...]:
    """The position-embedding size, the processor's size and a larger one (default
    `larger_input_size`), sorted without repeats."""
    larger = larger_input_size(segmenter) if larger is None else larger
    return tuple(sorted({segmenter.image_size, processor_size(segmenter), larger}))


def input_size_rows(
    segmenter: Segmenter, per_case: Mapping[int, Mapping[str, Sequence[float]]], *,
    seed: int = 0,
) -> list[dict[str, object]]:
    """Per input size (keys of `per_case`: size -> {"iou_gt": [...], "iou_vs_default":
    [...]}): token grid, how positions are obtained, and the two mean IoUs as Estimate dicts."""
    config = as_config(segmenter).vision_config
    native = config.image_size // config.patch_size
    rows = []
    for size, ious in per_case.items():
        grid = size // config.patch_size
        rows.append({
            "input px": size,
            "tokens": f"{grid} x {grid}",
            "positions": "as trained" if grid == native else f"bicubic from {native} x {native}",
            "mIoU vs target": mean_ci(ious["iou_gt"], seed=seed).as_dict(),
            "IoU vs default size": mean_ci(ious["iou_vs_default"], seed=seed).as_dict(),
        })
    return rows


def processor_size(segmenter: Segmenter) -> int:
    """The side in pixels the segmenter's processor resizes images to."""
    size = segmenter.processor.image_processor.size
    return int(size["height"]) if "height" in size else int(size["shortest_edge"])


def _estimate_text(estimate: Mapping[str, float]) -> str:
    return str(Estimate(**estimate))


def _shape(shape: Sequence[int]) -> str:
    return " x ".join(str(int(side)) for side in shape)
