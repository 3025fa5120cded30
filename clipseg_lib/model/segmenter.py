"""Encode an image once, answer many prompts: the segment-anything shape for CLIPSeg.

`Segmenter.encode_image` runs the CLIP vision backbone once and keeps the hidden states the
decoder may read, stopping after the deepest layer needed (the default extract layers
(3, 6, 9) read hidden state 10, so 2 of ViT-B/16's 12 layers are skipped). `predict_logits`
then runs only the light decoder, once per prompt, on that cache. Results equal
`transformers.CLIPSegForImageSegmentation` fed the same image once per prompt.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPSegForImageSegmentation, CLIPSegProcessor
from transformers.image_utils import ChannelDimension

from clipseg_lib.model.encoding import ImageEncoding
from clipseg_lib.model.images import ImageLike, load_image
from clipseg_lib.model.lru import LruCache
from clipseg_lib.model.prompts import Embedding, ImagePrompt, Mix, Prompt
from clipseg_lib.model.work import Work, WorkLog, backbone_flops, input_digest

#: What `Segmenter.provenance["kind"]` says about where a model's weights come from.
MODEL_KINDS = {
    "bundled": "model bundled with this project, trained here on the synthetic world",
    "hub": "checkpoint from the Hugging Face hub",
    "directory": "local directory saved with save_pretrained",
    "original_checkpoint": "original-repository decoder (.pth) with separate CLIP weights",
    "in_memory": "model built in memory, not loaded from files",
}
TEXT_CACHE_ENTRIES = 4096
"""Prompt texts whose embeddings a segmenter keeps (512 floats each for ViT-B/16: 8 MiB)."""
SUPPORT_CACHE_ENTRIES = 1024
"""Support images whose embeddings a segmenter keeps."""


class EncodingStore(Protocol):
    """What `Segmenter.encode_image` asks of an attached cache
    (`clipseg_lib.model.encoding_cache.EncodingCache`)."""

    def encoding(self, segmenter: Segmenter, input_digest: bytes, original_size: tuple[int, int],
                 max_layer: int, encode: Callable[[], ImageEncoding]) -> ImageEncoding:
        """The encoding of this input: a stored one, or ``encode()``."""
        ...


class Segmenter:
    """A CLIPSeg model with its processor, an image cache shape and bounded prompt-embedding
    caches (the last `TEXT_CACHE_ENTRIES` texts and `SUPPORT_CACHE_ENTRIES` support images are
    embedded once).

    Build it with `clipseg_lib.load_segmenter`. `provenance` records which weights answer:
    `kind` (a key of MODEL_KINDS), `weights_files` (names) and `weights_sha256` (of those
    files' bytes one after the other); `work` what the backbone has computed. An
    `encoding_cache` (None: none), when set, answers `encode_image` for inputs seen before.
    """

    def __init__(
        self,
        model: CLIPSegForImageSegmentation,
        processor: CLIPSegProcessor,
        *,
        name: str,
        kind: str = "in_memory",
        weights_sha256: str | None = None,
        weights_files: list[str] | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
    ) -> None:
        if kind not in MODEL_KINDS:
            raise ValueError(f"model kind {kind!r} is unknown; choose one of {sorted(MODEL_KINDS)}")
        self.kind = kind
        self.weights_files = list(weights_files or [])
        self.dtype = dtype or torch.float32
        self.device = torch.device(device)
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        self.processor = processor
        self.name = name
        self.weights_sha256 = weights_sha256
        self._text_cache: LruCache[str, torch.Tensor] = LruCache(TEXT_CACHE_ENTRIES)
        self._support_cache: LruCache[bytes, torch.Tensor] = LruCache(SUPPORT_CACHE_ENTRIES)
        self._work_log = WorkLog()
        self.encoding_cache: EncodingStore | None = None
        self.quantization: str | None = None

    def clear_text_cache(self) -> None:
        """Forget the cached prompt embeddings, of texts and of support images (the next
        prompts are embedded again)."""
        self._text_cache.clear()
        self._support_cache.clear()

    @property
    def work(self) -> Work:
        """Backbone encodings (query images and support images), their GFLOP and seconds
        since this segmenter was built or `reset_work` was called."""
        return self._work_log.work

    def reset_work(self) -> None:
        """Start counting `work` from zero (for this segmenter and those made `with_processor`)."""
        self._work_log.reset()

    def with_processor(self, processor: CLIPSegProcessor, *, name: str) -> Segmenter:
        """The same model and weights reading images through `processor` (another input size,
        say). It shares this segmenter's prompt caches, encoding cache and `work`: what it
        encodes counts here."""
        twin = Segmenter(
            self.model, processor, name=name, kind=self.kind, weights_sha256=self.weights_sha256,
            weights_files=self.weights_files, device=self.device, dtype=self.dtype,
        )
        twin._text_cache, twin._support_cache = self._text_cache, self._support_cache
        twin._work_log, twin.encoding_cache = self._work_log, self.encoding_cache
        twin.quantization = self.quantization
        return twin

    @property
    def extract_layers(self) -> tuple[int, ...]:
        """The layers the decoder reads by default (hidden state index = layer + 1)."""
        return tuple(self.model.extract_layers)

    @property
    def num_layers(self) -> int:
        """Depth of the vision backbone."""
        return self.model.config.vision_config.num_hidden_layers

    @property
    def image_size(self) -> int:
        """Model resolution (square)."""
        return self.model.config.vision_config.image_size

    @property
    def precision(self) -> str:
        """What the backbone computes in: the dtype's name, or ``int8`` when quantized."""
        return self.quantization or str(self.dtype).removeprefix("torch.")

    @property
    def provenance(self) -> dict[str, Any]:
        """Which model and weights produced a result (recorded beside every result)."""
        return {
            "model": self.name,
            "kind": self.kind,
            "weights_files": self.weights_files,
            "weights_sha256": self.weights_sha256,
            "dtype": self.precision,
            "device": str(self.device),
            "extract_layers": list(self.extract_layers),
        }

    def __repr__(self) -> str:
        return f"Segmenter({self.name!r}, device={self.device}, dtype={self.precision})"

    @torch.inference_mode()
    def encode_image(self, image: ImageLike, *, max_layer: int | None = None) -> ImageEncoding:
        """Run the vision backbone once on `image` and keep hidden states 0 .. `max_layer`.

        `max_layer` defaults to what the default extract layers read; pass up to
        `num_layers` to allow other `extract_layers` at predict time. With an `encoding_cache`,
        an input it holds is read back, not encoded again (`work` counts it all the same).
        """
        pixels = load_image(image)
        deepest = max(self.extract_layers) + 1 if max_layer is None else max_layer
        if not 1 <= deepest <= self.num_layers:
            raise ValueError(f"max_layer must be in 1..{self.num_layers}, got {deepest}")
        pixel_values = self.preprocess(pixels)
        digest = input_digest(pixel_values)
        started = time.perf_counter()
        if self.encoding_cache is None:
            encoding = self._encode(pixel_values, pixels.shape[:2], deepest)
        else:
            encoding = self.encoding_cache.encoding(
                self, digest, pixels.shape[:2], deepest,
                lambda: self._encode(pixel_values, pixels.shape[:2], deepest),
            )
        self._work_log.add_image(
            digest,
            backbone_flops(self.model.config.vision_config, encoding.input_size, deepest),
            time.perf_counter() - started,
        )
        return encoding

    def _encode(
        self, pixel_values: torch.Tensor, original_size: tuple[int, int], deepest: int
    ) -> ImageEncoding:
        """Hidden states 0 .. `deepest` of the backbone on `pixel_values` (1, 3, h, w)."""
        vision = self.model.clip.vision_model
        hidden = vision.pre_layrnorm(vision.embeddings(pixel_values, interpolate_pos_encoding=True))
        states = [hidden]
        for layer in vision.encoder.layers[:deepest]:
            hidden = layer(hidden, None)
            states.append(hidden)
        return ImageEncoding(
            hidden_states=tuple(states),
            original_size=original_size,
            input_size=tuple(pixel_values.shape[-2:]),
        )

    def preprocess(self, image: ImageLike) -> torch.Tensor:
        """The backbone's input for `image`: pixel_values (1, 3, h, w) on the model's device
        and dtype. The (H, W, 3) layout is stated to the processor, never guessed from the
        shape (a 3-pixel-high image would pass for channels-first)."""
        inputs = self.processor.image_processor(
            images=load_image(image), return_tensors="pt",
            input_data_format=ChannelDimension.LAST,
        )
        return inputs["pixel_values"].to(self.device, self.dtype)

    @torch.inference_mode()
    def embed_prompts(self, prompts: Prompt | list[Prompt]) -> torch.Tensor:
        """Conditional embeddings (N, projection_dim) for a prompt or a list of prompts."""
        prompts = _as_list(prompts)
        texts = self._embed_texts(
            [p.text if isinstance(p, Mix) else p for p in prompts if isinstance(p, str | Mix)]
        )
        return torch.stack(
            [self._embed_one(prompt, index, texts) for index, prompt in enumerate(prompts)]
        )

    @torch.inference_mode()
    def predict_logits(
        self,
        encoding: ImageEncoding,
        prompts: Prompt | list[Prompt],
        *,
        extract_layers: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """Decoder logits, float32 (N, h, w) at model resolution, one map per prompt.

        `extract_layers` overrides which layers the decoder reads; the encoding must hold
        them (encode with a larger `max_layer`).
        """
        layers = self._checked_layers(extract_layers)
        if max(layers) + 1 > encoding.max_layer:
            raise ValueError(
                f"extract_layers {layers} need hidden states up to {max(layers) + 1}, the encoding "
                f"holds 0..{encoding.max_layer}: encode_image(..., max_layer={max(layers) + 1})"
            )
        conditionals = self.embed_prompts(prompts)
        count = conditionals.shape[0]
        activations = [encoding.hidden_states[i + 1].expand(count, -1, -1) for i in layers]
        logits = self.model.decoder(activations, conditionals.to(self.dtype)).logits
        return logits.reshape(count, *logits.shape[-2:]).float().cpu().numpy()

    def predict(
        self,
        image_or_encoding: ImageLike | ImageEncoding,
        prompts: Prompt | list[Prompt],
        *,
        extract_layers: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """Probabilities, float32 (N, H, W) in [0, 1], at the image's own size."""
        encoding = image_or_encoding
        if not isinstance(encoding, ImageEncoding):
            deepest = None
            if extract_layers is not None:
                deepest = max(self._checked_layers(extract_layers)) + 1
            encoding = self.encode_image(image_or_encoding, max_layer=deepest)
        logits = torch.from_numpy(
            self.predict_logits(encoding, prompts, extract_layers=extract_layers)
        )
        resized = F.interpolate(
            logits[:, None], size=encoding.original_size, mode="bilinear", align_corners=False
        )
        return torch.sigmoid(resized[:, 0]).numpy()

    def _checked_layers(self, extract_layers: tuple[int, ...] | None) -> tuple[int, ...]:
        """`extract_layers` (default: the model's) after checking their count and range."""
        if extract_layers is None:
            return self.extract_layers
        layers = tuple(extract_layers)
        count = len(self.model.decoder.reduces)
        if len(layers) != count:
            raise ValueError(f"extract_layers {layers} must name {count} layers")
        if not all(isinstance(layer, int | np.integer) for layer in layers) or not all(
            0 <= layer < self.num_layers for layer in layers
        ):
            raise ValueError(
                f"extract_layers {layers}: each must be a layer index in 0..{self.num_layers - 1}"
            )
        return tuple(int(layer) for layer in layers)

    def _embed_one(
        self, prompt: Prompt, index: int, texts: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        if isinstance(prompt, str):
            return texts[prompt]
        if isinstance(prompt, ImagePrompt):
            return self._embed_image_prompt(prompt)
        if isinstance(prompt, Mix):
            image = self._embed_image_prompt(prompt.image_prompt)
            return prompt.weight * texts[prompt.text] + (1 - prompt.weight) * image
        vector = prompt.vector if isinstance(prompt, Embedding) else prompt
        return self._check_embedding(vector, index)

    def _embed_texts(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Each of `texts` -> its embedding, from the text cache or, for those not cached, one
        batched text forward (whose results are cached)."""
        embedded = {text: self._text_cache.get(text) for text in texts}
        new = [text for text, feature in embedded.items() if feature is None]
        if not new:
            return embedded
        for text in new:
            if not text.strip():
                raise ValueError(f"prompt {text!r} is empty: give a text to segment")
        tokenizer = self.processor.tokenizer
        limit = self.model.config.text_config.max_position_embeddings
        for text in new:
            length = len(tokenizer(text)["input_ids"])
            if length > limit:
                warnings.warn(
                    f"prompt {text[:40]!r}... has {length} tokens, over the limit of {limit}: "
                    "truncated",
                    stacklevel=4,
                )
        tokens = tokenizer(
            new, padding=True, truncation=True, max_length=limit, return_tensors="pt"
        )
        features = self.model.clip.get_text_features(
            input_ids=tokens["input_ids"].to(self.device),
            attention_mask=tokens["attention_mask"].to(self.device),
        ).pooler_output
        for text, feature in zip(new, features, strict=True):
            embedded[text] = feature.float()
            self._text_cache.put(text, embedded[text])
        return embedded

    def _embed_image_prompt(self, prompt: ImagePrompt) -> torch.Tensor:
        """The support image's CLIP embedding, computed once per distinct support input."""
        pixel_values = self.preprocess(prompt.engineered())
        digest = input_digest(pixel_values)
        features = self._support_cache.get(digest)
        if features is None:
            started = time.perf_counter()
            features = self.model.clip.get_image_features(pixel_values).pooler_output[0].float()
            config = self.model.config
            flops = backbone_flops(
                config.vision_config,
                tuple(pixel_values.shape[-2:]),
                self.num_layers,
                projection=config.projection_dim,
            )
            self._work_log.add_support(flops, time.perf_counter() - started)
            self._support_cache.put(digest, features)
        return features

    def _check_embedding(self, vector: Any, index: int) -> torch.Tensor:
        try:
            tensor = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        except (TypeError, ValueError) as error:
            raise ValueError(f"prompt {index}: embedding is not an array of numbers") from error
        size = self.model.config.projection_dim
        if tensor.shape != (size,):
            raise ValueError(
                f"prompt {index}: embedding shape {tuple(tensor.shape)} is not ({size},)"
            )
        if not torch.isfinite(tensor).all():
            raise ValueError(f"prompt {index}: embedding contains NaN or infinite values")
        return tensor.to(self.device)


def _as_list(prompts: Prompt | list[Prompt]) -> list[Prompt]:
    """A list or tuple of prompts, or one prompt, as a checked list; a 2-D array is a list of
    embeddings. Any other type names the offending prompt's index and type."""
    if prompts is None:
        raise ValueError("prompts is None: give a prompt or a list of prompts")
    if isinstance(prompts, np.ndarray) and prompts.ndim == 2:
        prompts = list(prompts)
    elif not isinstance(prompts, list | tuple):
        prompts = [prompts]
    if not prompts:
        raise ValueError("prompts is an empty list: give at least one prompt")
    for index, prompt in enumerate(prompts):
        if prompt is None:
            raise ValueError(f"prompt {index} is None")
        if not isinstance(prompt, str | ImagePrompt | Mix | Embedding | np.ndarray):
            raise ValueError(
                f"prompt {index} has type {type(prompt).__name__}: expected a string, "
                "ImagePrompt, Mix, Embedding or 1-D numpy array"
            )
    return list(prompts)
