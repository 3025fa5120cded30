"""`ImageEncoding`: what the backbone leaves of one image for the decoder (see
:mod:`clipseg_lib.model.segmenter`, which makes them, and :mod:`clipseg_lib.model.encoding_cache`,
which keeps them)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageEncoding:
    """What the decoder needs from one image.

    `hidden_states[k]` is the (1, tokens, hidden) output of backbone layer k (k = 0 is the
    patch embedding after the pre-layernorm), for k = 0 .. `max_layer`. `original_size` is
    the image's (H, W); `input_size` the model resolution (h, w) the backbone saw.
    """

    hidden_states: tuple[torch.Tensor, ...]
    original_size: tuple[int, int]
    input_size: tuple[int, int]

    @property
    def max_layer(self) -> int:
        """Index of the deepest hidden state held."""
        return len(self.hidden_states) - 1
