"""Presence for negated prompts (notebook 06): lone scenes give "not X" no target, so IL_MCC is
defined; it is scored with presence.py's functions, from the map's maximum."""

from __future__ import annotations

import numpy as np
import pytest

from clipseg_lib.analysis.presence import presence_scores
from clipseg_lib.experiments import negation_presence, probes
from clipseg_lib.experiments.question_sets import question_queries


def test_a_lone_scene_holds_only_the_excluded_composite_and_no_negation_target():
    for query in question_queries("negation", 6, seed=0, size=96):
        lone = negation_presence.lone_query(query)
        excluded = [query.scene.objects[i] for i in probes.excluded_objects(query)]
        assert sorted((o.colour, o.name) for o in lone.scene.objects) == sorted(
            (o.colour, o.name) for o in excluded)
        assert not lone.target.any() and lone.prompt == query.prompt
        assert lone.target.shape == query.target.shape
        assert query.target.any()  # a normal scene always has a negation target
        # the same negations are asked of both: X is still the composite named
        assert probes.negation_prompts(lone) == probes.negation_prompts(query)
        assert not np.array_equal(lone.scene.image, query.scene.image)
        again = negation_presence.lone_query(query)
        assert np.array_equal(again.scene.image, lone.scene.image)


def _cases(marks: list[bool], ious: list[float] | None = None) -> list[dict]:
    return [{"not_x_marks": m, "except_x_marks": not m, "not_x_presence": 0.9 if m else 0.1,
             "except_x_presence": 0.1 if m else 0.9,
             **({"not_x_vs_truth": i, "except_x_vs_truth": i} if ious else {})}
            for m, i in zip(marks, ious or [0.0] * len(marks), strict=True)]


def test_presence_by_form_scores_normal_scenes_against_lone_ones():
    normal = _cases([True] * 8 + [False] * 2, [0.8] * 10)
    lone = _cases([True] * 3 + [False] * 7)
    found = negation_presence.presence_by_form(normal, lone, seed=0)
    # "not X": tp 8, fn 2, fp 3, tn 7: (56 - 6) / sqrt(11 * 10 * 10 * 9) = 0.5025
    assert found["not X"].il_mcc == pytest.approx(50 / np.sqrt(9900))
    assert found["not X"] == presence_scores([0.8] * 10, [True] * 8 + [False] * 2,
                                             [True] * 3 + [False] * 7, seed=0)
    assert found["not X"].il_mcc_ci is not None and (found["not X"].n_present,
                                                     found["not X"].n_absent) == (10, 10)
    # "everything except X" reads its own keys: the decisions are flipped, so is the correlation
    assert found["everything except X"].il_mcc == pytest.approx(-50 / np.sqrt(9900))
    aurocs = negation_presence.presence_aurocs(normal, lone, seed=0)
    # 56 of the 100 (normal, lone) pairs rank the normal scene higher, 38 tie (count half)
    assert aurocs["not X"].n == 20 and aurocs["not X"].mean == pytest.approx(0.75)


def test_a_negation_that_always_marks_something_reads_undefined_not_good():
    normal, lone = _cases([True] * 10, [0.1] * 10), _cases([True] * 10)
    presence = negation_presence.presence_by_form(normal, lone)["not X"]
    rates = [negation_presence.marked_rates(cases)["not X"] for cases in (normal, lone)]
    sentence = negation_presence.presence_sentence("not X", presence, *rates)
    assert presence.il_mcc is None
    assert "1.000 [0.692, 1.000] (n=10) of lone scenes" in sentence
    assert "it marks something whatever the scene holds, so IL_MCC is undefined" in sentence
    defined = negation_presence.presence_by_form(_cases([True] * 8 + [False] * 2, [0.8] * 10),
                                                 _cases([True] * 3 + [False] * 7))["not X"]
    assert "IL_MCC 0.50 [" in negation_presence.presence_sentence("not X", defined, *rates)


def test_form_presences_hold_every_number_with_its_interval_and_n():
    normal = _cases([True] * 8 + [False] * 2, [0.8] * 10)
    evidence = negation_presence.form_presences(normal, _cases([True] * 3 + [False] * 7))
    assert [e.form for e in evidence] == ["not X", "everything except X"]
    row = evidence[0].row()
    assert row["IL_MCC"].startswith("0.50 [") and row["n (normal + lone)"] == "10 + 10"
    assert row["marks something, lone scenes"].startswith("0.300 [") and "n=10" in row[
        "marks something, lone scenes"]
    stored = evidence[0].as_dict()
    assert stored["presence_auroc"]["n"] == 20 and len(stored["il_mcc_ci"]) == 2
    assert stored["marks_something_normal"]["mean"] == 0.8
