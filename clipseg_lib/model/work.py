"""What a `Segmenter` has computed: backbone encodings, their FLOPs and time.

FLOPs are counted as torch.utils.flop_counter counts them (2 per multiply-add, matmuls and
convolutions only), from the config: a ViT layer over T tokens of width D with MLP width I
costs 2 T D (4 D + 2 I) for its projections and 4 T^2 D for attention; the patch embedding
2 P D (3 p^2) for P patches of p x p pixels. Layernorms, softmax and GELU are not counted.
ViT-B/16 at 352 x 352 (485 tokens) through the 10 layers the default extract layers read:
76.45 GFLOP; a support image (12 layers and the projection): 91.63 GFLOP.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch
from transformers import CLIPSegVisionConfig


def backbone_flops(
    config: CLIPSegVisionConfig, input_size: tuple[int, int], layers: int, *, projection: int = 0
) -> int:
    """FLOPs of the patch embedding and `layers` ViT layers on an (h, w) input, plus the
    image projection to `projection` dimensions (0: not projected) of the class token."""
    patches = (input_size[0] // config.patch_size) * (input_size[1] // config.patch_size)
    tokens, width = patches + 1, config.hidden_size
    embedding = 2 * patches * width * config.num_channels * config.patch_size**2
    per_layer = 2 * tokens * width * (4 * width + 2 * config.intermediate_size)
    per_layer += 4 * tokens**2 * width
    return embedding + layers * per_layer + 2 * width * projection


def input_digest(pixel_values: torch.Tensor) -> bytes:
    """A digest of what the backbone is fed (shape, dtype and values)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{tuple(pixel_values.shape)} {pixel_values.dtype}".encode())
    digest.update(pixel_values.detach().contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return digest.digest()


@dataclass(frozen=True)
class Work:
    """Backbone work done so far.

    `images`: `encode_image` calls, of which `distinct_images` had distinct inputs;
    `supports`: image-prompt (support image) encodings, each of a distinct input (repeats are
    answered from the cache). `flops` of both kinds; `seconds` spent in them. What the numbers
    cost, the same whether or not an encoding cache answered some images (its own `stats`
    count those).
    """

    images: int = 0
    distinct_images: int = 0
    supports: int = 0
    flops: int = 0
    seconds: float = 0.0

    @property
    def encodings(self) -> int:
        """Backbone runs of both kinds."""
        return self.images + self.supports

    @property
    def gflop(self) -> float:
        """`flops` in units of 1e9."""
        return self.flops / 1e9

    def __str__(self) -> str:
        """Deterministic (no time): counts and GFLOP."""
        return (
            f"{self.encodings} encodings ({self.images} images, {self.distinct_images} distinct; "
            f"{self.supports} support images), {self.gflop:.2f} GFLOP"
        )

    def as_dict(self) -> dict[str, float | int]:
        """Plain numbers for a results file."""
        return {
            "encodings": self.encodings,
            "images": self.images,
            "distinct_images": self.distinct_images,
            "supports": self.supports,
            "gflop": round(self.gflop, 3),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class WorkLog:
    """The running tally behind `Segmenter.work`."""

    work: Work = Work()
    image_digests: set[bytes] = field(default_factory=set)

    def reset(self) -> None:
        """Count from zero."""
        self.work = Work()
        self.image_digests.clear()

    def add_image(self, digest: bytes, flops: int, seconds: float) -> None:
        """Record one `encode_image` run."""
        self.image_digests.add(digest)
        self.work = replace(
            self.work,
            images=self.work.images + 1,
            distinct_images=len(self.image_digests),
            flops=self.work.flops + flops,
            seconds=self.work.seconds + seconds,
        )

    def add_support(self, flops: int, seconds: float) -> None:
        """Record one support-image encoding."""
        self.work = replace(
            self.work,
            supports=self.work.supports + 1,
            flops=self.work.flops + flops,
            seconds=self.work.seconds + seconds,
        )
