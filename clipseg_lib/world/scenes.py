"""The synthetic world: seeded scenes of shapes, word signs and cartoon faces with exact masks.

A `Scene` is a pure function of its seed. Objects are coloured shapes (`SHAPES` x `COLOURS`,
three sizes), signs showing one of `WORDS` (every sign has the same light rectangle; the mask
is the rectangle) and yellow cartoon faces with one of `EXPRESSIONS` (the mask is the disc).
Objects may overlap partially; `Scene.instance_map` keeps the visible pixels of each, and every
object keeps at least 60% of its pixels visible. Signs and faces never overlap anything.

Query kinds (`make_query`) and their exact targets (bool masks of visible pixels):
- attribute: "red", "red object" -> every shape of that colour (signs and faces have none).
- category: "triangle" -> every triangle, whatever its colour.
- composite: "red triangle" -> every red triangle.
- referring: exactly one object. "the left/right red circle" (exactly two red circles whose
  boxes do not overlap horizontally); "the largest/smallest square" (two or three squares of
  different size classes, compared by box area); "the shape above/below the star" (the only
  star, and the only object whose box centre lies in the star's columns, directly above or
  below it; no other object overlaps those columns).
- word: "the word CAT" among 2-4 signs with different words -> that sign.
- expression: "the smiling face" among 2-4 faces with different expressions -> that face.
- negation: "not the red circle", "everything except the red circle" -> the union of every
  other object (shapes, signs and faces); background pixels are never part of the target.
- absent: a composite phrase ("blue star") for which the scene holds no object -> empty mask;
  about half of the other objects share its colour or its shape.
- image: the target is every object of a composite; `support_image`/`support_mask` show one
  object of that composite in another scene (other seed, size class and position). `prompt`
  holds the composite phrase, for reference and text-image interpolation.

Splits: "train" and "test" share one distribution and never render `HELD_OUT_COMBINATIONS`;
seeds are mixed with the split, so the two never share a scene. "heldout" may render them
anywhere, and for attribute, category, composite, absent and image queries the target
composite is always one of them (zero-shot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from typing import TypeVar

import numpy as np

from clipseg_lib.world.render import (
    COLOURS,
    EXPRESSIONS,
    SHAPES,
    SIZE_CLASSES,
    WORDS,
    LayoutDoesNotFit,
    Scene,
    SceneLayout,
    WorldObject,
    caption,
    with_articles,
)
from clipseg_lib.world.templates import (
    DEFAULT_KIND_WEIGHTS,
    HELD_OUT_COMBINATIONS,
    PROMPT_TEMPLATES,
    QUERY_KINDS,
    SPLITS,
)

__all__ = [
    "COLOURS", "DEFAULT_KIND_WEIGHTS", "EXPRESSIONS", "HELD_OUT_COMBINATIONS", "PROMPT_TEMPLATES",
    "QUERY_KINDS", "SHAPES", "SPLITS", "WORDS", "Query", "Scene", "WorldObject", "caption",
    "make_queries", "make_query", "render_scene", "sample_query",
]

_ZERO_SHOT_KINDS = ("attribute", "category", "composite", "absent", "image")
_LAYOUT_ATTEMPTS = 50
_COUNT_LIMITS = {"n_shapes": 12, "n_words": len(WORDS), "n_faces": len(EXPRESSIONS)}

_Selector = Callable[[Scene], list[int]]
_Plan = tuple[str, _Selector, tuple[Scene, int] | None]
_Result = TypeVar("_Result")
_Option = TypeVar("_Option")


@dataclass(frozen=True, eq=False)
class Query:
    """A (scene, prompt) pair and its exact (H, W) bool target; see the module docstring.

    target_indices lists the objects of `scene` that make up `target`; support_image
    (H, W, 3) uint8 and support_mask (H, W) bool are set for kind "image" only.
    """

    scene: Scene
    prompt: str
    target: np.ndarray
    kind: str
    support_image: np.ndarray | None = None
    support_mask: np.ndarray | None = None
    target_indices: tuple[int, ...] = ()


def _check(*, split: str, size: int, seed: int, kind: str | None = None) -> None:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    if kind is not None and kind not in QUERY_KINDS:
        raise ValueError(f"query kind {kind!r} is not one of {QUERY_KINDS}")
    if not isinstance(size, Integral) or not 64 <= size <= 512:
        raise ValueError(f"size {size!r} must be an integer in 64..512")
    if not isinstance(seed, Integral) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed {seed!r} must be a non-negative integer")


def _first_fit(attempt: Callable[[], _Result], what: str) -> _Result:
    """Run `attempt` until its random layout fits (each try draws on from the same generator)."""
    for _ in range(_LAYOUT_ATTEMPTS):
        try:
            return attempt()
        except LayoutDoesNotFit:
            continue
    raise RuntimeError(f"no layout for {what} fitted in {_LAYOUT_ATTEMPTS} attempts")


def _combinations(split: str) -> list[tuple[str, str]]:
    every = [(colour, shape) for colour in COLOURS for shape in SHAPES]
    return every if split == "heldout" else [c for c in every if c not in HELD_OUT_COMBINATIONS]


def _pick(rng: np.random.Generator, options: Sequence[_Option]) -> _Option:
    return options[rng.integers(len(options))]


def _target_combination(rng: np.random.Generator, split: str, kind: str) -> tuple[str, str]:
    if split == "heldout" and kind in _ZERO_SHOT_KINDS:
        return _pick(rng, sorted(HELD_OUT_COMBINATIONS))
    return _pick(rng, _combinations(split))


def _other_than(colour: str, shape: str) -> Callable[[str, str], bool]:
    return lambda c, s: (c, s) != (colour, shape)


def _add_shapes(
    layout: SceneLayout,
    split: str,
    count: int,
    allowed: Callable[[str, str], bool],
    near: tuple[str, str] | None = None,
    **placement,
) -> None:
    """Add `count` shapes of allowed combinations; with `near`, half share its colour or shape."""
    options = [c for c in _combinations(split) if allowed(*c)]
    similar = [c for c in options if near and (c[0] == near[0] or c[1] == near[1])]
    for _ in range(count):
        use_similar = similar and layout.rng.random() < 0.5
        colour, shape = _pick(layout.rng, similar if use_similar else options)
        layout.add("shape", shape, colour, **placement)


def _maybe_add_sign_and_face(layout: SceneLayout, probability: float) -> None:
    if layout.rng.random() < probability:
        layout.add("word", _pick(layout.rng, WORDS))
    if layout.rng.random() < probability:
        layout.add("face", _pick(layout.rng, EXPRESSIONS))


def _phrase(rng: np.random.Generator, template_key: str, **fields: str) -> str:
    return with_articles(_pick(rng, PROMPT_TEMPLATES[template_key]).format(**fields))


def _matching(predicate: Callable[[WorldObject], bool]) -> _Selector:
    return lambda scene: [i for i, o in enumerate(scene.objects) if predicate(o)]


def _the(target: WorldObject) -> _Selector:
    return _matching(lambda o: o is target)


def _is_shape(
    colour: str | None = None, shape: str | None = None
) -> Callable[[WorldObject], bool]:
    return lambda o: o.kind == "shape" and colour in (None, o.colour) and shape in (None, o.name)


def _plan_composite(layout: SceneLayout, split: str, kind: str) -> _Plan:
    """attribute, category, composite and image: one or two target objects plus distractors."""
    rng = layout.rng
    colour, shape = _target_combination(rng, split, kind)
    first = layout.add("shape", shape, colour)
    if rng.random() < 0.5:
        layout.add("shape", shape, colour)
    if kind == "attribute":
        _add_shapes(layout, split, rng.integers(0, 2), lambda c, s: c == colour and s != shape)
        _add_shapes(layout, split, rng.integers(1, 4), lambda c, s: c != colour)
        wanted = _is_shape(colour=colour)
    elif kind == "category":
        _add_shapes(layout, split, rng.integers(0, 2), lambda c, s: s == shape and c != colour)
        _add_shapes(layout, split, rng.integers(1, 4), lambda c, s: s != shape)
        wanted = _is_shape(shape=shape)
    else:
        _add_shapes(layout, split, rng.integers(1, 4), _other_than(colour, shape), (colour, shape))
        wanted = _is_shape(colour, shape)
    _maybe_add_sign_and_face(layout, 0.2)
    if kind == "image":
        return f"{colour} {shape}", _matching(wanted), _support_scene(layout, split, first)
    return _phrase(rng, kind, c=colour, s=shape), _matching(wanted), None


def _support_scene(layout: SceneLayout, split: str, shown: WorldObject) -> tuple[Scene, int]:
    """(scene, index): another scene whose object `index` has `shown`'s composite, another
    size class and a centre at least 15% of the image away from `shown`'s."""
    seed = int(layout.rng.integers(2**63))
    support = SceneLayout(np.random.default_rng(seed), layout.size)
    sizes = [c for c in SIZE_CLASSES if c != layout.size_classes[layout.objects.index(shown)]]
    centre = np.add(shown.box[:2], shown.box[2:]) / 2
    example = support.add(
        "shape", shown.name, shown.colour, _pick(support.rng, sizes),
        accept=lambda b: np.abs(np.add(b[:2], b[2:]) / 2 - centre).max() > 0.15 * layout.size,
    )
    _add_shapes(support, split, support.rng.integers(0, 3), _other_than(shown.colour, shown.name))
    scene = support.render(seed)
    return scene, _the(example)(scene)[0]


