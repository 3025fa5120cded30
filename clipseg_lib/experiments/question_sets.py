"""One evaluation set per question: every notebook that reports a quantity draws the same cases.

`question_queries("zero_shot", n, seed=s)` is a prefix of `question_queries("zero_shot", m,
seed=s)` for n < m, so a notebook that reports fewer cases reports a subset, never other cases.
"""

from __future__ import annotations

from clipseg_lib import world

QUESTIONS = {
    "seen": ("composite", "test"),
    "zero_shot": ("composite", "heldout"),
    "one_shot": ("image", "test"),
    "referring": ("referring", "test"),
    "attribute": ("attribute", "test"),
    "category": ("category", "test"),
    "word": ("word", "test"),
    "expression": ("expression", "test"),
    "negation": ("negation", "test"),
    "absent": ("absent", "test"),
    "absent_unseen": ("absent", "heldout"),
}
"""Question -> (world query kind, split). "zero_shot" composites are pairs `mini` never saw."""
DEFAULT_CASES = 40
"""Cases per reported cell unless a notebook's budget says otherwise."""
QUICK_CASES = 4
"""``n_cases`` of a quick run (``clipseg-study run --quick``): enough to exercise every
notebook, not to conclude anything."""


def question_queries(
    question: str, n_cases: int = DEFAULT_CASES, *, seed: int = 0, size: int = 96
) -> list[world.Query]:
    """The first `n_cases` world queries of `question` (see `QUESTIONS`)."""
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r}; known: {', '.join(QUESTIONS)}")
    kind, split = QUESTIONS[question]
    return world.make_queries(kind, n_cases, seed=seed, size=size, split=split)
