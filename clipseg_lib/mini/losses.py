"""The losses `train_mini` optimises, and the batches they are computed on.

Every batch is drawn on the fly from the synthetic world's train split with a seeded
generator: (scene, caption) pairs for contrastive pretraining, (scene, prompt) -> mask queries
for the decoder, and per-pixel object classes (`object_class_map`) for the training-only
`ObjectClassHead` that teaches the vision tower shape. The model is transformers'
`CLIPSegForImageSegmentation`; the backbone is run as `Segmenter.encode_image` runs it, so
training and inference read the same hidden states.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor, CLIPTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ChannelDimension

from clipseg_lib import world
from clipseg_lib.model.prompts import ImagePrompt

#: Query kinds of decoder training: the world's defaults with negations off (already 0) and
#: image prompts doubled, so one-shot and interpolated prompts are seen often enough.
TRAIN_KIND_WEIGHTS = {**world.DEFAULT_KIND_WEIGHTS, "negation": 0.0, "image": 0.12}
#: Objects per pretraining scene.
CAPTION_COUNTS = {"n_shapes": (1, 5), "n_words": (0, 1), "n_faces": (0, 1)}
#: Pixel classes of the auxiliary dense loss: what kind of object covers each pixel.
OBJECT_CLASSES = ("background", *world.SHAPES, "sign", "face")

_MEAN = torch.tensor(OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_CLIP_STD).view(1, 3, 1, 1)


def pixel_values(images: np.ndarray) -> torch.Tensor:
    """RGB uint8 (B, H, W, 3) at model resolution -> CLIP-normalised float32 (B, 3, H, W),
    equal to what the processor computes for the same images."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (pixels - _MEAN) / _STD


def text_features(
    model: CLIPSegForImageSegmentation, tokenizer: CLIPTokenizer, texts: list[str]
) -> torch.Tensor:
    """Projected text embeddings (N, projection_dim)."""
    limit = model.config.text_config.max_position_embeddings
    tokens = tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    return model.clip.get_text_features(
        input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
    ).pooler_output


def object_class_map(scene: world.Scene) -> np.ndarray:
    """(H, W) int64 index into `OBJECT_CLASSES` of the object visible at each pixel."""
    lookup = np.zeros(len(scene.objects) + 1, np.int64)
    for index, thing in enumerate(scene.objects, start=1):
        name = {"word": "sign", "face": "face"}.get(thing.kind, thing.name)
        lookup[index] = OBJECT_CLASSES.index(name)
    return lookup[scene.instance_map]


