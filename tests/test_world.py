"""The synthetic world: determinism, exact targets, splits, rendering and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from clipseg_lib.world.render import FACE_COLOUR, INK_COLOUR, SIGN_COLOUR
from clipseg_lib.world.scenes import (
    COLOURS,
    EXPRESSIONS,
    HELD_OUT_COMBINATIONS,
    QUERY_KINDS,
    SHAPES,
    SPLITS,
    WORDS,
    Query,
    caption,
    make_queries,
    make_query,
    render_scene,
    sample_query,
)


def _named(prompt: str, names) -> list[str]:
    """Names (colours, shapes, words, expressions) mentioned in a prompt, plurals included."""
    words = prompt.replace('"', "").split()
    return [n for n in names if any(w in (n, n + "s") for w in words)]


def _composite_of(prompt: str) -> tuple[str, str]:
    (colour,), (shape,) = _named(prompt, COLOURS), _named(prompt, SHAPES)
    return colour, shape


def _indices(query: Query, colour: str | None = None, name: str | None = None) -> list[int]:
    """Indices of the objects with this colour and/or name."""
    return [
        i
        for i, o in enumerate(query.scene.objects)
        if colour in (None, o.colour) and name in (None, o.name)
    ]


def _assert_target_is(query: Query, indices: list[int]) -> None:
    assert sorted(query.target_indices) == sorted(indices)
    expected = np.isin(query.scene.instance_map, np.asarray(indices) + 1)
    np.testing.assert_array_equal(query.target, expected)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("kind", QUERY_KINDS)
def test_every_kind_gives_a_bool_target_of_image_size(kind, split):
    for query in make_queries(kind, 3, seed=1, split=split):
        assert query.kind == kind and query.prompt
        assert query.target.dtype == bool and query.target.shape == (96, 96)
        assert query.scene.image.shape == (96, 96, 3) and query.scene.image.dtype == np.uint8
        assert query.scene.instance_map.dtype == np.int16
        assert (query.support_image is not None) == (kind == "image")
        assert (query.target.sum() == 0) == (kind == "absent")


def test_same_seed_gives_identical_scenes_and_different_seeds_differ():
    first, again, other = render_scene(7), render_scene(7), render_scene(8)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.instance_map, again.instance_map)
    assert first.objects == again.objects
    assert not np.array_equal(first.image, other.image)
    for kind in QUERY_KINDS:
        query, repeat = make_query(kind, 3), make_query(kind, 3)
        assert query.prompt == repeat.prompt
        np.testing.assert_array_equal(query.target, repeat.target)
        np.testing.assert_array_equal(query.scene.image, repeat.scene.image)


def test_composite_attribute_and_category_targets_are_exact_unions():
    for query in make_queries("composite", 20, seed=2):
        colour, shape = _composite_of(query.prompt)
        _assert_target_is(query, _indices(query, colour, shape))
        assert query.target.any()
    for query in make_queries("attribute", 20, seed=2):
        (colour,) = _named(query.prompt, COLOURS)
        _assert_target_is(query, _indices(query, colour))
    for query in make_queries("category", 20, seed=2):
        (shape,) = _named(query.prompt, SHAPES)
        _assert_target_is(query, _indices(query, name=shape))


def test_absent_target_is_empty_and_the_composite_is_not_in_the_scene():
    for query in make_queries("absent", 30, seed=3):
        colour, shape = _composite_of(query.prompt)
        assert not query.target.any() and query.target_indices == ()
        assert (colour, shape) not in {(o.colour, o.name) for o in query.scene.objects}


def test_negation_target_is_every_other_object_and_no_background():
    prompts = set()
    for query in make_queries("negation", 30, seed=4):
        colour, shape = _composite_of(query.prompt)
        negated = _indices(query, colour, shape)
        assert negated
        objects = query.scene.instance_map > 0
        np.testing.assert_array_equal(query.target, objects & ~query.scene.union_mask(negated))
        assert not (query.target & ~objects).any()
        prompts.add(query.prompt.split()[0])
    assert prompts == {"not", "everything"}


def _box_centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_referring_target_is_exactly_the_one_object_described():
    relations = set()
    for query in make_queries("referring", 60, seed=5):
        assert len(query.target_indices) == 1
        target = query.scene.objects[query.target_indices[0]]
        _assert_target_is(query, list(query.target_indices))
        words = query.prompt.split()
        if "left" in words or "right" in words:
            colour, shape = _composite_of(query.prompt)
            pair = [o for o in query.scene.objects if (o.colour, o.name) == (colour, shape)]
            assert len(pair) == 2
            left, right = sorted(pair, key=lambda o: o.box[0])
            assert left.box[2] <= right.box[0]
            assert target is (left if "left" in words else right)
            relations.add("side")
        elif "above" in words or "below" in words:
            (anchor_shape,) = _named(query.prompt, SHAPES)
            (anchor,) = [o for o in query.scene.objects if o.name == anchor_shape]
            assert target.name != anchor_shape
            assert anchor.box[0] <= _box_centre(target.box)[0] < anchor.box[2]
            if "above" in words:
                assert target.box[3] <= anchor.box[1]
            else:
                assert target.box[1] >= anchor.box[3]
            relations.add("neighbour")
        else:
            (shape,) = _named(query.prompt, SHAPES)
            areas = {
                (o.box[2] - o.box[0]) * (o.box[3] - o.box[1])
                for o in query.scene.objects
                if o.name == shape
            }
            largest = "largest" in words or "biggest" in words
            target_area = (target.box[2] - target.box[0]) * (target.box[3] - target.box[1])
            assert len(areas) >= 2 and target_area == (max(areas) if largest else min(areas))
            relations.add("size")
    assert relations == {"side", "neighbour", "size"}


@pytest.mark.parametrize("kind, names", [("word", WORDS), ("expression", EXPRESSIONS)])
def test_word_and_expression_targets_are_the_named_sign_or_face(kind, names):
    for query in make_queries(kind, 20, seed=6):
        (name,) = _named(query.prompt, names)
        members = [o for o in query.scene.objects if o.name in names]
        assert 2 <= len(members) <= 4 and len({o.name for o in members}) == len(members)
        _assert_target_is(query, _indices(query, name=name))


def test_image_query_support_shows_the_target_composite_in_another_scene():
    for query in make_queries("image", 20, seed=7):
        colour, shape = _composite_of(query.prompt)
        _assert_target_is(query, _indices(query, colour, shape))
        assert query.support_mask.dtype == bool and query.support_mask.shape == (96, 96)
        support_pixels = query.support_image[query.support_mask]
        assert len(support_pixels) > 50 and (support_pixels == COLOURS[colour]).all()
        assert not np.array_equal(query.support_image, query.scene.image)
        assert not np.array_equal(query.support_mask, query.target)


def test_held_out_combinations_never_render_in_train_but_are_heldout_targets():
    seen = {(o.colour, o.name) for seed in range(2000) for o in render_scene(seed).objects}
    assert not seen & HELD_OUT_COMBINATIONS
    assert {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES)
    rng = np.random.default_rng(0)
    for _ in range(200):
        query = sample_query(rng, split="train")
        assert not {(o.colour, o.name) for o in query.scene.objects} & HELD_OUT_COMBINATIONS
    targets = set()
    for kind in ("composite", "image", "absent"):
        for query in make_queries(kind, 25, seed=8, split="heldout"):
            targets.add(_composite_of(query.prompt))
    assert targets == HELD_OUT_COMBINATIONS
    for kind in ("attribute", "category"):
        for query in make_queries(kind, 10, seed=8, split="heldout"):
            objects = [query.scene.objects[i] for i in query.target_indices]
            targeted = {(o.colour, o.name) for o in objects}
            assert targeted & HELD_OUT_COMBINATIONS


def test_make_queries_seeds_differ_between_train_and_test():
    train = make_queries("composite", 30, seed=0, split="train")
    test = make_queries("composite", 30, seed=0, split="test")
    assert not {q.scene.seed for q in train} & {q.scene.seed for q in test}
    pairs = zip(train, test, strict=True)
    assert not any(np.array_equal(a.scene.image, b.scene.image) for a, b in pairs)
    assert len({q.scene.seed for q in train}) == 30


def test_visible_pixels_have_exactly_their_objects_colours():
    for seed in range(30):
        scene = render_scene(seed, n_shapes=(3, 6), n_words=(0, 2), n_faces=(0, 2))
        for index, obj in enumerate(scene.objects):
            pixels = scene.image[scene.object_mask(index)]
            assert len(pixels) > 0
            palette = {
                "shape": [COLOURS[obj.colour or "red"]],
                "word": [SIGN_COLOUR, INK_COLOUR],
                "face": [FACE_COLOUR, INK_COLOUR],
            }[obj.kind]
            assert (pixels[:, None, :] == np.array(palette)[None]).all(2).any(1).all()
            if obj.kind != "shape":
                assert len(np.unique(pixels, axis=0)) == 2


@pytest.mark.parametrize("size", [64, 160])
def test_size_parameter_scales_scenes_and_queries(size):
    scene = render_scene(3, size=size, n_words=1, n_faces=1)
    assert scene.image.shape == (size, size, 3) and scene.instance_map.shape == (size, size)
    for kind in QUERY_KINDS:
        query = make_query(kind, 11, size=size)
        assert query.target.shape == (size, size)
        assert all(0 <= o.box[0] < o.box[2] <= size for o in query.scene.objects)


def test_bad_kind_split_size_and_weights_raise_value_error():
    with pytest.raises(ValueError, match="'sketch'"):
        make_query("sketch", 0)
    with pytest.raises(ValueError, match="'validation'"):
        make_queries("composite", 2, seed=0, split="validation")
    with pytest.raises(ValueError, match="'validation'"):
        render_scene(0, split="validation")
    with pytest.raises(ValueError, match="size 32"):
        render_scene(0, size=32)
    with pytest.raises(ValueError, match="n_faces"):
        render_scene(0, n_faces=5)
    with pytest.raises(ValueError, match="sketch"):
        sample_query(np.random.default_rng(0), kind_weights={"sketch": 1.0})


def test_sample_query_follows_kind_weights():
    rng = np.random.default_rng(1)
    kinds = [sample_query(rng, kind_weights={"word": 1.0, "negation": 3.0}).kind for _ in range(40)]
    assert set(kinds) == {"word", "negation"} and kinds.count("negation") > kinds.count("word")


def test_caption_names_every_object():
    scene = render_scene(5, n_shapes=3, n_words=1, n_faces=1)
    text = caption(scene, np.random.default_rng(0))
    for obj in scene.objects:
        assert (obj.name if obj.kind != "shape" else f"{obj.colour} {obj.name}") in text
    assert text == caption(scene, np.random.default_rng(0))
