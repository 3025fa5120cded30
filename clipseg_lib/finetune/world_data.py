"""Fine-tuning samples from the synthetic world, with names held out of training.

`world_queries(kind, n, seed=..., split=..., held_out=..., asking_held_out=...)` draws
queries of one kind and keeps those that avoid, or that ask about, a set of held-out names
(words, expressions, shapes, colours): training data built with `asking_held_out=False`
never shows a held-out name anywhere in its scenes or prompts, and evaluation data built with
`asking_held_out=True` always names one in its prompt, so a gain there is generalisation.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

import numpy as np

from clipseg_lib import world
from clipseg_lib.finetune.samples import Sample

#: Candidate queries drawn per wanted one before giving up (the rarest filters keep ~1 in 5).
DRAWS_PER_QUERY = 40


def prompt_names(prompt: str) -> set[str]:
    """The words of a prompt, lower case ("the word CAT" -> {"the", "word", "cat"})."""
    return set(re.findall(r"[a-z]+", prompt.lower()))


def scene_names(scene: world.Scene) -> set[str]:
    """Every name shown in a scene, lower case: shapes and colours, sign words, expressions."""
    names = set()
    for thing in scene.objects:
        names.add(thing.name.lower())
        if thing.kind == "shape":
            names.add(thing.colour)
    return names


def world_queries(
    kind: str,
    n: int,
    *,
    seed: int,
    split: str = "train",
    size: int = 96,
    held_out: Collection[str] = (),
    asking_held_out: bool = False,
) -> list[world.Query]:
    """`n` queries of `kind` from `split`, a pure function of the arguments.

    With `asking_held_out` False, no query shows a `held_out` name in its scene or prompt;
    with True, every query's prompt names one. Raises ValueError when too few are found.
    """
    names = {name.lower() for name in held_out}
    if asking_held_out and not names:
        raise ValueError("asking_held_out needs at least one held-out name")
    kept: list[world.Query] = []
    for index in range(max(1, n) * DRAWS_PER_QUERY):
        if len(kept) == n:
            return kept
        entropy = [seed, world.SPLITS.index(split), world.QUERY_KINDS.index(kind), index]
        query_seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
        query = world.make_query(kind, query_seed, size=size, split=split)
        asked = bool(prompt_names(query.prompt) & names)
        shown = bool(scene_names(query.scene) & names)
        if (asked if asking_held_out else not (asked or shown)):
            kept.append(query)
    if len(kept) < n:
        raise ValueError(
            f"only {len(kept)} of {n} {kind!r} queries in {DRAWS_PER_QUERY * max(1, n)} draws "
            f"{'ask about' if asking_held_out else 'avoid'} the held-out names {sorted(names)}"
        )
    return kept


def query_samples(queries: Iterable[world.Query]) -> list[Sample]:
    """One text sample per query (its scene image, prompt and exact target). Image-prompt
    queries have no text answer of their own and are refused."""
    samples = []
    for index, query in enumerate(queries):
        if query.kind == "image":
            raise ValueError(f"query {index} is an image-prompt query: give text queries")
        origin = f"world {query.kind} query {index}"
        samples.append(Sample(query.scene.image, query.prompt, query.target, origin))
    return samples