class ObjectClassHead(nn.Module):
    """Training-only linear head: each patch token -> logits of `OBJECT_CLASSES` for each of the
    patch's pixels. It gives the vision tower a direct, dense signal about shape, which CLIP
    learned from 400M captions and the world's captions alone do not teach (see the card)."""

    def __init__(self, hidden_size: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.linear = nn.Linear(hidden_size, len(OBJECT_CLASSES) * patch_size**2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, 1 + n * n, D), CLS first -> logits (B, classes, n * patch, n * patch)."""
        batch, count, _ = tokens.shape
        side = int(math.isqrt(count - 1))
        logits = self.linear(tokens[:, 1:]).view(batch, side, side, -1).permute(0, 3, 1, 2)
        return F.pixel_shuffle(logits, self.patch_size)


def object_class_loss(
    head: ObjectClassHead, tokens: torch.Tensor, scenes: list[world.Scene]
) -> torch.Tensor:
    """Per-pixel cross-entropy of `head(tokens)` against the scenes' object classes."""
    targets = torch.from_numpy(np.stack([object_class_map(scene) for scene in scenes]))
    return F.cross_entropy(head(tokens), targets)


def pretraining_scenes(rng: np.random.Generator, count: int, size: int) -> list[world.Scene]:
    """`count` random train-split scenes with `CAPTION_COUNTS` objects."""
    return [
        world.render_scene(int(rng.integers(2**62)), size=size, split="train", **CAPTION_COUNTS)
        for _ in range(count)
    ]


def object_class_batch_loss(
    model: CLIPSegForImageSegmentation, head: ObjectClassHead, rng: np.random.Generator,
    batch_size: int, size: int,
) -> torch.Tensor:
    """`head`'s object-class loss on the deepest extract layer for a batch of new scenes."""
    scenes = pretraining_scenes(rng, batch_size, size)
    depth = max(model.extract_layers) + 1
    states = vision_states(model, pixel_values(np.stack([scene.image for scene in scenes])), depth)
    return object_class_loss(head, states[depth], scenes)


def contrastive_loss(
    model: CLIPSegForImageSegmentation, tokenizer: CLIPTokenizer, rng: np.random.Generator,
    batch_size: int, size: int, head: ObjectClassHead | None = None,
) -> torch.Tensor:
    """CLIP's symmetric InfoNCE loss on a batch of train-split (scene, caption) pairs; with
    `head`, plus its object-class loss on the deepest extract layer's tokens."""
    scenes = pretraining_scenes(rng, batch_size, size)
    captions = [world.caption(scene, rng) for scene in scenes]
    states = vision_states(model, pixel_values(np.stack([scene.image for scene in scenes])),
                           len(model.clip.vision_model.encoder.layers))
    images = F.normalize(image_features(model, states[-1]), dim=-1)
    texts = F.normalize(text_features(model, tokenizer, captions), dim=-1)
    logits = model.clip.logit_scale.exp().clamp(max=100) * images @ texts.T
    labels = torch.arange(batch_size)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    if head is not None:
        loss = loss + object_class_loss(head, states[max(model.extract_layers) + 1], scenes)
    return loss


def vision_states(
    model: CLIPSegForImageSegmentation, pixels: torch.Tensor, depth: int
) -> list[torch.Tensor]:
    """Hidden states 0 .. depth of the vision backbone, as `Segmenter.encode_image` computes."""
    vision = model.clip.vision_model
    hidden = vision.pre_layrnorm(vision.embeddings(pixels, interpolate_pos_encoding=True))
    states = [hidden]
    for layer in vision.encoder.layers[:depth]:
        hidden = layer(hidden, None)
        states.append(hidden)
    return states


def image_features(model: CLIPSegForImageSegmentation, last_state: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings (B, projection_dim) from the last layer's tokens (B, T, D),
    as `get_image_features` computes them."""
    vision = model.clip.vision_model
    return model.clip.visual_projection(vision.post_layernorm(last_state[:, 0]))


def conditional_embeddings(
    model: CLIPSegForImageSegmentation, processor: CLIPSegProcessor, queries: list[world.Query],
    rng: np.random.Generator,
) -> torch.Tensor:
    """(B, projection_dim) prompt embeddings: the text embedding, or for image queries the
    engineered support's image embedding, interpolated with the text one for half of them
    (text weight uniform in [0, 1])."""
    embeddings = text_features(model, processor.tokenizer, [q.prompt for q in queries])
    shown = [i for i, q in enumerate(queries) if q.kind == "image"]
    if not shown:
        return embeddings
    supports = [
        ImagePrompt(queries[i].support_image, queries[i].support_mask).engineered() for i in shown
    ]
    inputs = processor.image_processor(
        images=supports, return_tensors="pt", input_data_format=ChannelDimension.LAST
    )
    images = model.clip.get_image_features(inputs["pixel_values"]).pooler_output
    text_weight = torch.from_numpy(
        np.where(rng.random(len(shown)) < 0.5, 0.0, rng.random(len(shown)))
    ).float()[:, None]
    mixed = text_weight * embeddings[shown] + (1 - text_weight) * images
    embeddings = embeddings.clone()
    embeddings[shown] = mixed
    return embeddings


def scene_prompts(
    scene: world.Scene, rng: np.random.Generator, count: int
) -> list[tuple[str, np.ndarray]]:
    """`count` more (text prompt, (H, W) bool target) pairs about `scene`, by the world's rules:
    the composite, colour or category of one of its shapes, one of its signs or faces, or (one
    in five) a train-split composite the scene does not hold (empty target)."""
    objects = scene.objects
    shapes = [i for i, o in enumerate(objects) if o.kind == "shape"]
    asked: list[tuple[str, list[int]]] = []
    for index, thing in enumerate(objects):
        if thing.kind == "word":
            asked.append((f"the word {thing.name}", [index]))
        elif thing.kind == "face":
            asked.append((f"the {thing.name} face", [index]))
        else:
            same_colour = [i for i in shapes if objects[i].colour == thing.colour]
            same_shape = [i for i in shapes if objects[i].name == thing.name]
            asked += [
                (f"{thing.colour} {thing.name}", sorted(set(same_colour) & set(same_shape))),
                (thing.colour, same_colour),
                (thing.name, same_shape),
            ]
    present = {(objects[i].colour, objects[i].name) for i in shapes}
    absent = [
        (colour, shape) for colour in world.COLOURS for shape in world.SHAPES
        if (colour, shape) not in present | world.HELD_OUT_COMBINATIONS
    ]
    pairs = []
    for _ in range(count):
        if rng.random() < 0.2 or not asked:
            colour, shape = absent[rng.integers(len(absent))]
            pairs.append((f"{colour} {shape}", scene.union_mask(())))
        else:
            prompt, indices = asked[rng.integers(len(asked))]
            pairs.append((prompt, scene.union_mask(tuple(indices))))
    return pairs


def segmentation_loss(
    model: CLIPSegForImageSegmentation, processor: CLIPSegProcessor, rng: np.random.Generator,
    batch_size: int, size: int, *, train_encoders: bool, prompts_per_scene: int = 1,
    head: ObjectClassHead | None = None,
) -> torch.Tensor:
    """BCE-with-logits plus soft Dice of the decoder's (size, size) logits on `batch_size`
    train queries, each scene also asked `prompts_per_scene - 1` more text prompts; with
    `head` (encoders trained), plus its object-class loss on the deepest extract layer."""
    queries = [
        world.sample_query(rng, size=size, split="train", kind_weights=TRAIN_KIND_WEIGHTS)
        for _ in range(batch_size)
    ]
    extra = [scene_prompts(q.scene, rng, prompts_per_scene - 1) for q in queries]
    layers = model.extract_layers
    with torch.set_grad_enabled(train_encoders):
        states = vision_states(model, pixel_values(np.stack([q.scene.image for q in queries])),
                               max(layers) + 1)
        conditionals = conditional_embeddings(model, processor, queries, rng)
        if prompts_per_scene > 1:
            texts = [prompt for pairs in extra for prompt, _ in pairs]
            more = text_features(model, processor.tokenizer, texts)
            conditionals = torch.cat([conditionals, more])
    activations = [
        torch.cat([states[i + 1], states[i + 1].repeat_interleave(prompts_per_scene - 1, dim=0)])
        for i in layers
    ]
    logits = model.decoder(activations, conditionals).logits.view(-1, size, size)
    masks = [q.target for q in queries] + [target for pairs in extra for _, target in pairs]
    targets = torch.from_numpy(np.stack(masks)).float()
    # Soft Dice keeps the sparse foreground (a few % of pixels) in play: with BCE alone the
    # small model sits near "all background" for hundreds of steps (tiny-model probe: composite
    # mIoU 0.13 vs 0.53 after 800 steps).
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * targets).sum((1, 2))
    dice = 1 - (2 * overlap + 1) / (probabilities.sum((1, 2)) + targets.sum((1, 2)) + 1)
    loss = F.binary_cross_entropy_with_logits(logits, targets) + dice.mean()
    if head is not None:
        loss = loss + object_class_loss(head, states[max(layers) + 1], [q.scene for q in queries])
    return loss
