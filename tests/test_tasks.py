"""The three tasks' evaluation sets, the sentence judged on intervals, real-photo rows and
which models get the photos."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from clipseg_lib import load_segmenter, world
from clipseg_lib.analysis.stats import Estimate
from clipseg_lib.experiments import tasks
from clipseg_lib.experiments.cases import Case, cases_for_model
from clipseg_lib.experiments.question_sets import question_queries


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_segmenter(tiny_model_dir)


@pytest.fixture(scope="module")
def queries():
    return {task: question_queries(question, 2, seed=0, size=64)
            for task, question in tasks.TASK_QUESTIONS.items()}


def test_each_task_draws_its_shared_evaluation_set(queries):
    assert list(tasks.TASK_QUESTIONS.values()) == ["seen", "zero_shot", "one_shot", "referring"]
    zero_shot = queries["zero-shot (held-out pairs)"]
    assert all(q.kind == "composite" for q in zero_shot)
    held_out = {" ".join(pair) for pair in world.HELD_OUT_COMBINATIONS}
    assert all(any(pair in q.prompt for pair in held_out) for q in zero_shot)
    assert all(q.support_image is not None for q in queries["one-shot (image prompt)"])
    assert tasks.SEEN_TASK == "seen pairs (mini's training split)"


def test_examples_figure_has_two_panels_per_shown_query(queries):
    answered = {task: [(query, query.target.astype(np.float32)) for query in task_queries]
                for task, task_queries in queries.items()}
    figure = tasks.show_examples(answered, n_shown=1)
    assert len(figure.axes) == 4 * 2
    assert figure.axes[4].get_title().startswith("one-shot (image prompt)\nsupport:")
    assert [ax.get_title() for ax in figure.axes[1::2]] == ["prediction, IoU 1.00"] * 4
    plt.close(figure)


def test_finding_judges_each_task_on_the_intervals():
    estimates = {tasks.SEEN_TASK: Estimate(0.88, 40, 0.84, 0.92),
                 "zero-shot (held-out pairs)": Estimate(0.38, 40, 0.24, 0.50),
                 "one-shot (image prompt)": Estimate(0.876, 40, 0.83, 0.91)}
    finding = tasks.tasks_finding(estimates, model="mini")
    assert finding.startswith("On mini, the seen pairs reach mIoU 0.880 [0.840, 0.920] (n=40);")
    assert ("zero-shot (held-out pairs) 0.380 [0.240, 0.500] (n=40), below the seen pairs "
            "(the intervals do not overlap)") in finding
    assert "0.876 [0.830, 0.910] (n=40), not distinguishable from the seen pairs" in finding
    other = tasks.tasks_finding(estimates, model="CIDAS/clipseg-rd64-refined")
    assert other.endswith("for CIDAS/clipseg-rd64-refined it means nothing.")
    with pytest.raises(ValueError, match="seen pairs"):
        tasks.tasks_finding({"one-shot (image prompt)": estimates["one-shot (image prompt)"]},
                            model="mini")


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
