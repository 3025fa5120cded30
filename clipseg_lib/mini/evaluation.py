"""Ask a segmenter the synthetic world's queries and score its answers.

`held_out_metrics` computes the numbers of `data/mini/MODEL_CARD.md` on a fixed test set:
`n` queries per kind from `world.make_queries(kind, n, seed=HELD_OUT_SEED, split=...)`. The
test and heldout splits mix the split into every scene's seed, so no test scene is ever a
training scene, and the heldout split's targets are colour-shape pairs training never rendered.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clipseg_lib import world
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, auroc, iou, presence_score
from clipseg_lib.mini.losses import object_class_map
from clipseg_lib.model.prompts import ImagePrompt
from clipseg_lib.model.segmenter import Segmenter

HELD_OUT_SEED = 2022
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


def _patch_tokens_and_labels(
    segmenter: Segmenter, scenes: Sequence[world.Scene]
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Deepest extract layer's patch tokens (N, D) and, per patch, the object class and the
    colour index (0: none) at its centre pixel."""
    patch = segmenter.model.config.vision_config.patch_size
    colours = (None, *world.COLOURS)
    tokens, classes, colour_labels = [], [], []
    for scene in scenes:
        encoding = segmenter.encode_image(scene.image)
        tokens.append(encoding.hidden_states[max(segmenter.extract_layers) + 1][0, 1:].float())
        centres = np.s_[patch // 2 :: patch, patch // 2 :: patch]
        classes.append(object_class_map(scene)[centres].ravel())
        colour_of = np.array([0] + [colours.index(o.colour) for o in scene.objects])
        colour_labels.append(colour_of[scene.instance_map[centres]].ravel())
    return torch.cat(tokens), np.concatenate(classes), np.concatenate(colour_labels)


def object_class_probe(
    segmenter: Segmenter, *, n_train: int = 600, n_test: int = 200, seed: int = HELD_OUT_SEED,
    steps: int = 300,
) -> dict[str, float]:
    """How linearly the vision tower's patch tokens (deepest extract layer) say what covers
    their patch: test accuracy of softmax regressions fit on `n_train` train-split scenes and
    scored on `n_test` test-split scenes, predicting at each patch's centre pixel the object
    class ("object_class_accuracy": shape, sign or face, over patches on an object) and the
    colour ("colour_accuracy", over patches on a shape). Rounded to 4 decimals."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train}, {n_test}")
    counts = {"n_shapes": (2, 5), "n_words": (0, 1), "n_faces": (0, 1)}
    size = segmenter.image_size
    train = [world.render_scene(seed + i, size=size, split="train", **counts)
             for i in range(n_train)]
    test = [world.render_scene(seed + i, size=size, split="test", **counts) for i in range(n_test)]
    train_x, train_class, train_colour = _patch_tokens_and_labels(segmenter, train)
    test_x, test_class, test_colour = _patch_tokens_and_labels(segmenter, test)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-5
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(seed)
    accuracies = {}
    for name, train_y, test_y, counted in (
        ("object_class_accuracy", train_class, test_class, test_class > 0),
        ("colour_accuracy", train_colour, test_colour, test_colour > 0),
    ):
        probe = torch.nn.Linear(train_x.shape[1], int(max(train_y.max(), test_y.max())) + 1)
        optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
        labels = torch.from_numpy(train_y)
        for _ in range(steps):
            optimizer.zero_grad()
            F.cross_entropy(probe(train_x), labels).backward()
            optimizer.step()
        with torch.no_grad():
            predicted = probe(test_x).argmax(1).numpy()
        accuracies[name] = round(float((predicted[counted] == test_y[counted]).mean()), 4)
    return accuracies
