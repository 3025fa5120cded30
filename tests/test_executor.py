"""map_tasks: the same results serially, in local processes and on Dask; worker loss survived."""

from __future__ import annotations

import functools
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from clipseg_lib.model.random_models import random_segmenter
from clipseg_lib.runner.executor import SchedulerError, map_tasks, parse_scheduler

pytestmark = pytest.mark.slow  # left out of `make test-fast`

pytest.importorskip("dask.distributed")


@functools.cache
def _segmenter():
    """One tiny random model per process, built on first use (as a worker would)."""
    with tempfile.TemporaryDirectory(prefix="executor-test-") as directory:
        return random_segmenter(directory, smoke=True)


def segment(seed: int) -> np.ndarray:
    """Probabilities of two prompts on a seeded random image (float32, (2, 48, 64))."""
    image = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    return _segmenter().predict(image, ["a red circle", "not a cat"])


def announce_and_wait(task: tuple[int, str]) -> tuple[int, int]:
    """Announce this worker's pid in the folder `task[1]`, wait, return (`task[0]`, pid)."""
    number, folder = task
    Path(folder, f"{number}-{os.getpid()}").touch()
    time.sleep(1.0)
    return number, os.getpid()


def die_on_two(number: int) -> int:
    """Return `number`, except that the worker process handed 2 kills itself."""
    if number == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return number


def fail_on_three(number: int) -> int:
    if number == 3:
        raise RuntimeError("task 3 failed")
    return number


@pytest.mark.parametrize(
    ("scheduler", "parsed"),
    [(None, ("serial", 1)), ("serial", ("serial", 1)), ("processes:3", ("processes", 3)),
     ("local:2", ("local", 2)), ("tcp://10.0.0.1:8786", ("dask", "tcp://10.0.0.1:8786"))],
)
def test_scheduler_strings(scheduler, parsed):
    assert parse_scheduler(scheduler) == parsed


@pytest.mark.parametrize(
    ("scheduler", "problem"),
    [("threads:2", "is not one of serial, processes:N, local:N"), ("local:two", "'two' is not"),
     ("processes:0", "at least one worker"), ("tcp://", "names no host"), (2, "not a string")],
)
def test_bad_scheduler_strings_are_refused(scheduler, problem):
    with pytest.raises(SchedulerError, match=problem):
        list(map_tasks(abs, [1], scheduler=scheduler))


def test_identical_results_serial_processes_and_dask():
    seeds = list(range(6))
    runs = {
        scheduler: dict(map_tasks(segment, seeds, scheduler=scheduler))
        for scheduler in ("serial", "processes:2", "local:2")
    }
    for scheduler, results in runs.items():
        assert sorted(results) == seeds, scheduler
        for seed in seeds:
            np.testing.assert_array_equal(results[seed], runs["serial"][seed], err_msg=scheduler)
    assert not np.array_equal(runs["serial"][0], runs["serial"][1])


@pytest.mark.parametrize("scheduler", ["serial", "processes:2"])
def test_a_failing_task_raises_after_the_earlier_ones(scheduler):
    seen = []
    with pytest.raises(RuntimeError, match="task 3 failed"):
        for task, result in map_tasks(fail_on_three, [1, 2, 3], scheduler=scheduler):
            seen.append((task, result))
    assert set(seen) <= {(1, 1), (2, 2)}


def test_a_killed_dask_worker_is_survived(tmp_path):
    """SIGKILL the worker process running the first task: every task still ends exactly once."""
    tasks = [(number, str(tmp_path)) for number in range(6)]
    killed = []

    def kill_first_worker():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            for announcement in tmp_path.iterdir():
                pid = int(announcement.name.split("-")[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    results = list(map_tasks(announce_and_wait, tasks, scheduler="local:2"))
    killer.join()
    assert len(killed) == 1
    assert sorted(task[0] for task, _ in results) == list(range(6))
    assert all(task[0] == number for task, (number, _) in results)
    assert killed[0] not in {pid for _, (_, pid) in results}


def test_a_killed_local_worker_raises_a_scheduler_error():
    died = r"^a worker process died \(killed, or out of memory\)$"
    with pytest.raises(SchedulerError, match=died):
        list(map_tasks(die_on_two, [1, 2], scheduler="processes:2"))
