"""Samples sized for the model's cost, when the user asks: a notebook given a
``budget_gflop`` spends at most that much backbone work.

By default (``budget_gflop = None``) every model takes the whole sample, the 40 or more cases
per cell the conclusion needs to judge a claim: the sample never depends on the model's speed.
A sweep that takes seconds on `mini` (0.20 GFLOP per image) takes most of an hour on a ViT-B/16
CLIPSeg (76.45 GFLOP per image, ~0.45 s on two cores), so a user may set a budget: each
notebook states what one case costs in backbone encodings and `sample_for_budget` takes as
many cases as the budget pays for, and the conclusion then says "not judged" for every claim
left with fewer than 40 cases. The sizes follow from the model's config and the notebook's
parameters only (never from a clock), so a rerun draws the same sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from clipseg_lib.experiments.architecture import processor_size
from clipseg_lib.experiments.cases import Case, by_image
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.model.work import backbone_flops

MIN_CASES = 4
"""World cases a notebook keeps whatever its budget: fewer would give no interval worth
reading."""
PHOTO_SHARE = 0.5
"""The share of a budget the real photos may take; the world cases have the rest."""


def image_gflop(segmenter: Segmenter, size: int | None = None) -> float:
    """GFLOP of one `encode_image` on a `size` x `size` input (default: the model's input
    size, what its processor resizes to) through the layers the default extract layers read."""
    side = size or processor_size(segmenter)
    config = segmenter.model.config.vision_config
    return backbone_flops(config, (side, side), max(segmenter.extract_layers) + 1) / 1e9


def support_gflop(segmenter: Segmenter) -> float:
    """GFLOP of embedding one support image (an image prompt): every layer and the projection."""
    config = segmenter.model.config
    side = processor_size(segmenter)
    flops = backbone_flops(
        config.vision_config, (side, side), segmenter.num_layers, projection=config.projection_dim
    )
    return flops / 1e9


def affordable_sample(
    n_cases: int,
    photo_groups: int = 0,
    *,
    budget_gflop: float | None,
    gflop_per_case: float,
    gflop_per_photo: float | None = None,
) -> tuple[int, int]:
    """(world cases, photos) that `budget_gflop` pays for, out of `n_cases` world cases and
    `photo_groups` photos: the counts `sample_for_budget` takes (see there); ValueError for
    a budget, cost or `n_cases` out of range."""
    budget_gflop = float("inf") if budget_gflop is None else budget_gflop
    if not budget_gflop > 0:
        raise ValueError(f"budget_gflop must be positive, got {budget_gflop}")
    if not gflop_per_case > 0 or (gflop_per_photo is not None and not gflop_per_photo > 0):
        raise ValueError(f"costs must be positive, got {gflop_per_case}, {gflop_per_photo}")
    if n_cases < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    per_photo = gflop_per_case if gflop_per_photo is None else gflop_per_photo
    kept_photos = int(min(photo_groups, PHOTO_SHARE * budget_gflop // per_photo))
    affordable = (budget_gflop - kept_photos * per_photo) // gflop_per_case  # inf: no budget
    return int(min(n_cases, max(affordable, MIN_CASES))), kept_photos


def sample_for_budget(
    segmenter: Segmenter,
    n_cases: int,
    photos: Sequence[Case] = (),
    *,
    budget_gflop: float | None,
    gflop_per_case: float,
    gflop_per_photo: float | None = None,
) -> tuple[int, list[Case]]:
    """How many world cases (at most `n_cases`) and which photo cases to run within
    `budget_gflop` of backbone work, printing the choice and its cost.

    A world case costs `gflop_per_case`, a photo (all its prompts) `gflop_per_photo` (default
    the same). Photos take at most `PHOTO_SHARE` of the budget, whole photos, those with a mask
    first, then in file order; the world cases have the rest but never fewer than
    `MIN_CASES` (or `n_cases` if smaller). No budget (None) takes everything. Raises
    ValueError for a budget or cost that is not positive.
    """
    groups = sorted(by_image(list(photos)).values(), key=lambda group: group[0].mask is None)
    n_world, n_photos = affordable_sample(
        n_cases, len(groups), budget_gflop=budget_gflop, gflop_per_case=gflop_per_case,
        gflop_per_photo=gflop_per_photo,
    )
    kept_photos = groups[:n_photos]
    per_photo = gflop_per_case if gflop_per_photo is None else gflop_per_photo
    spent = n_world * gflop_per_case + len(kept_photos) * per_photo
    cut = [f"{n_world} of {n_cases} world cases"] if n_world < n_cases else []
    if len(kept_photos) < len(groups):
        cut.append(f"{len(kept_photos)} of {len(groups)} photos")
    photo_count = f" + {len(kept_photos)} photo{'s' * (len(kept_photos) != 1)}" if groups else ""
    note = f"; the budget cuts it to {', '.join(cut)} (raise budget_gflop for more)" if cut else ""
    if budget_gflop is not None and spent > budget_gflop:
        note += f"; {n_world} world cases are the minimum, over the budget"
    budget = "no budget" if budget_gflop is None else f"budget {budget_gflop:,.0f}"
    print(
        f"Sample for {segmenter.name}: {n_world} world cases{photo_count}, {spent:,.0f} GFLOP of "
        f"backbone work ({budget}; {gflop_per_case:,.2f} GFLOP per case){note}"
    )
    return n_world, [case for group in kept_photos for case in group]
