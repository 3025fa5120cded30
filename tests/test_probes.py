"""The failure-mode probes, their before/after mitigation study and figures.

Metric plumbing is checked with a fake segmenter that answers chosen maps, so every expected
number is known; the result shapes with a tiny randomly initialised CLIPSeg (its skill does
not matter, its code path does).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from clipseg_lib import world
from clipseg_lib.experiments import photo_probes, probe_figures, probes
from clipseg_lib.experiments.cases import Case, cases_for_model
from clipseg_lib.mini.train import Architecture, build_model, build_processor
from clipseg_lib.model.segmenter import Segmenter

SIZE = 64


class AnsweringSegmenter:
    """Answers (image, prompt) with a chosen map; all zeros for anything not chosen."""

    def __init__(self) -> None:
        self.answers: dict[tuple[int, str], np.ndarray] = {}

    def answer(self, image: np.ndarray, prompt: str, mask: np.ndarray, value: float = 1.0) -> None:
        self.answers[id(image), prompt] = (mask * value).astype(np.float32)

    def encode_image(self, image):
        return image

    def predict(self, image, prompts):
        prompts = [prompts] if isinstance(prompts, str) else prompts
        blank = np.zeros(image.shape[:2], np.float32)
        return np.stack([self.answers.get((id(image), p), blank) for p in prompts])


@pytest.fixture(scope="module")
def tiny_segmenter(tmp_path_factory) -> Segmenter:
    """A random CLIPSeg built as train_mini builds mini: 64 px input, 4 backbone layers of
    width 32, the world's vocabulary."""
    architecture = Architecture(
        image_size=SIZE, patch_size=16, hidden_size=32, vision_layers=4, text_layers=2,
        attention_heads=2, max_text_tokens=16, projection_dim=32, reduce_dim=16,
        extract_layers=(1, 2, 3), decoder_attention_heads=2, decoder_intermediate_size=32,
    )
    processor = build_processor(tmp_path_factory.mktemp("tokenizer"), architecture)
    torch.manual_seed(0)
    model = build_model(architecture, processor.tokenizer).eval()
    return Segmenter(model, processor, name="tiny-random")


def queries(kind: str, n: int, **options) -> list[world.Query]:
    return world.make_queries(kind, n, seed=3, size=SIZE, **options)


def test_candidate_choice_picks_the_top_mean_and_splits_ties():
    masks = [np.zeros((4, 4), bool) for _ in range(3)]
    for index, mask in enumerate(masks):
        mask[index] = True
    probs = np.zeros((4, 4))
    probs[1] = 0.8
    probs[2, :2] = 0.4
    means, share = probes.candidate_choice(probs, masks, 0)
    np.testing.assert_allclose(means, [0.0, 0.8, 0.2])
    np.testing.assert_array_equal(share, [0.0, 1.0, 0.0])
    _, share = probes.candidate_choice(np.zeros((4, 4)), masks, 2)
    np.testing.assert_allclose(share, [1 / 3] * 3)


def test_picked_object_is_the_top_candidate_and_ties_fall_to_chance():
    words = queries("word", 30)
    query = words[0]
    signs = probes.candidate_objects(query)
    wrong = next(i for i in signs if i != query.target_indices[0])
    rng = np.random.default_rng(0)
    assert probes.picked_object(query.target * 0.9, query, rng) == query.target_indices[0]
    assert probes.picked_object(query.scene.object_mask(wrong) * 0.9, query, rng) == wrong
    blank_hits = [
        probes.picked_object(np.zeros(q.target.shape), q, rng) == q.target_indices[0]
        for q in words
    ]
    chance = np.mean([1 / len(probes.candidate_objects(q)) for q in words])
    assert 0 < np.mean(blank_hits) < 1 and abs(np.mean(blank_hits) - chance) < 0.25
    assert all(query.scene.objects[i].kind == "word" for i in signs) and len(signs) >= 2
    faces = probes.candidate_objects(queries("expression", 1)[0])
    assert faces and all(queries("expression", 1)[0].scene.objects[i].kind == "face"
                         for i in faces)