def _plan_referring(layout: SceneLayout, split: str, kind: str) -> _Plan:
    """One object picked by side (left/right), size (largest/smallest) or neighbour."""
    rng, size = layout.rng, layout.size
    relation = _pick(rng, ("side", "size", "neighbour"))
    if relation == "side":
        colour, shape = _target_combination(rng, split, kind)
        gap = max(1, round(0.03 * size))
        first = layout.add("shape", shape, colour)
        second = layout.add(
            "shape", shape, colour,
            accept=lambda b: b[0] >= first.box[2] + gap or b[2] + gap <= first.box[0],
        )
        _add_shapes(layout, split, rng.integers(1, 3), _other_than(colour, shape), (colour, shape))
        left, right = sorted((first, second), key=lambda o: o.box[0])
        side = _pick(rng, ("left", "right"))
        prompt = _phrase(rng, "side", d=side, c=colour, s=shape)
        return prompt, _the(left if side == "left" else right), None
    if relation == "size":
        shape = _pick(rng, SHAPES)
        colours = [c for c, s in _combinations(split) if s == shape]
        classes = sorted(rng.choice(len(SIZE_CLASSES), rng.integers(2, 4), replace=False))
        members = [
            layout.add("shape", shape, _pick(rng, colours), SIZE_CLASSES[k]) for k in classes
        ]
        _add_shapes(layout, split, rng.integers(1, 3), lambda c, s: s != shape)
        extreme = _pick(rng, ("largest", "smallest"))
        target = members[-1] if extreme == "largest" else members[0]
        return _phrase(rng, extreme, s=shape), _the(target), None
    anchor_shape = _pick(rng, SHAPES)
    anchor_colour = _pick(rng, [c for c, s in _combinations(split) if s == anchor_shape])
    above, room, reach = rng.random() < 0.5, round(0.33 * size), max(2, round(0.1 * size))
    anchor = layout.add(
        "shape", anchor_shape, anchor_colour,
        region=(0, room, size, size) if above else (0, 0, size, size - room),
    )
    x0, y0, x1, y1 = anchor.box
    top, bottom = (y0 - room - reach, y0) if above else (y1, y1 + room + reach)
    colour, shape = _pick(rng, [c for c in _combinations(split) if c[1] != anchor_shape])
    target = layout.add(
        "shape", shape, colour,
        region=(x0 - room // 2, top, x1 + room // 2, bottom),
        accept=lambda b: x0 <= (b[0] + b[2]) / 2 < x1 and (y0 - b[3] if above else b[1] - y1)
        <= reach,
    )
    _add_shapes(
        layout, split, rng.integers(1, 3), lambda c, s: s != anchor_shape,
        accept=lambda b: b[2] <= x0 or b[0] >= x1,
    )
    direction = "above" if above else "below"
    return _phrase(rng, "neighbour", d=direction, a=anchor_shape), _the(target), None


def _plan_sign_or_face(layout: SceneLayout, split: str, kind: str) -> _Plan:
    """word / expression: 2-4 signs or faces that differ only in their text or expression."""
    rng = layout.rng
    names = WORDS if kind == "word" else EXPRESSIONS
    chosen = [names[k] for k in rng.permutation(len(names))[: rng.integers(2, 5)]]
    members = [layout.add("word" if kind == "word" else "face", name) for name in chosen]
    _add_shapes(layout, split, rng.integers(0, 3), lambda c, s: True)
    return _phrase(rng, kind, n=chosen[0]), _the(members[0]), None


def _plan_negation_or_absent(layout: SceneLayout, split: str, kind: str) -> _Plan:
    """negation: everything but one composite; absent: a composite that is not there."""
    rng = layout.rng
    colour, shape = _target_combination(rng, split, kind)
    if kind == "absent":
        _add_shapes(layout, split, rng.integers(2, 6), _other_than(colour, shape), (colour, shape))
        _maybe_add_sign_and_face(layout, 0.2)
        return _phrase(rng, "composite", c=colour, s=shape), lambda scene: [], None
    for _ in range(rng.integers(1, 3)):
        layout.add("shape", shape, colour)
    _add_shapes(layout, split, rng.integers(1, 4), _other_than(colour, shape), (colour, shape))
    _maybe_add_sign_and_face(layout, 0.35)
    excluded = _is_shape(colour, shape)
    return _phrase(rng, kind, c=colour, s=shape), _matching(lambda o: not excluded(o)), None


_PLANNERS: dict[str, Callable[[SceneLayout, str, str], _Plan]] = {
    "attribute": _plan_composite, "category": _plan_composite, "composite": _plan_composite,
    "image": _plan_composite, "referring": _plan_referring, "word": _plan_sign_or_face,
    "expression": _plan_sign_or_face, "negation": _plan_negation_or_absent,
    "absent": _plan_negation_or_absent,
}


def make_query(kind: str, seed: int, *, size: int = 96, split: str = "test") -> Query:
    """A query of `kind` on a scene built for it; a pure function of (kind, seed, size, split)."""
    _check(split=split, size=size, seed=seed, kind=kind)
    rng = np.random.default_rng([seed, SPLITS.index(split), QUERY_KINDS.index(kind)])

    def attempt() -> Query:
        layout = SceneLayout(rng, size)
        prompt, select, support = _PLANNERS[kind](layout, split, kind)
        scene = layout.render(seed)
        indices = tuple(select(scene))
        support_image, support_mask = (
            (support[0].image, support[0].object_mask(support[1])) if support else (None, None)
        )
        return Query(
            scene, prompt, scene.union_mask(indices), kind, support_image, support_mask, indices
        )

    return _first_fit(attempt, f"a {kind!r} query at size {size}")


def _query_seed(seed: int, split: str, kind: str, index: int) -> int:
    entropy = [seed, SPLITS.index(split), QUERY_KINDS.index(kind), index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])


