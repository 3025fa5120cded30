"""Ask a segmenter the synthetic world's queries and score its answers.

`held_out_metrics` computes the numbers of `data/mini/MODEL_CARD.md` on a fixed test set:
`n` queries per kind from `world.make_queries(kind, n, seed=HELD_OUT_SEED, split=...)`. The
test and heldout splits mix the split into every scene's seed, so no test scene is ever a
training scene, and the heldout split's targets are colour-shape pairs training never rendered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import world
from .metrics import auroc, iou, presence_score
from .prompts import ImagePrompt
from .segmenter import Segmenter

HELD_OUT_SEED = 2022
DEFAULT_THRESHOLD = 0.5
#: Metric name -> (query kind, split); each is the mIoU of those queries.
MIOU_METRICS = {
    "seen_composite_miou": ("composite", "test"),
    "one_shot_miou": ("image", "test"),
    "zero_shot_miou": ("composite", "heldout"),
    "zero_shot_one_shot_miou": ("image", "heldout"),
    "referring_miou": ("referring", "test"),
    "attribute_miou": ("attribute", "test"),
    "category_miou": ("category", "test"),
    "word_miou": ("word", "test"),
    "expression_miou": ("expression", "test"),
    "negation_miou": ("negation", "test"),
}


def query_prompt(query: world.Query) -> str | ImagePrompt:
    """The prompt a segmenter is given: the text, or for image queries the support image and
    mask (engineered with the default crop_blur_highlight)."""
    if query.kind == "image":
        if query.support_image is None or query.support_mask is None:
            raise ValueError(f"image query {query.prompt!r} has no support image and mask")
        return ImagePrompt(query.support_image, query.support_mask)
    return query.prompt


def predict_queries(segmenter: Segmenter, queries: Sequence[world.Query]) -> list[np.ndarray]:
    """Probability maps, float32 (H, W) in [0, 1] at each query's scene size, in query order.

    Queries that share a scene object are answered from one image encoding.
    """
    by_scene: dict[int, list[int]] = {}
    for index, query in enumerate(queries):
        by_scene.setdefault(id(query.scene), []).append(index)
    answers: list[np.ndarray | None] = [None] * len(queries)
    for indices in by_scene.values():
        encoding = segmenter.encode_image(queries[indices[0]].scene.image)
        probabilities = segmenter.predict(encoding, [query_prompt(queries[i]) for i in indices])
        for index, probability in zip(indices, probabilities, strict=True):
            answers[index] = probability
    return answers


def score_queries(
    segmenter: Segmenter, queries: Sequence[world.Query], *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float | list[float]]:
    """{"miou": mean IoU of `probability > threshold` against the targets, "ious": per query,
    "presence": per-query presence scores (maximum probability)}."""
    if not queries:
        raise ValueError("queries is empty: give at least one query to score")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    probabilities = predict_queries(segmenter, queries)
    ious = [iou(p > threshold, q.target) for p, q in zip(probabilities, queries, strict=True)]
    return {
        "miou": float(np.mean(ious)),
        "ious": ious,
        "presence": [presence_score(p) for p in probabilities],
    }


def held_out_metrics(
    segmenter: Segmenter, *, n: int = 48, seed: int = HELD_OUT_SEED, size: int = 96
) -> dict[str, float]:
    """The model card's metrics on `n` held-out queries per kind (rounded to 4 decimals).

    Every entry of `MIOU_METRICS`, plus "absent_auroc": how well the presence score (maximum
    probability) separates seen composite queries (object there) from absent ones.
    """
    if n < 2:
        raise ValueError(f"n must be at least 2 queries per kind, got {n}")
    scores = {
        (kind, split): score_queries(
            segmenter, world.make_queries(kind, n, seed=seed, size=size, split=split)
        )
        for kind, split in {*MIOU_METRICS.values(), ("absent", "test")}
    }
    metrics = {name: scores[key]["miou"] for name, key in MIOU_METRICS.items()}
    present = scores["composite", "test"]["presence"]
    absent = scores["absent", "test"]["presence"]
    metrics["absent_auroc"] = auroc(
        np.array(present + absent), np.array([True] * len(present) + [False] * len(absent))
    )
    return {name: round(float(value), 4) for name, value in metrics.items()}
