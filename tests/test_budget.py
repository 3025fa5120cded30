"""Samples sized for the model's cost: `study.budget` on mini's and ViT-B/16's costs."""

from __future__ import annotations

import pytest

from clipseg_lib import load_segmenter
from clipseg_lib.experiments.budget import MIN_CASES, image_gflop, sample_for_budget, support_gflop
from clipseg_lib.experiments.cases import DEFAULT_CASES_FILE, DEFAULT_IMAGES_DIR, load_cases

PHOTOS = load_cases(DEFAULT_CASES_FILE, DEFAULT_IMAGES_DIR)


@pytest.fixture(scope="module")
def vit_b(full_size):
    return full_size[1]


@pytest.fixture(scope="module")
def mini():
    return load_segmenter("mini")


@pytest.mark.slow
def test_costs_of_a_full_size_model(vit_b):
    assert image_gflop(vit_b) == pytest.approx(76.4526, abs=1e-4)
    assert support_gflop(vit_b) == pytest.approx(91.6297, abs=1e-4)
    assert image_gflop(vit_b, 224) < image_gflop(vit_b) < image_gflop(vit_b, 528)


def test_a_cheap_model_keeps_the_whole_sample(mini, capsys):
    per_case = 33 * image_gflop(mini)
    n_world, photos = sample_for_budget(
        mini, 64, PHOTOS, budget_gflop=15_000, gflop_per_case=per_case
    )
    assert (n_world, photos) == (64, sorted(PHOTOS, key=lambda case: case.mask is None))
    assert "the budget cuts" not in capsys.readouterr().out


def test_a_full_size_sweep_is_cut_to_its_budget(vit_b, capsys):
    """Notebook 02's sweep: 33 encodings a case; photos with a mask come first."""
    per_case = 33 * image_gflop(vit_b)
    n_world, photos = sample_for_budget(
        vit_b, 64, PHOTOS, budget_gflop=15_000, gflop_per_case=per_case
    )
    assert n_world == MIN_CASES == 4
    assert [case.name for case in photos] == ["horse.png", "astronaut.jpg", "astronaut.jpg"]
    printed = capsys.readouterr().out
    assert "4 world cases + 2 photos, 15,138 GFLOP" in printed
    assert "4 world cases are the minimum, over the budget" in printed
    assert "cuts it to 4 of 64 world cases, 2 of 6 photos" in printed


def test_the_budget_pays_for_world_cases_after_the_photos(vit_b, capsys):
    per_case = image_gflop(vit_b)
    n_world, photos = sample_for_budget(
        vit_b, 64, PHOTOS, budget_gflop=2_000, gflop_per_case=per_case, gflop_per_photo=per_case
    )
    assert len({case.name for case in photos}) == 6
    assert "+ 6 photos," in capsys.readouterr().out
    assert n_world == int((2_000 - 6 * per_case) // per_case) == 20


def test_no_budget_takes_everything_on_a_full_size_model(vit_b, capsys):
    # Issue 31, item 1: by default a full-size model gets the whole sample, as mini does.
    n_world, photos = sample_for_budget(vit_b, 64, PHOTOS, budget_gflop=None,
                                        gflop_per_case=2522.9)
    assert (n_world, len(photos)) == (64, len(PHOTOS))
    printed = capsys.readouterr().out
    assert "64 world cases + 6 photos" in printed
    assert "(no budget; 2,522.90 GFLOP per case)" in printed


def test_never_fewer_than_the_minimum_nor_more_than_asked(vit_b, capsys):
    assert sample_for_budget(vit_b, 64, budget_gflop=1, gflop_per_case=100)[0] == MIN_CASES
    assert "4 world cases are the minimum, over the budget" in capsys.readouterr().out
    assert sample_for_budget(vit_b, 2, budget_gflop=1, gflop_per_case=100)[0] == 2


@pytest.mark.parametrize("bad", [
    {"budget_gflop": 0, "gflop_per_case": 1}, {"budget_gflop": float("nan"), "gflop_per_case": 1},
    {"budget_gflop": 10, "gflop_per_case": 0}, {"budget_gflop": 10, "gflop_per_case": 1,
                                                "gflop_per_photo": -1},
])
def test_a_budget_or_cost_that_is_not_positive_is_refused(vit_b, bad):
    with pytest.raises(ValueError, match="must be positive"):
        sample_for_budget(vit_b, 8, **bad)
