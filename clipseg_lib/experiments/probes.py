"""Building blocks of the failure-mode probes (notebooks 05-09) on the synthetic world: which
sign or face the model picked, the prompts of a negation scene, the objects an absent prompt
resembles, how well the presence score tells present from absent (`presence_auroc`), and SAM 3's
presence scores of the absent-object cases (`presence_by_pair`). The
notebooks hold the loops that score them; these pieces only read a query.

"Which object did the model pick" is the candidate (sign or face) with the highest mean
probability over its visible pixels; a tie at the top is broken at random (seeded), so a model
that answers nothing scores chance, not the luck of the object order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipseg_lib import world
from clipseg_lib.analysis.metrics import DEFAULT_THRESHOLD, auroc, presence_score
from clipseg_lib.analysis.presence import Presence, presence_scores
from clipseg_lib.analysis.stats import N_RESAMPLES, Estimate, percentile_interval

#: Prompt forms of the negation probe, formatted with the excluded composite's colour and shape.
NEGATION_FORMS = {
    "X": "the {c} {s}",
    "not X": "not the {c} {s}",
    "everything except X": "everything except the {c} {s}",
}
#: The kind of object a word or expression query chooses among.
CANDIDATE_KIND = {"word": "word", "expression": "face"}


def check_queries(queries: Sequence[world.Query], kind: str, name: str) -> list[world.Query]:
    """`queries` as a list, or ValueError naming `name` when it is empty or holds another kind."""
    queries = list(queries)
    if not queries:
        raise ValueError(f"{name} is empty: give at least one {kind!r} query")
    wrong = sorted({q.kind for q in queries if q.kind != kind})
    if wrong:
        raise ValueError(f"{name} must hold {kind!r} queries only, got kinds {wrong}")
    return queries


def check_threshold(threshold: float) -> None:
    """ValueError unless 0 <= threshold <= 1."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")


def candidate_objects(query: world.Query) -> list[int]:
    """Indices of the scene's signs (word query) or faces (expression query), in scene order."""
    if query.kind not in CANDIDATE_KIND:
        raise ValueError(f"query {query.prompt!r} is a {query.kind!r} query; candidates exist "
                         f"for {sorted(CANDIDATE_KIND)} only")
    kind = CANDIDATE_KIND[query.kind]
    return [i for i, o in enumerate(query.scene.objects) if o.kind == kind]


