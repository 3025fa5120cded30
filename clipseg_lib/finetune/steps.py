"""One fine-tuning step's computation: frozen activations, conditionals, logits and the loss.

The CLIP backbone is frozen: it runs through `Segmenter.encode_image` (inference mode, no
autograd), exactly as at prediction time, and its outputs are copied into ordinary tensors for
the decoder. The text encoder is frozen too (`Segmenter.embed_prompts`, cached) unless the run
trains it (`trained_text=True`): then every step embeds its prompts again through the text
tower with autograd (`text_conditionals`), so gradients reach it. Each image is encoded alone,
so an activation is the same number whether it was cached, shared within a batch or recomputed
(a resumed run equals an uninterrupted one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, iou
from clipseg_lib.finetune.batches import Row
from clipseg_lib.finetune.samples import Sample, load_mask
from clipseg_lib.model.images import load_image
from clipseg_lib.model.prompts import ImagePrompt, Prompt, mix
from clipseg_lib.model.segmenter import Segmenter


def cosine_lr(step: int, steps: int, lr: float, min_lr: float) -> float:
    """The paper's schedule: cosine decay from `lr` at step 0 to `min_lr` at the end."""
    return min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))


class ActivationCache:
    """The decoder's inputs per image: hidden states of the extract layers, (1, T, D) float.

    With `reuse`, each image is encoded once and kept while the cache holds under `limit_mb`
    (a frozen backbone gives the same answer every epoch), and an image met again later in
    the run, or several times in one batch, costs nothing; without, every row is encoded.
    """

    def __init__(
        self, segmenter: Segmenter, samples: Sequence[Sample], groups: Sequence[Sequence[int]],
        *, reuse: bool = True, limit_mb: float = 2048,
    ) -> None:
        self.segmenter = segmenter
        self.images = [samples[group[0]].image for group in groups]
        self.reuse = reuse
        self.limit_bytes = limit_mb * 2**20
        self.held_bytes = 0
        self.encodings = 0
        self._stored: dict[int, list[torch.Tensor]] = {}

    def activations(self, image: int) -> list[torch.Tensor]:
        """Extract-layer hidden states of image group `image`."""
        if image in self._stored:
            return self._stored[image]
        encoding = self.segmenter.encode_image(self.images[image])
        self.encodings += 1
        states = [encoding.hidden_states[i + 1].clone() for i in self.segmenter.extract_layers]
        size = sum(s.numel() * s.element_size() for s in states)
        if self.reuse and self.held_bytes + size <= self.limit_bytes:
            self._stored[image] = states
            self.held_bytes += size
        return states

    def batch(self, rows: Sequence[Row]) -> list[torch.Tensor]:
        """Per extract layer, the (len(rows), T, D) activations of the rows' images."""
        if self.reuse:
            images = dict.fromkeys(row.image for row in rows)
            per_image = {image: self.activations(image) for image in images}
            per_row = [per_image[row.image] for row in rows]
        else:
            per_row = [self.activations(row.image) for row in rows]
        return [torch.cat(layer) for layer in zip(*per_row, strict=True)]


#: Prompts per text-encoder call when all prompts are embedded up front.
PROMPT_CHUNK = 256


def embed_all_prompts(segmenter: Segmenter, samples: Sequence[Sample]) -> None:
    """Fill the segmenter's text cache with every prompt of `samples`, sorted, in fixed
    chunks. A text's embedding depends slightly on the texts padded with it, so embedding in
    one fixed order keeps a resumed run's numbers equal to an uninterrupted run's."""
    texts = sorted({sample.prompt for sample in samples})
    for start in range(0, len(texts), PROMPT_CHUNK):
        segmenter.embed_prompts(texts[start : start + PROMPT_CHUNK])


def row_prompt(row: Row, samples: Sequence[Sample]) -> Prompt:
    """The prompt a row asks: the text, or the text mixed with its support image prompt."""
    text = samples[row.sample].prompt
    if row.support is None:
        return text
    support = samples[row.support]
    image_prompt = ImagePrompt(load_image(support.image), load_mask(support.mask))
    return mix(text, image_prompt, row.text_weight)