def test_confusion_counts_rows_are_asked_and_columns_picked():
    counts = probes.confusion_counts(["a", "a", "b"], ["a", "b", "b"], ["a", "b"])
    np.testing.assert_array_equal(counts, [[1, 1], [0, 1]])


def test_negation_prompts_name_the_excluded_composite():
    for query in queries("negation", 4):
        colour, shape = probes.excluded_composite(query)
        assert probes.negation_prompts(query) == [
            f"the {colour} {shape}", f"not the {colour} {shape}",
            f"everything except the {colour} {shape}",
        ]
        excluded = probes.excluded_objects(query)
        assert all(query.scene.objects[i].colour == colour for i in excluded)
        assert not query.target[query.scene.union_mask(excluded)].any()


def test_similar_objects_share_colour_or_shape_but_not_both():
    for query in queries("absent", 6) + queries("composite", 2):
        colour, shape = probes.prompt_composite(query)
        assert colour in query.prompt and shape in query.prompt
        for index in probes.similar_objects(query):
            item = query.scene.objects[index]
            assert (item.colour == colour) != (item.name == shape)
    assert any(probes.similar_objects(q) for q in queries("absent", 6))


def test_marks_something_is_any_pixel_above_the_threshold():
    probs = np.zeros((4, 4))
    assert not probes.marks_something(probs)
    probs[2, 3] = 0.51
    assert probes.marks_something(probs) and not probes.marks_something(probs, 0.6)


@pytest.mark.slow
def test_photo_probes_skip_mini_sized_models_and_measure_given_cases(tiny_segmenter, capsys):
    assert cases_for_model(tiny_segmenter, "missing.csv", "missing") == []
    assert "skipped" in capsys.readouterr().out
    assert photo_probes.photo_negation(tiny_segmenter, [])["rows"] == []
    assert photo_probes.photo_table(photo_probes.photo_absent(tiny_segmenter, [])) == (
        "No real-photo rows."
    )
    scene = queries("composite", 1)[0].scene
    photos = [Case(scene.image, "red star", scene.object_mask(0), "a.png"),
              Case(scene.image, "blue circle", None, "a.png"),
              Case(scene.image.copy(), "green square", None, "b.png")]
    negation = photo_probes.photo_negation(tiny_segmenter, photos)
    assert len(negation["cases"]) == 3
    assert negation["summary"]["iou_not_x_vs_x"]["n"] == 3
    fixes = photo_probes.photo_mitigations(tiny_segmenter, photos, distortions=["blur"])
    assert [row["n"] for row in fixes["rows"]] == [1, 3]
    assert set(fixes["summary"]) == {"plain", "ensemble", "distorted", "tta"}


def test_photo_absent_counts_false_negatives_and_false_positives():
    scene = queries("composite", 1)[0].scene
    other_image = scene.image.copy()
    photos = [Case(scene.image, "red star", scene.object_mask(0), "a.png"),
              Case(scene.image, "blue circle", None, "a.png"),
              Case(other_image, "green square", None, "b.png")]
    segmenter = AnsweringSegmenter()
    segmenter.answer(scene.image, "red star", scene.object_mask(0), 0.9)
    segmenter.answer(other_image, "green square", np.ones(scene.image.shape[:2], bool), 0.9)
    summary = photo_probes.photo_absent(segmenter, photos)["summary"]
    assert (summary["false_negative"]["mean"], summary["false_negative"]["n"]) == (1 / 3, 3)
    assert (summary["false_positive"]["mean"], summary["false_positive"]["n"]) == (0.0, 3)
    assert summary["present_miou"] == {"mean": 1.0, "n": 1, "ci_low": 1.0, "ci_high": 1.0}


