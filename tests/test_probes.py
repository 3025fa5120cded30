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
from clipseg_lib.experiments import mitigation_study, photo_probes, probe_figures, probes
from clipseg_lib.experiments.cases import Case
from clipseg_lib.experiments.mitigations import Transform
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


def candidates(query: world.Query, kind: str) -> list[int]:
    return [i for i, o in enumerate(query.scene.objects) if o.kind == kind]


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


def test_word_hit_rate_miou_and_chance_on_constructed_answers():
    words, controls = queries("word", 6), queries("composite", 2)
    segmenter = AnsweringSegmenter()
    sign_shares = []
    for index, query in enumerate(words):
        signs = candidates(query, "word")
        wrong = next(i for i in signs if i != query.target_indices[0])
        shown = query.target if index % 2 == 0 else query.scene.object_mask(wrong)
        segmenter.answer(query.scene.image, query.prompt, shown, 0.9)
        sign_shares.append(shown.sum() / query.scene.union_mask(signs).sum())
    segmenter.answer(controls[0].scene.image, controls[0].prompt, controls[0].target)
    results = probes.word_probe(segmenter, words, controls)
    summary = results["summary"]
    assert summary["hit_rate"] == 0.5
    assert summary["miou"] == 0.5
    assert summary["chance"] == pytest.approx(
        np.mean([1 / len(candidates(q, "word")) for q in words])
    )
    assert summary["control_miou"] == 0.5
    assert summary["miou_all_signs"] == pytest.approx(np.mean(sign_shares))
    assert [c["hit"] for c in results["cases"]] == [1.0, 0.0] * 3


def test_expression_confusion_counts_the_picked_faces():
    faces = queries("expression", 5)
    segmenter = AnsweringSegmenter()
    for query in faces:
        first = candidates(query, "face")[0]
        segmenter.answer(query.scene.image, query.prompt, query.scene.object_mask(first))
    results = probes.expression_probe(segmenter, faces)
    counts = np.array(results["confusion"]["counts"])
    labels = results["confusion"]["labels"]
    assert counts.sum() == 5
    for query in faces:
        picked = query.scene.objects[candidates(query, "face")[0]].name
        asked = query.scene.objects[query.target_indices[0]].name
        assert counts[labels.index(asked), labels.index(picked)] >= 1
    hits = [candidates(q, "face")[0] == q.target_indices[0] for q in faces]
    assert results["summary"]["hit_rate"] == pytest.approx(np.mean(hits))
    assert results["rows"][-1]["expression"] == "all"


def test_a_model_that_ignores_not_scores_identical_masks_and_zero_negation_iou():
    negations = queries("negation", 4)
    segmenter = AnsweringSegmenter()
    for query in negations:
        colour, shape = probes.excluded_composite(query)
        x_truth = ~query.target & (query.scene.instance_map > 0)
        for form in probes.NEGATION_FORMS.values():
            segmenter.answer(query.scene.image, form.format(c=colour, s=shape), x_truth)
    summary = probes.negation_probe(segmenter, negations)["summary"]
    assert summary["iou_not_x_vs_x"] == 1.0
    assert summary["iou_except_vs_x"] == 1.0
    assert summary["miou_x"] == 1.0
    assert summary["miou_negation_gt"] == 0.0


def test_absent_probe_with_a_perfect_presence_signal():
    absent, present = queries("absent", 4), queries("composite", 4)
    segmenter = AnsweringSegmenter()
    for query in present:
        segmenter.answer(query.scene.image, query.prompt, query.target, 0.9)
    for index, query in enumerate(absent):
        segmenter.answer(query.scene.image, query.prompt, np.ones_like(query.target), 0.1 * index)
    summary = probes.absent_probe(segmenter, absent, present)["summary"]
    assert summary["presence_auroc"] == 1.0
    assert summary["false_positive_area"] == 0.0
    assert summary["present_miou"] == 1.0
    # calibration half: absent scores 0.0 and 0.2, present 0.9 -> midpoint of 0.2 and 0.9
    assert summary["calibrated_threshold"] == pytest.approx(0.55)
    assert summary["presence_accuracy"] == 1.0


def test_presence_gating_removes_false_positives_and_keeps_present_objects():
    absent, present = queries("absent", 4), queries("composite", 4)
    segmenter = AnsweringSegmenter()
    for query in present:
        segmenter.answer(query.scene.image, query.prompt, query.target, 0.9)
    for query in absent:
        segmenter.answer(query.scene.image, query.prompt, np.ones_like(query.target), 0.6)
    gating = mitigation_study.presence_gating(segmenter, absent, present)
    assert gating["gate"] == pytest.approx(0.75)
    assert (gating["before"], gating["after"]) == (0.5, 1.0)


def test_probe_results_have_the_contract_keys_with_a_real_model(tiny_segmenter):
    word = probes.word_probe(tiny_segmenter, queries("word", 2), queries("composite", 2))
    negation = probes.negation_probe(tiny_segmenter, queries("negation", 2))
    faces = probes.expression_probe(tiny_segmenter, queries("expression", 2))
    absent = probes.absent_probe(tiny_segmenter, queries("absent", 2), queries("composite", 2))
    expected = {
        "miou", "control_miou", "hit_rate", "chance", "miou_all_signs",
    }, {
        "miou_negation_gt", "iou_not_x_vs_x", "miou_x", "miou_except_gt", "iou_except_vs_x",
    }, {
        "miou", "hit_rate", "chance", "miou_all_faces",
    }, {
        "false_positive_area", "presence_auroc", "calibrated_threshold", "present_miou",
        "presence_accuracy",
    }
    for results, keys in zip((word, negation, faces, absent), expected, strict=True):
        assert set(results["summary"]) == keys
        assert all(isinstance(v, float) for v in results["summary"].values())
        assert results["rows"] and results["cases"]
    for sentence in (probes.word_finding(word), probes.negation_finding(negation),
                     probes.expression_finding(faces), probes.absent_finding(absent)):
        assert sentence.endswith(".") and "nan" not in sentence