def row_targets(
    rows: Sequence[Row], samples: Sequence[Sample], size: tuple[int, int], device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(len(rows), h, w) `dtype` targets in [0, 1] at model resolution: each mask resized
    (bilinear, antialiased), zeros for negatives."""
    targets = torch.zeros(len(rows), *size)
    for index, row in enumerate(rows):
        if not row.negative:
            mask = torch.from_numpy(load_mask(samples[row.sample].mask)).float()[None, None]
            resized = F.interpolate(mask, size=size, mode="bilinear", antialias=True)
            targets[index] = resized[0, 0].clamp(0, 1)
    return targets.to(device, dtype)


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over maps of 1 - soft Dice (smoothed by 1) of sigmoid(logits) (N, h, w) vs targets."""
    probabilities = torch.sigmoid(logits)
    overlap = (probabilities * targets).sum((1, 2))
    sizes = probabilities.sum((1, 2)) + targets.sum((1, 2))
    return (1 - (2 * overlap + 1) / (sizes + 1)).mean()


def text_conditionals(segmenter: Segmenter, prompts: Sequence[Prompt]) -> torch.Tensor:
    """(len(prompts), projection_dim) conditionals with autograd through the text tower: the
    distinct texts embedded in one sorted, padded batch; a `Mix`'s image side comes from the
    frozen vision tower (`Segmenter.embed_prompts`)."""
    texts = sorted({p if isinstance(p, str) else p.text for p in prompts})
    limit = segmenter.model.config.text_config.max_position_embeddings
    tokens = segmenter.processor.tokenizer(texts, padding=True, truncation=True,
                                           max_length=limit, return_tensors="pt")
    features = segmenter.model.clip.get_text_features(
        input_ids=tokens["input_ids"].to(segmenter.device),
        attention_mask=tokens["attention_mask"].to(segmenter.device),
    ).pooler_output
    rows = []
    for prompt in prompts:
        text = features[texts.index(prompt if isinstance(prompt, str) else prompt.text)]
        if not isinstance(prompt, str):
            image = segmenter.embed_prompts(prompt.image_prompt)[0].to(text.dtype, copy=True)
            text = prompt.weight * text + (1 - prompt.weight) * image
        rows.append(text)
    return torch.stack(rows)


def batch_loss(
    segmenter: Segmenter, cache: ActivationCache, rows: Sequence[Row], samples: Sequence[Sample],
    *, dice: bool = False, trained_text: bool = False,
) -> torch.Tensor:
    """Binary cross-entropy of the decoder's logits for `rows` against their targets; with
    `dice`, plus the soft Dice loss (`mini`'s training loss, which keeps small objects from
    sinking below the threshold). With `trained_text`, the prompts are embedded with gradients
    (`text_conditionals`), else from the frozen text encoder's cache."""
    activations = cache.batch(rows)
    prompts = [row_prompt(row, samples) for row in rows]
    if trained_text:
        conditionals = text_conditionals(segmenter, prompts).to(segmenter.dtype)
    else:
        conditionals = segmenter.embed_prompts(prompts)
        conditionals = conditionals.to(segmenter.dtype, copy=True)  # out of inference mode
    logits = segmenter.model.decoder(activations, conditionals).logits
    logits = logits.reshape(len(rows), *logits.shape[-2:])
    targets = row_targets(rows, samples, tuple(logits.shape[-2:]), logits.device, logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, targets)
    return loss + soft_dice_loss(logits, targets) if dice else loss


def heldout_ious(
    segmenter: Segmenter, samples: Sequence[Sample], groups: Sequence[Sequence[int]],
    *, threshold: float = DEFAULT_THRESHOLD,
) -> list[float]:
    """IoU of `probability > threshold` with the mask, one per sample of `groups` (in group
    order); each image is encoded once for all its prompts."""
    ious = []
    for group in groups:
        encoding = segmenter.encode_image(samples[group[0]].image)
        probabilities = segmenter.predict(encoding, [samples[i].prompt for i in group])
        for index, probability in zip(group, probabilities, strict=True):
            ious.append(iou(probability > threshold, load_mask(samples[index].mask)))
    return ious

