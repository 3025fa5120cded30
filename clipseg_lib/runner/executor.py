"""One way to run independent tasks: in this process, in local processes, or on Dask.

``map_tasks(function, tasks, scheduler=...)`` calls ``function(task)`` for every task and
yields ``(task, result)`` as each finishes, each task exactly once. The scheduler is

- ``None`` or ``"serial"``: one after another in this process (the default);
- ``"processes:N"``: N local worker processes (``concurrent.futures``, spawn);
- ``"local:N"``: a Dask ``LocalCluster`` of N single-threaded worker processes;
- ``"tcp://host:8786"`` (or any Dask address): a running Dask cluster.

Local workers (``processes:N``, ``local:N``) share the machine's cores: each runs its numeric
libraries (torch, BLAS) and the kernels it starts on ``cores // N`` threads. Dask is optional
(``pip install -e ".[cluster]"``). On Dask a task whose worker dies (killed, out of memory) is
run again on another worker, up to `DASK_ALLOWED_FAILURES` times (on a running cluster its
scheduler's ``distributed.scheduler.allowed-failures`` decides); a task that raises is not
retried. `function` and the tasks must be picklable (module-level functions, plain data); a
task that fails raises its error here, after the tasks that finished before it were yielded,
and the tasks not yet started are cancelled.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from tqdm.auto import tqdm

Task = TypeVar("Task")

DASK_ALLOWED_FAILURES = 3
"""Worker deaths a task may suffer on a `local:N` cluster before it is reported as failed."""
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SCHEDULER_HELP = "serial, processes:N, local:N or a Dask address such as tcp://host:8786"


class SchedulerError(ValueError):
    """A scheduler string that names no known way to run tasks, Dask missing, or a local worker
    process that died (killed, out of memory): the tasks not yet yielded are lost."""


def parse_scheduler(scheduler: str | None) -> tuple[str, int | str]:
    """``(kind, argument)``: ("serial", 1), ("processes", N), ("local", N) or ("dask", address).

    A missing count (``"local"``, ``"processes:"``) means one worker per core.
    """
    if scheduler in (None, "", "serial"):
        return "serial", 1
    if not isinstance(scheduler, str):
        raise SchedulerError(f"scheduler {scheduler!r} is not a string: give {SCHEDULER_HELP}")
    if "://" in scheduler:
        protocol, _, address = scheduler.partition("://")
        if not protocol or not address.strip(":/"):
            raise SchedulerError(f"scheduler {scheduler!r} names no host: give {SCHEDULER_HELP}")
        return "dask", scheduler
    kind, _, count = scheduler.partition(":")
    if kind not in ("processes", "local"):
        raise SchedulerError(f"scheduler {scheduler!r} is not one of {SCHEDULER_HELP}")
    try:
        workers = int(count) if count else multiprocessing.cpu_count()
    except ValueError as error:
        raise SchedulerError(f"scheduler {scheduler!r}: {count!r} is not a worker count") from error
    if workers < 1:
        raise SchedulerError(f"scheduler {scheduler!r}: needs at least one worker")
    return kind, workers


def check_reachable(scheduler: str | None, timeout_s: float = 5.0) -> None:
    """SchedulerError when a Dask scheduler address (``tcp://host:port``) accepts no
    connection within `timeout_s`; other schedulers need no network."""
    kind, address = parse_scheduler(scheduler)
    if kind != "dask":
        return
    host, _, port = str(address).partition("://")[2].rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise SchedulerError(f"scheduler {address!r}: cannot connect ({error})") from error


def map_tasks(
    function: Callable[[Task], Any],
    tasks: Iterable[Task],
    *,
    scheduler: str | None = None,
    progress: str | None = None,
) -> Iterator[tuple[Task, Any]]:
    """``(task, function(task))`` for every task, in the order they finish.

    `progress`: a label for a tqdm bar (on stderr, with the estimated time left) advanced as
    each task finishes; None shows none.
    """
    kind, argument = parse_scheduler(scheduler)
    task_list = list(tasks)
    if kind == "serial":
        finished = ((task, function(task)) for task in task_list)
    elif kind == "processes":
        finished = _map_on_processes(function, task_list, int(argument))
    else:
        finished = _map_on_dask(function, task_list, kind, argument)
    bar = tqdm(total=len(task_list), desc=progress, disable=progress is None, file=sys.stderr)
    try:
        for pair in finished:
            bar.update()
            yield pair
    finally:
        finished.close()  # a consumer that stops early cancels what is left
        bar.close()


def threads_per_worker(workers: int) -> int:
    """Threads each of `workers` local processes may use without oversubscribing the cores."""
    return max(1, multiprocessing.cpu_count() // workers)


def _limit_threads(threads: int) -> None:
    """Worker initializer: numeric libraries (and kernels started from here) use `threads`."""
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _map_on_processes(
    function: Callable[[Task], Any], tasks: list[Task], workers: int
) -> Iterator[tuple[Task, Any]]:
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(threads_per_worker(workers),),
    )
    try:
        futures = {pool.submit(function, task): task for task in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()
    except BrokenProcessPool as error:
        raise SchedulerError("a worker process died (killed, or out of memory)") from error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _map_on_dask(
    function: Callable[[Task], Any], tasks: list[Task], kind: str, argument: int | str
) -> Iterator[tuple[Task, Any]]:
    try:
        import dask
        from dask.distributed import Client, LocalCluster
        from dask.distributed import as_completed as dask_completed
    except ImportError as error:
        raise SchedulerError(
            'Dask is not installed: pip install -e ".[cluster]" (or dask[distributed])'
        ) from error
    if kind == "local":
        threads = str(threads_per_worker(int(argument)))
        settings = {
            "distributed.scheduler.allowed-failures": DASK_ALLOWED_FAILURES,
            "distributed.nanny.pre-spawn-environ": dict.fromkeys(THREAD_VARIABLES, threads),
        }
        with dask.config.set(settings):
            cluster = LocalCluster(
                n_workers=int(argument),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            )
        client = Client(cluster)
    else:
        cluster = None
        try:
            client = Client(str(argument), timeout="20s")
        except OSError as error:
            raise SchedulerError(f"scheduler {argument!r}: cannot connect ({error})") from error
    try:
        futures = {client.submit(function, task, pure=False): task for task in tasks}
        for future in dask_completed(futures):
            yield futures[future], future.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
