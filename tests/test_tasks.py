"""The three tasks' query sets and scores; real-photo rows; which models get the photos."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib import load_segmenter, world
from clipseg_lib.experiments import tasks
from clipseg_lib.experiments.cases import Case, cases_for_model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_segmenter(tiny_model_dir)


@pytest.fixture(scope="module")
def queries():
    return tasks.task_queries(2, seed=0, size=64)


def test_task_queries_follow_the_task_table(queries):
    assert list(queries) == list(tasks.TASKS)
    zero_shot = queries["zero-shot (held-out pairs)"]
    assert all(q.kind == "composite" for q in zero_shot)
    held_out = {" ".join(pair) for pair in world.HELD_OUT_COMBINATIONS}
    assert all(any(pair in q.prompt for pair in held_out) for q in zero_shot)
    assert all(q.support_image is not None for q in queries["one-shot (image prompt)"])
    with pytest.raises(ValueError, match="at least 1"):
        tasks.task_queries(0, seed=0)


@pytest.mark.filterwarnings("ignore:prompt .* over the limit")
def test_scores_have_the_contract_summary_keys(tiny, queries):
    results = tasks.score_tasks(tiny, queries)
    assert set(results["summary"]) == {
        "seen_composite_miou", "zero_shot_miou", "one_shot_miou", "referring_miou",
    }
    for row in results["rows"]:
        assert row["queries"] == 2
        assert row["mIoU"] == pytest.approx(np.mean(results["ious"][row["task"]]))
        assert 0.0 <= row["foreground IoU"] <= 1.0 and 0.0 <= row["AP"] <= 1.0
    with pytest.raises(ValueError, match="unknown tasks \\['typing'\\]"):
        tasks.score_tasks(tiny, {"typing": []})


def test_examples_figure_has_two_panels_per_shown_query(tiny, queries):
    figure = tasks.show_examples(tiny, queries, n_shown=1)
    assert len(figure.axes) == 4 * 2
    assert figure.axes[4].get_title().startswith("one-shot (image prompt)\nsupport:")
    plt.close(figure)


def test_finding_compares_each_task_with_seen_composites():
    summary = {"seen_composite_miou": 0.8, "zero_shot_miou": 0.6, "one_shot_miou": 0.4,
               "referring_miou": 0.2}
    assert tasks.tasks_finding({"summary": summary}) == (
        "Seen colour-shape composites reach mIoU 0.800; zero-shot (held-out combinations) "
        "0.600, 0.750 of seen; one-shot from an image prompt 0.400, 0.500 of seen; referring "
        "expressions 0.200, 0.250 of seen."
    )


def test_photo_rows_score_masks_where_there_are_some():
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    photos = [Case(image, "top", mask, "a.png"), Case(image, "thing", None, "a.png")]
    maps = [np.where(mask, 0.9, 0.1).astype(np.float32), np.full((4, 4), 0.7, np.float32)]
    rows = tasks.photo_rows(photos, maps)
    assert rows[0]["IoU vs mask"] == 1.0 and rows[0]["area"] == 0.5
    assert rows[1]["IoU vs mask"] == "no mask" and rows[1]["area"] == 1.0
    assert rows[1]["presence"] == pytest.approx(0.7)
    assert tasks.show_photos([], []) is None


def test_predict_photos_answers_in_case_order(tiny):
    first, second = (world.make_query("composite", seed, size=64).scene.image for seed in (1, 2))
    photos = [Case(first, "red", None, "1"), Case(second, "blue", None, "2"),
              Case(first, "green", None, "1")]
    maps = tasks.predict_photos(tiny, photos)
    np.testing.assert_allclose(maps[2], tiny.predict(first, "green")[0], atol=1e-5)
    np.testing.assert_allclose(maps[1], tiny.predict(second, "blue")[0], atol=1e-5)
    assert not np.allclose(maps[0], maps[2], atol=1e-3)


class FullSizeStandIn:
    image_size = 352
    name = "stand-in"


def test_only_full_size_models_get_the_photos(tiny, capsys):
    assert cases_for_model(tiny) == []
    assert "Real-photo cases skipped" in capsys.readouterr().out
    assert len(cases_for_model(FullSizeStandIn())) == 9
    assert [case.name for case in cases_for_model(FullSizeStandIn(), with_mask=True)] == [
        "horse.png"
    ]
    assert "Real-photo cases: 1 prompts on 1 photos." in capsys.readouterr().out
