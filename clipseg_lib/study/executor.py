"""One way to run independent tasks: in this process, in local processes, or on Dask.

``map_tasks(function, tasks, scheduler=...)`` calls ``function(task)`` for every task and
yields ``(task, result)`` as each finishes. The scheduler is

- ``None`` or ``"serial"``: one after another in this process (the default);
- ``"processes:N"``: N local worker processes (``concurrent.futures``, spawn);
- ``"local:N"``: a Dask ``LocalCluster`` of N single-threaded worker processes;
- ``"tcp://host:8786"`` (or any Dask address): a running Dask cluster.

Dask is optional (``pip install -e ".[cluster]"``). `function` and the tasks must be picklable
(module-level functions, plain data); a task that fails raises its error here, after the tasks
that finished before it were yielded.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Task = TypeVar("Task")

DASK_RETRIES = 2
"""Times Dask resubmits a task whose worker died (a lost worker is not a failed task)."""


class SchedulerError(ValueError):
    """A scheduler string that names no known way to run tasks, or Dask missing."""


def parse_scheduler(scheduler: str | None) -> tuple[str, int | str]:
    """``(kind, argument)``: ("serial", 1), ("processes", N), ("local", N) or ("dask", address)."""
    if scheduler in (None, "", "serial"):
        return "serial", 1
    text = str(scheduler)
    if "://" in text:
        return "dask", text
    kind, _, count = text.partition(":")
    if kind not in ("processes", "local"):
        raise SchedulerError(
            f"scheduler {scheduler!r} is not one of serial, processes:N, local:N or a Dask "
            "address such as tcp://host:8786"
        )
    try:
        workers = int(count) if count else multiprocessing.cpu_count()
    except ValueError as error:
        raise SchedulerError(f"scheduler {scheduler!r}: {count!r} is not a worker count") from error
    if workers < 1:
        raise SchedulerError(f"scheduler {scheduler!r}: needs at least one worker")
    return kind, workers


def map_tasks(
    function: Callable[[Task], Any], tasks: Iterable[Task], *, scheduler: str | None = None
) -> Iterator[tuple[Task, Any]]:
    """``(task, function(task))`` for every task, in the order they finish."""
    kind, argument = parse_scheduler(scheduler)
    task_list = list(tasks)
    if kind == "serial":
        for task in task_list:
            yield task, function(task)
    elif kind == "processes":
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(argument), mp_context=context) as pool:
            futures = {pool.submit(function, task): task for task in task_list}
            for future in as_completed(futures):
                yield futures[future], future.result()
    else:
        yield from _map_on_dask(function, task_list, kind, argument)


def _map_on_dask(
    function: Callable[[Task], Any], tasks: list[Task], kind: str, argument: int | str
) -> Iterator[tuple[Task, Any]]:
    try:
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError as error:
        raise SchedulerError(
            'Dask is not installed: pip install -e ".[cluster]" (or dask[distributed])'
        ) from error
    if kind == "local":
        cluster = LocalCluster(
            n_workers=int(argument), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        cluster, client = None, Client(str(argument))
    try:
        futures = {
            client.submit(function, task, pure=False, retries=DASK_RETRIES): task for task in tasks
        }
        for future in dask_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