def test_figures_have_one_row_per_shown_case():
    words = queries("word", 3)
    answered = [(word, word.target.astype(np.float32)) for word in words]
    figure = probe_figures.choice_figure(answered, n_shown=2)
    assert len(figure.axes) == 4
    labels = [t.get_text() for t in figure.axes[1].texts]
    candidates = probes.candidate_objects(words[0])
    assert len(labels) == len(candidates)
    asked = words[0].scene.objects[words[0].target_indices[0]].name
    assert f"{asked} 1.00" in labels
    negation = queries("negation", 1)[0]
    maps = np.stack([negation.target.astype(np.float32)] * 3)
    figure = probe_figures.negation_figure([(negation, maps)])
    assert [ax.get_title() for ax in figure.axes] == [
        "scene", *probes.negation_prompts(negation), "negation truth"]
    photo = Case(negation.scene.image, "red star", negation.target, "a.png")
    figure = probe_figures.negation_figure([(photo, maps)])
    assert [ax.get_title() for ax in figure.axes[1:]] == [
        "red star", "not red star", "everything except red star", "negation truth"]
    confusion = {"labels": ["a", "b"], "counts": [[2, 0], [1, 1]]}
    figure = probe_figures.confusion_figure(confusion)
    assert [t.get_text() for t in figure.axes[0].texts] == ["1.00", "0.00", "0.50", "0.50"]
    cases = [{"group": "absent", "presence": 0.1}, {"group": "present", "presence": 0.9},
             {"group": "present", "presence": 0.8}]
    legend = probe_figures.presence_figure(cases, 0.5).axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "absent (n=1)", "present (n=2)", "mask threshold 0.5",
    ]
    plt.close("all")


def test_bad_inputs_raise_value_errors_naming_them():
    words = queries("word", 1)
    with pytest.raises(ValueError, match="queries is empty"):
        probes.check_queries([], "word", "queries")
    with pytest.raises(ValueError, match="control_queries must hold 'composite'"):
        probes.check_queries(words, "composite", "control_queries")
    with pytest.raises(ValueError, match="threshold"):
        probes.marks_something(np.zeros((2, 2)), threshold=2.0)
    with pytest.raises(ValueError, match="candidates exist"):
        probes.candidate_objects(queries("composite", 1)[0])
    with pytest.raises(ValueError, match="names no colour and shape"):
        probes.prompt_composite(words[0])
    with pytest.raises(ValueError, match="absent and present scores"):
        probes.presence_auroc([], [0.5])
    with pytest.raises(ValueError, match="not a negation"):
        probes.excluded_composite(words[0])
    with pytest.raises(ValueError, match="n_shown"):
        probe_figures.choice_figure([(words[0], words[0].target)], n_shown=0)
    with pytest.raises(ValueError, match="answered is empty"):
        probe_figures.negation_figure([])


def test_presence_auroc_by_hand_with_its_interval():
    # 3 x 3 pairs: present above absent in 8, one tie (0.6, 0.6) counting a half: 8.5 / 9.
    estimate = probes.presence_auroc([0.1, 0.3, 0.6], [0.6, 0.8, 0.9])
    assert estimate.mean == pytest.approx(8.5 / 9) and estimate.n == 6
    assert estimate.ci_low < estimate.mean <= estimate.ci_high == pytest.approx(1.0)
    separated = probes.presence_auroc([0.1, 0.2], [0.8, 0.9])
    assert (separated.mean, separated.ci_low) == (1.0, 1.0)


def test_presence_by_pair_scores_each_pair_against_its_own_absent_prompts():
    cases = (
        [{"group": "present, seen pair", "marks_something": True, "iou": 0.9}] * 3
        + [{"group": "absent, seen pair", "marks_something": False, "iou": None}] * 3
        + [{"group": "present, unseen pair", "marks_something": True, "iou": 0.4}] * 2
        + [{"group": "absent, unseen pair", "marks_something": True, "iou": None}] * 2
    )
    found = probes.presence_by_pair(cases, seed=0)
    # seen: every decision right; F1 1 up to tau 0.90, 0 at 0.95
    assert found["seen"].il_mcc == 1.0 and found["seen"].pm_f1 == pytest.approx(0.9)
    assert found["unseen"].il_mcc is None and found["unseen"].pm_f1 == 0.0
    assert (found["unseen"].n_present, found["unseen"].n_absent) == (2, 2)
