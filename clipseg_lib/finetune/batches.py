"""Which (image, prompt, target) rows make up each training batch: a seeded, resumable plan.

Images are visited in a seeded random order, epoch after epoch; each visit contributes up to
`prompts_per_image` of the image's samples, so one backbone pass serves several prompts.
Each row is, with probability `negatives`, turned into a PhraseCut+-style negative: the
prompt of a sample of another image that no sample of this image names (the object is taken
to be absent), with an empty target. With probability `image_prompts` a positive row's text
is mixed with an image prompt: another image's sample of the same text as support, its text
weight uniform in [0, 1] (the paper's text-visual interpolation).

The plan depends only on the generator; `state()` / `load_state()` carry it across a resume
as JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Draws tried to find a prompt that this image does not hold before keeping the row positive.
NEGATIVE_DRAWS = 20


@dataclass(frozen=True)
class Row:
    """One (image, prompt, target) row of a batch.

    `image`: index of the image group; `sample`: index of the sample whose prompt is asked
    (for a negative, a sample of another image); `negative`: the target is empty, else it is
    `sample`'s mask; `support`: index of the sample whose image and mask are mixed in as an
    image prompt with text weight `text_weight`, or None.
    """

    image: int
    sample: int
    negative: bool = False
    support: int | None = None
    text_weight: float = 1.0


class BatchPlan:
    """Draws batches of `batch_size` rows from image groups of samples (see the module)."""

    def __init__(
        self,
        prompts: Sequence[str],
        groups: Sequence[Sequence[int]],
        *,
        batch_size: int,
        prompts_per_image: int,
        negatives: float,
        image_prompts: float,
        seed: int,
    ) -> None:
        if not groups:
            raise ValueError("no training images: the data must hold at least one image")
        for name, share in (("negatives", negatives), ("image_prompts", image_prompts)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be a share in [0, 1], got {share}")
        if batch_size < 1 or prompts_per_image < 1:
            raise ValueError("batch_size and prompts_per_image must be at least 1")
        self.prompts = list(prompts)
        self.groups = [list(group) for group in groups]
        self.batch_size = batch_size
        self.prompts_per_image = prompts_per_image
        self.negatives = negatives
        self.image_prompts = image_prompts
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []
        self.position = 0
        self._image_of = {s: g for g, group in enumerate(self.groups) for s in group}
        self._group_prompts = [{self.prompts[s] for s in group} for group in self.groups]
        self._train_samples = sorted(self._image_of)
        self._by_prompt: dict[str, list[int]] = {}
        for sample in self._train_samples:
            self._by_prompt.setdefault(self.prompts[sample], []).append(sample)

    def next_batch(self) -> list[Row]:
        """The next `batch_size` rows."""
        rows: list[Row] = []
        while len(rows) < self.batch_size:
            if self.position == len(self.order):
                self.order = self.rng.permutation(len(self.groups)).tolist()
                self.position = 0
            group = self.order[self.position]
            self.position += 1
            members = self.groups[group]
            take = min(self.prompts_per_image, len(members), self.batch_size - len(rows))
            for sample in self.rng.choice(members, size=take, replace=False).tolist():
                rows.append(self._row(group, sample))
        return rows

    def _row(self, group: int, sample: int) -> Row:
        if self.rng.random() < self.negatives:
            borrowed = self._absent_prompt_sample(group)
            if borrowed is not None:
                return Row(group, borrowed, negative=True)
        if self.rng.random() < self.image_prompts:
            supports = [
                s for s in self._by_prompt[self.prompts[sample]] if self._image_of[s] != group
            ]
            if supports:
                support = supports[int(self.rng.integers(len(supports)))]
                return Row(group, sample, support=support, text_weight=float(self.rng.random()))
        return Row(group, sample)

    def _absent_prompt_sample(self, group: int) -> int | None:
        for _ in range(NEGATIVE_DRAWS):
            candidate = self._train_samples[int(self.rng.integers(len(self._train_samples)))]
            if self.prompts[candidate] not in self._group_prompts[group]:
                return candidate
        return None

    def state(self) -> dict:
        """The plan's position and generator state (JSON-ready)."""
        return {"rng": self.rng.bit_generator.state, "order": self.order, "position": self.position}

    def load_state(self, state: dict) -> None:
        """Continue from a `state()`."""
        self.rng.bit_generator.state = state["rng"]
        self.order = [int(i) for i in state["order"]]
        self.position = int(state["position"])