def make_queries(
    kind: str, n: int, *, seed: int, size: int = 96, split: str = "test"
) -> list[Query]:
    """n queries of `kind`; query i has the seed hashed from (seed, split, kind, i)."""
    _check(split=split, size=size, seed=seed, kind=kind)
    if not isinstance(n, Integral) or n < 0:
        raise ValueError(f"n {n!r} must be a non-negative integer")
    return [
        make_query(kind, _query_seed(seed, split, kind, i), size=size, split=split)
        for i in range(n)
    ]


def sample_query(
    rng: np.random.Generator,
    *,
    size: int = 96,
    split: str = "train",
    kind_weights: dict[str, float] | None = None,
) -> Query:
    """One query of a kind drawn with `kind_weights` (default `DEFAULT_KIND_WEIGHTS`; missing
    kinds weigh 0); a pure function of the generator's state."""
    weights = DEFAULT_KIND_WEIGHTS if kind_weights is None else kind_weights
    unknown = sorted(set(weights) - set(QUERY_KINDS))
    if unknown:
        raise ValueError(f"kind_weights has unknown kinds {unknown}; known: {QUERY_KINDS}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"kind_weights {weights} must be non-negative with a positive sum")
    probabilities = np.array([weights.get(k, 0.0) for k in QUERY_KINDS], float)
    kind = QUERY_KINDS[rng.choice(len(QUERY_KINDS), p=probabilities / probabilities.sum())]
    return make_query(kind, int(rng.integers(2**63)), size=size, split=split)


def _count_range(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    low, high = (value, value) if isinstance(value, Integral) else value
    if not 0 <= low <= high <= _COUNT_LIMITS[name]:
        limit = _COUNT_LIMITS[name]
        raise ValueError(f"{name} {value!r} must be a count or (low, high) within 0..{limit}")
    return int(low), int(high)


def render_scene(
    seed: int,
    *,
    size: int = 96,
    split: str = "train",
    n_shapes: int | tuple[int, int] = (2, 5),
    n_words: int | tuple[int, int] = 0,
    n_faces: int | tuple[int, int] = 0,
) -> Scene:
    """A random scene. Counts are exact or inclusive (low, high) ranges; the words and the
    expressions within a scene are distinct; "train"/"test" never render held-out pairs."""
    _check(split=split, size=size, seed=seed)
    shapes = _count_range("n_shapes", n_shapes)
    signs_and_faces = (
        ("word", WORDS, _count_range("n_words", n_words)),
        ("face", EXPRESSIONS, _count_range("n_faces", n_faces)),
    )
    rng = np.random.default_rng([seed, SPLITS.index(split)])

    def attempt() -> Scene:
        layout = SceneLayout(rng, size)
        for kind, names, (low, high) in signs_and_faces:
            for k in rng.permutation(len(names))[: rng.integers(low, high + 1)]:
                layout.add(kind, names[k])
        _add_shapes(layout, split, rng.integers(shapes[0], shapes[1] + 1), lambda c, s: True)
        return layout.render(seed)

    return _first_fit(attempt, f"scene {seed} at size {size}")

