"""Small fixes for CLIPSeg's failure modes, composable with any `Segmenter`.

- `gate_by_presence`: answer "nothing" when a map's presence score (its maximum) is below a
  threshold, e.g. one from `calibrate_presence_threshold`.
- `negate_by_complement`: read "not X" as "foreground and not X", from the maps of X and of
  a generic foreground prompt (see `foreground_probs`), instead of embedding the negation.
- `ensemble_prompts`: average the maps of one phrase put into several templates (for `mini`,
  `WORLD_TEMPLATES`, the composite templates of its training).
- `predict_views` + `average_views`: the maps of flipped and shifted copies of the image, each
  mapped back to the image's own pixels, and their average (test-time augmentation).

Probability maps are float (H, W) or (N, H, W) arrays in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clipseg_lib.model.images import ImageLike, load_image
from clipseg_lib.model.prompts import Prompt
from clipseg_lib.model.segmenter import ImageEncoding, Segmenter
from clipseg_lib.world import PROMPT_TEMPLATES
from clipseg_lib.world.render import with_articles

#: Templates of the CLIP paper's prompt ensembling, "{}" standing for the phrase.
DEFAULT_TEMPLATES = ("{}", "a {}", "the {}", "a photo of a {}")
#: The composite templates `mini` was trained on ("{c} {s}", "a {c} {s}", "the {c} {s}").
WORLD_TEMPLATES = tuple(t.replace("{c} {s}", "{}") for t in PROMPT_TEMPLATES["composite"])
#: Generic prompts whose maximum is taken as "some object is here".
DEFAULT_FOREGROUND_PROMPTS = ("object",)


def _check_maps(probs: np.ndarray, name: str) -> np.ndarray:
    probs = np.asarray(probs)
    if probs.ndim not in (2, 3) or not np.issubdtype(probs.dtype, np.floating):
        raise ValueError(f"{name} must be a float (H, W) or (N, H, W) array, got "
                         f"{probs.dtype} {probs.shape}")
    if not np.all((probs >= 0.0) & (probs <= 1.0)):
        raise ValueError(f"{name} must hold finite probabilities in [0, 1]")
    return probs


def _check_unit(value: float, name: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def gate_by_presence(probs: np.ndarray, threshold: float) -> np.ndarray:
    """A copy of `probs` in which every map whose maximum is below `threshold` is all zeros."""
    probs = _check_maps(probs, "probs")
    _check_unit(threshold, "threshold")
    maps = probs.reshape(-1, *probs.shape[-2:])
    keep = maps.max(axis=(1, 2)) >= threshold
    return (maps * keep[:, None, None]).astype(probs.dtype).reshape(probs.shape)


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if scores.ndim != 1 or scores.shape != labels.shape:
        raise ValueError(f"scores and labels must be 1-D of one length, got {scores.shape} and "
                         f"{labels.shape}")
    if labels.dtype != np.bool_:
        raise ValueError(f"labels must be bool (True = object present), got {labels.dtype}")
    if labels.all() or not labels.any():
        raise ValueError("labels must hold both present (True) and absent (False) cases")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    return scores, labels


def balanced_accuracy(scores: np.ndarray, labels: np.ndarray, threshold: float) -> float:
    """Mean of the recalls of both classes when `scores >= threshold` means present."""
    scores, labels = _check_scores(scores, labels)
    said_present = scores >= threshold
    return float((said_present[labels].mean() + (~said_present[~labels]).mean()) / 2)


def calibrate_presence_threshold(
    scores: np.ndarray, labels: np.ndarray, *, above: float = 0.0
) -> float:
    """The threshold above ``above`` with the best balanced accuracy on (scores, labels) (1-D,
    bool labels). Pass the mask threshold as ``above``: a gate at or below it never empties a
    mask that has a pixel above it, so it cannot change any mask.

    Candidates are the midpoints between consecutive distinct scores (and just outside their
    range); of equally good candidates the middle one is taken, deterministic and away from
    both classes. Raises ValueError when no candidate lies above ``above``.
    """
    scores, labels = _check_scores(scores, labels)
    distinct = np.unique(scores)
    candidates = np.r_[distinct[0] - 1e-6, (distinct[:-1] + distinct[1:]) / 2, distinct[-1] + 1e-6]
    candidates = candidates[candidates > above]
    if not candidates.size:
        raise ValueError(f"no score lies above {above}: no gate there can tell the classes apart")
    accuracies = np.array([balanced_accuracy(scores, labels, c) for c in candidates])
    best = np.flatnonzero(accuracies == accuracies.max())
    return float(np.clip(candidates[best[len(best) // 2]], 0.0, 1.0))


def foreground_probs(
    segmenter: Segmenter,
    encoding: ImageEncoding,
    prompts: Sequence[str] = DEFAULT_FOREGROUND_PROMPTS,
) -> np.ndarray:
    """(H, W) pixelwise maximum of the maps of generic prompts: where some object is."""
    if not prompts:
        raise ValueError("prompts is empty: give at least one foreground prompt")
    return segmenter.predict(encoding, list(prompts)).max(axis=0)


def negate_by_complement(probs_x: np.ndarray, probs_foreground: np.ndarray) -> np.ndarray:
    """p(not X) = p(foreground) * (1 - p(X)), pixelwise; both (H, W) or (N, H, W) in [0, 1]."""
    probs_x = _check_maps(probs_x, "probs_x")
    probs_foreground = _check_maps(probs_foreground, "probs_foreground")
    if probs_x.shape != probs_foreground.shape:
        raise ValueError(f"probs_x {probs_x.shape} and probs_foreground "
                         f"{probs_foreground.shape} must have the same shape")
    return (probs_foreground * (1.0 - probs_x)).astype(np.float32)


def template_prompts(phrase: str, templates: Sequence[str] = DEFAULT_TEMPLATES) -> list[str]:
    """`phrase` put into each template ("{}" marks its place), with "a" -> "an" before vowels."""
    if not phrase.strip():
        raise ValueError("phrase is empty: give the words naming the object")
    if not templates or any("{}" not in t for t in templates):
        raise ValueError(f"templates {list(templates)} must be non-empty, each holding '{{}}'")
    return [with_articles(template.format(phrase)) for template in templates]


def ensemble_prompts(
    segmenter: Segmenter,
    encoding: ImageEncoding,
    phrase: str,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> np.ndarray:
    """(H, W) mean of the maps of `phrase` in every template, from one image encoding."""
    return segmenter.predict(encoding, template_prompts(phrase, templates)).mean(axis=0)


@dataclass(frozen=True)
class Transform:
    """A horizontal flip and/or a shift by (rows, columns) fractions of the image side.

    `apply` shifts, filling the uncovered strip with the edge pixels, then flips; `invert`
    maps a probability map back and says which of the image's pixels it covers.
    """

    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)

    def _offsets(self, shape: tuple[int, ...]) -> tuple[int, int]:
        return round(self.shift[0] * shape[0]), round(self.shift[1] * shape[1])

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The transformed (H, W, ...) array (edge pixels fill the uncovered strip)."""
        moved = _translate(image, *self._offsets(image.shape), mode="edge")
        return moved[:, ::-1] if self.flip else moved

    def invert(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(probs in the original pixels, bool coverage) for (N, H, W) maps of `apply`'s output."""
        unflipped = probs[..., ::-1] if self.flip else probs
        dy, dx = self._offsets(probs.shape[-2:])
        back = np.stack([_translate(p, -dy, -dx, mode="constant") for p in unflipped])
        covered = _translate(np.ones(probs.shape[-2:], bool), -dy, -dx, mode="constant")
        return back, covered


def _translate(array: np.ndarray, dy: int, dx: int, *, mode: str) -> np.ndarray:
    """out[y, x] = array[y - dy, x - dx]; outside pixels by np.pad `mode` (constant: 0)."""
    height, width = array.shape[:2]
    if abs(dy) >= height or abs(dx) >= width:
        raise ValueError(f"shift ({dy}, {dx}) pixels leaves nothing of a {height}x{width} image")
    pad = [(abs(dy), abs(dy)), (abs(dx), abs(dx))] + [(0, 0)] * (array.ndim - 2)
    padded = np.pad(array, pad, mode=mode)
    top, left = abs(dy) - dy, abs(dx) - dx
    return padded[top : top + height, left : left + width]


#: Identity, the mirror image, and shifts of 4% of the side (not a multiple of a patch).
DEFAULT_TRANSFORMS = (
    Transform(),
    Transform(flip=True),
    Transform(shift=(0.04, 0.04)),
    Transform(shift=(-0.04, -0.04)),
)


def predict_views(
    segmenter: Segmenter,
    image: ImageLike,
    prompts: Prompt | list[Prompt],
    transforms: Sequence[Transform] = DEFAULT_TRANSFORMS,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per transform of `image`: ((N, H, W) maps mapped back to the image's pixels, (H, W) bool
    coverage). One encoding per transform; the identity's maps are the plain prediction."""
    if not transforms:
        raise ValueError("transforms is empty: give at least one Transform")
    pixels = load_image(image)
    return [
        transform.invert(segmenter.predict(np.ascontiguousarray(transform.apply(pixels)), prompts))
        for transform in transforms
    ]


def average_views(views: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(N, H, W) float32: each pixel averages the views that cover it (see `predict_views`)."""
    total = sum(maps * covered for maps, covered in views)
    count = sum(covered.astype(np.float64) for _, covered in views)
    if not np.all(count > 0):
        raise ValueError("transforms leave some pixels uncovered: include the identity Transform()")
    return (total / count).astype(np.float32)
