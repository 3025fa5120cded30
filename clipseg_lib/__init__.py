"""clipseg_lib: a thin library for studying CLIPSeg (Lüddecke & Ecker, CVPR 2022).

Load a model, encode an image once, ask many prompts::

    from clipseg_lib import load_segmenter
    segmenter = load_segmenter("mini")            # or "CIDAS/clipseg-rd64-refined"
    encoding = segmenter.encode_image("data/images/scene.png")
    probs = segmenter.predict(encoding, ["red triangle", "the word CAT"])   # (2, H, W)
"""

from clipseg_lib.analysis.metrics import iou
from clipseg_lib.analysis.plotting import overlay, show_mask
from clipseg_lib.model.images import ImageError, load_image
from clipseg_lib.model.loading import (
    DEFAULT_MODEL,
    ModelNotFoundError,
    WeightsChecksumError,
    available_models,
    load_segmenter,
)
from clipseg_lib.model.prompts import Embedding, ImagePrompt, Mix, mix
from clipseg_lib.model.segmenter import ImageEncoding, Segmenter

__all__ = [
    "DEFAULT_MODEL",
    "Embedding",
    "ImageEncoding",
    "ImageError",
    "ImagePrompt",
    "Mix",
    "ModelNotFoundError",
    "Segmenter",
    "WeightsChecksumError",
    "available_models",
    "iou",
    "load_image",
    "load_segmenter",
    "mix",
    "overlay",
    "show_mask",
]