def candidate_choice(
    probs: np.ndarray, masks: Sequence[np.ndarray], target: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mean probability per candidate, share of the pick per candidate) for one map.

    `probs` (H, W) float in [0, 1]; `masks` the candidates' (H, W) bool masks; `target` the
    index of the asked candidate (only checked). The share is 1 for the unique top candidate,
    1/k for each of k tied at the top, 0 elsewhere; it sums to 1.
    """
    if not masks:
        raise ValueError("masks is empty: a choice needs at least one candidate")
    if not 0 <= target < len(masks):
        raise ValueError(f"target {target} is not a candidate index in 0..{len(masks) - 1}")
    means = np.array([float(probs[mask].mean()) if mask.any() else 0.0 for mask in masks])
    top = means == means.max()
    return means, top / top.sum()


def picked_object(probs: np.ndarray, query: world.Query, rng: np.random.Generator) -> int:
    """The scene index of the candidate (`candidate_objects`) with the highest mean probability
    in `probs` (H, W); a tie at the top is broken with `rng`."""
    candidates = candidate_objects(query)
    masks = [query.scene.object_mask(i) for i in candidates]
    _, share = candidate_choice(probs, masks, candidates.index(query.target_indices[0]))
    return candidates[int(rng.choice(len(candidates), p=share))]


def confusion_counts(asked: Sequence[str], picked: Sequence[str], labels: Sequence[str]
                     ) -> np.ndarray:
    """(len(labels), len(labels)) int counts: row = the label asked, column = the one picked."""
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for asked_label, picked_label in zip(asked, picked, strict=True):
        counts[list(labels).index(asked_label), list(labels).index(picked_label)] += 1
    return counts


def excluded_objects(query: world.Query) -> list[int]:
    """Indices of the objects a negation query excludes (X's objects): those not in its target."""
    if query.kind != "negation":
        raise ValueError(f"query {query.prompt!r} is a {query.kind!r} query, not a negation")
    return [i for i in range(len(query.scene.objects)) if i not in set(query.target_indices)]


def excluded_composite(query: world.Query) -> tuple[str, str]:
    """(colour, shape) of the composite X that a negation query excludes."""
    excluded = query.scene.objects[excluded_objects(query)[0]]
    return excluded.colour, excluded.name


def negation_prompts(query: world.Query) -> list[str]:
    """"the X", "not the X", "everything except the X" (`NEGATION_FORMS`) of a negation scene."""
    colour, shape = excluded_composite(query)
    return [form.format(c=colour, s=shape) for form in NEGATION_FORMS.values()]


def prompt_composite(query: world.Query) -> tuple[str, str]:
    """(colour, shape) a composite or absent query's prompt names ("a blue star")."""
    words = query.prompt.split()
    colours = [w for w in words if w in world.COLOURS]
    shapes = [w for w in words if w in world.SHAPES]
    if query.kind not in ("composite", "absent") or not colours or not shapes:
        raise ValueError(f"query {query.prompt!r} ({query.kind}) names no colour and shape")
    return colours[0], shapes[0]


def similar_objects(query: world.Query) -> list[int]:
    """Indices of the scene's shapes that share the prompt's colour or shape but are not it:
    what an absent prompt could be mistaken for."""
    colour, shape = prompt_composite(query)
    return [
        i for i, o in enumerate(query.scene.objects)
        if o.kind == "shape" and (o.colour == colour) != (o.name == shape)
    ]


def marks_something(probs: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> bool:
    """True when any pixel of `probs` (H, W) is above `threshold`: the mask is not empty."""
    check_threshold(threshold)
    return presence_score(probs) > threshold


def presence_auroc(absent: Sequence[float], present: Sequence[float], *, seed: int = 0
                   ) -> Estimate:
    """AUROC of the presence score telling present prompts from absent ones (0.5: chance;
    1.0: some gate separates them all), over their ``absent`` and ``present`` scores, with a
    95% percentile interval of resampling each group (`stats.N_RESAMPLES`, seeded)."""
    absent_scores, present_scores = np.asarray(absent, float), np.asarray(present, float)
    if not absent_scores.size or not present_scores.size:
        raise ValueError("presence_auroc needs absent and present scores")
    labels = np.r_[np.zeros(absent_scores.size, bool), np.ones(present_scores.size, bool)]
    rng = np.random.default_rng(seed)
    resampled = [
        auroc(np.r_[rng.choice(absent_scores, absent_scores.size),
                    rng.choice(present_scores, present_scores.size)], labels)
        for _ in range(N_RESAMPLES)
    ]
    low, high = percentile_interval(resampled)
    return Estimate(auroc(np.r_[absent_scores, present_scores], labels), int(labels.size),
                    float(low), float(high))


def presence_by_pair(cases: Sequence[dict], *, seed: int = 0) -> dict[str, Presence]:
    """SAM 3's presence scores (`presence.presence_scores`: IL_MCC, pmF1, cgF1) of notebook
    08's cases, for the seen and the unseen pairs: their "present, <pair> pair" cases against
    their "absent, <pair> pair" cases. A case holds ``group``, ``marks_something`` and, when
    present, its mask's ``iou``."""
    found = {}
    for pair in ("seen", "unseen"):
        present = [case for case in cases if case["group"] == f"present, {pair} pair"]
        absent = [case for case in cases if case["group"] == f"absent, {pair} pair"]
        found[pair] = presence_scores(
            [case["iou"] for case in present], [case["marks_something"] for case in present],
            [case["marks_something"] for case in absent], seed=seed,
        )
    return found