def test_mitigation_study_compares_each_fix_on_the_same_cases(tiny_segmenter):
    composite = queries("composite", 2)
    results = mitigation_study.combine({
        "presence_gating": mitigation_study.presence_gating(
            tiny_segmenter, queries("absent", 2), composite),
        "negation_by_complement": mitigation_study.negation_by_complement(
            tiny_segmenter, queries("negation", 2)),
        "prompt_ensembling": mitigation_study.prompt_ensembling(
            tiny_segmenter, {"seen": composite, "zero-shot": queries("composite", 2,
                                                                     split="heldout")}),
        "test_time_augmentation": mitigation_study.augmentation_on_distortions(
            tiny_segmenter, composite[:1], distortions=["blur"], severities=[2]),
    })
    for entry in results["summary"].values():
        assert set(entry) == {"before", "after", "metric"}
        assert 0.0 <= entry["before"] <= 1.0 and 0.0 <= entry["after"] <= 1.0
    assert len(mitigation_study.mitigation_finding(results).splitlines()) == 4
    figure = mitigation_study.before_after_figure(results)
    assert len(figure.axes[0].patches) == 8
    plt.close(figure)


def test_photo_probes_skip_mini_sized_models_and_measure_given_cases(tiny_segmenter, capsys):
    assert photo_probes.photo_cases(tiny_segmenter, "missing.csv", "missing") == []
    assert "skipped" in capsys.readouterr().out
    assert photo_probes.photo_negation(tiny_segmenter, [])["rows"] == []
    assert photo_probes.photo_table(photo_probes.photo_absent(tiny_segmenter, [])) == (
        "No real-photo rows."
    )
    scene = queries("composite", 1)[0].scene
    photos = [Case(scene.image, "red star", scene.object_mask(0), "a.png"),
              Case(scene.image, "blue circle", None, "a.png"),
              Case(scene.image.copy(), "green square", None, "b.png")]
    absent = photo_probes.photo_absent(tiny_segmenter, photos)
    assert [row["n"] for row in absent["rows"]] == [3, 3]
    assert len(photo_probes.photo_negation(tiny_segmenter, photos)["rows"]) == 3
    fixes = photo_probes.photo_mitigations(tiny_segmenter, photos, distortions=["blur"])
    assert [row["n"] for row in fixes["rows"]] == [1, 3]
    assert set(fixes["summary"]) == {"plain", "ensemble", "distorted", "tta"}


def test_figures_have_one_row_per_shown_case(tiny_segmenter):
    words = queries("word", 3)
    figure = probe_figures.choice_figure(tiny_segmenter, words, n_shown=2)
    assert len(figure.axes) == 4
    labels = [t.get_text() for t in figure.axes[1].texts]
    assert len(labels) == len(candidates(words[0], "word"))
    figure = probe_figures.negation_figure(tiny_segmenter, queries("negation", 1))
    assert len(figure.axes) == 5
    confusion = {"labels": ["a", "b"], "counts": [[2, 0], [1, 1]]}
    figure = probe_figures.confusion_figure(confusion)
    assert [t.get_text() for t in figure.axes[0].texts] == ["1.00", "0.00", "0.50", "0.50"]
    plt.close("all")


def test_bad_inputs_raise_value_errors_naming_them(tiny_segmenter):
    words = queries("word", 1)
    with pytest.raises(ValueError, match="queries is empty"):
        probes.word_probe(tiny_segmenter, [], words)
    with pytest.raises(ValueError, match="control_queries must hold 'composite'"):
        probes.word_probe(tiny_segmenter, words, words)
    with pytest.raises(ValueError, match="threshold"):
        probes.expression_probe(tiny_segmenter, queries("expression", 1), threshold=2.0)
    with pytest.raises(ValueError, match="absent_queries"):
        probes.absent_probe(tiny_segmenter, words, queries("composite", 2))
    with pytest.raises(ValueError, match="at least 2 cases"):
        probes.absent_probe(tiny_segmenter, queries("absent", 1), queries("composite", 1))
    with pytest.raises(ValueError, match="not a negation"):
        probes.excluded_composite(words[0])
    with pytest.raises(ValueError, match="distortions"):
        mitigation_study.augmentation_on_distortions(
            tiny_segmenter, queries("composite", 1), distortions=["smudge"])
    with pytest.raises(ValueError, match="severities"):
        mitigation_study.augmentation_on_distortions(
            tiny_segmenter, queries("composite", 1), severities=[0])
    with pytest.raises(ValueError, match="n_shown"):
        probe_figures.choice_figure(tiny_segmenter, words, n_shown=0)
    with pytest.raises(ValueError, match="identity"):
        mitigation_study.augmentation_on_distortions(
            tiny_segmenter, queries("composite", 1), transforms=[Transform(flip=True)])
    with pytest.raises(ValueError, match="query_sets is empty"):
        mitigation_study.prompt_ensembling(tiny_segmenter, {})
