"""What a question gives the model, for synthetic-world queries and real-photo cases alike.

A *question* is a `world.Query` (exact ground truth) or a `cases.Case` (a photo, a text
prompt and an optional mask). Notebooks loop over questions with these accessors, and over
`image_groups` so that each distinct image is encoded once for all the prompts about it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clipseg_lib import world
from clipseg_lib.experiments.cases import Case
from clipseg_lib.mini.evaluation import query_prompt
from clipseg_lib.model.prompts import ImagePrompt

Question = world.Query | Case


def question_image(question: Question) -> np.ndarray:
    """The (H, W, 3) uint8 image a world query or photo case asks about."""
    return question.scene.image if isinstance(question, world.Query) else question.image


def question_prompt(question: Question) -> str | ImagePrompt:
    """What the segmenter is given: the text, or for a one-shot world query its support image
    and mask as an `ImagePrompt` (default engineering)."""
    return query_prompt(question) if isinstance(question, world.Query) else question.prompt


def question_target(question: Question) -> np.ndarray | None:
    """The (H, W) bool ground truth, or None for a photo case without a mask."""
    return question.target if isinstance(question, world.Query) else question.mask


def question_support(question: Question) -> tuple[np.ndarray, np.ndarray]:
    """(support image (h, w, 3) uint8, support mask (h, w) bool) of a one-shot question: a
    world image query's support, or a masked photo case showing its own object."""
    if isinstance(question, world.Query):
        support = question.support_image, question.support_mask
    else:
        support = question.image, question.mask
    if support[0] is None or support[1] is None:
        raise ValueError(f"{question.prompt!r} has no support image and mask for a one-shot prompt")
    return support


def image_groups(questions: Sequence[Question]) -> list[tuple[np.ndarray, list[Question]]]:
    """(image, the questions about it) in order of first appearance: one encoding per image.

    Questions share an image when they hold the same array object (photo cases of one file,
    world queries of one scene); no questions give no groups."""
    groups: dict[int, tuple[np.ndarray, list[Question]]] = {}
    for question in questions:
        image = question_image(question)
        groups.setdefault(id(image), (image, []))[1].append(question)
    return list(groups.values())


def image_numbers(questions: Sequence[Question], *, with_truth: bool = False) -> list[int]:
    """The number of each question's image (in order of first appearance, shared as in
    `image_groups`), in the questions' order; ``with_truth`` keeps only the questions with a
    ground truth. The cluster a question's scores are resampled in: prompts of one image are
    not independent cases."""
    numbers: dict[int, int] = {}
    return [
        numbers.setdefault(id(question_image(question)), len(numbers))
        for question in questions
        if not with_truth or question_target(question) is not None
    ]
