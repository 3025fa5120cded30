"""Execute one notebook with papermill: a kernel over IPC and a cell timeout that spares work.

The cell timeout stops a cell only when it has run ``cell_timeout`` seconds AND its kernel used
less than `PROGRESS_CPU_FRACTION` of a core over the last ``cell_timeout`` seconds: a cell that
waits on nothing (a hang, a deadlock, a sleep) is stopped, a cell that computes is never cut off,
however slow the model or busy the machine. `execute` is a module-level function of plain data,
so the runner can map it over local processes or Dask workers.

A task's ``run_id`` reaches the kernel as `RUN_ID_VARIABLE` (what `NotebookSession.finish`
records) and the executed notebook as ``metadata["clipseg"]["run_id"]`` (`RUN_METADATA`); its
``encoding_cache`` folder as `ENCODING_CACHE_VARIABLE` (what `study.start` attaches). The
kernel reports its cases done (`study.progress`) on stderr; the client takes those lines out
of the notebook and advances the notebook's console bar (tqdm: cases done of the plan's, time
left).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import psutil
from jupyter_client import AsyncKernelManager
from jupyter_core.utils import ensure_event_loop, run_sync
from nbclient.exceptions import CellTimeoutError
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger
from tqdm import tqdm
from traitlets import CaselessStrEnum

from clipseg_lib.runner.executor import THREAD_VARIABLES
from clipseg_lib.study.case_progress import PROGRESS_VARIABLE, progress_lines
from clipseg_lib.study.encodings import ENCODING_CACHE_VARIABLE
from clipseg_lib.study.results import RUN_ID_VARIABLE, RUN_METADATA

KERNEL_NAME = "python3"
"""jupyter_client maps the native ``python3`` kernel to the running interpreter."""
ENGINE_NAME = "clipseg-study"
PROGRESS_CPU_FRACTION = 0.05
"""A kernel that used at least this share of one core since the last check is making progress."""
CELL_TIMEOUT_FLAG = "--cell-timeout"


@dataclass(frozen=True)
class NotebookRun:
    """Outcome of one notebook: ``status`` is ``"ok"`` or ``"failed"``.

    ``started`` is the wall-clock start (seconds since the epoch); ``parameters`` are the injected
    ones; ``effective_parameters`` every parameter the notebook ran with (defaults included).
    """

    stem: str
    status: str
    started: float
    seconds: float
    parameters: dict[str, Any]
    effective_parameters: dict[str, Any] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class NotebookTask:
    """Everything one notebook execution needs (picklable for worker processes)."""

    notebook: Path
    executed: Path
    parameters: dict[str, Any]
    effective_parameters: dict[str, Any]
    cell_timeout_s: int
    progress_position: int = 0
    threads: int | None = None
    """Threads for the kernel's numeric libraries when notebooks share the cores (None: all)."""
    run_id: str | None = None
    """The id of the study run this execution belongs to."""
    encoding_cache: Path | None = None
    """The run's encoding-cache folder, shared by its notebooks (None: memory only)."""
    progress_total: int | None = None
    """The cases the plan expects the notebook to report (None: unknown)."""


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels talk over Unix sockets: nothing listens on the network,
    so ipykernel has no reason to warn about unencrypted TCP."""

    transport = CaselessStrEnum(
        ["tcp", "ipc"], default_value="ipc" if os.name == "posix" else "tcp", config=True
    )

    def _ip_default(self) -> str:
        """A socket path of this kernel's own: jupyter_client's default, ``kernel-ipc`` in the
        working directory, would be shared by concurrent kernels (and land in notebooks/)."""
        if self.transport != "ipc":
            return super()._ip_default()
        return str(Path(tempfile.gettempdir()) / f"clipseg-kernel-{uuid.uuid4().hex}-ipc")


class ProgressAwareClient(PapermillNotebookClient):
    """Papermill's client whose timeout only stops a cell whose kernel stopped using the CPU,
    and whose kernel's progress lines advance `case_bar` instead of entering the notebook."""

    case_bar: tqdm | None = None

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        if msg.get("msg_type") == "stream" and content.get("name") == "stderr":
            done, kept = progress_lines(content.get("text", ""))
            if done and self.case_bar is not None:
                self.case_bar.update(done)
            if not kept:
                return None
            msg = {**msg, "content": {**content, "text": kept}}
        return super().output(outs, msg, display_id, cell_index)

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        self._cell_index = cell_index
        self._cell_started = time.monotonic()
        self._window = (self._cell_started, self._kernel_cpu_seconds())
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history)

    # nbclient binds its synchronous execute_cell to its own async_execute_cell.
    execute_cell = run_sync(async_execute_cell)

    @contextmanager
    def setup_kernel(self, **kwargs: Any) -> Iterator[None]:
        """nbclient's, except that a run interrupted (Ctrl-C) cancels the cell it waits on and
        kills its kernel at once: shutting a busy kernel down gracefully races the reply to its
        cell, and a cell left waiting sees its kernel die; both print tracebacks."""
        with super().setup_kernel(**kwargs):
            try:
                yield
            except KeyboardInterrupt:
                _cancel_pending_tasks(ensure_event_loop())
                self.shutdown_kernel = "immediate"
                raise

    def _kernel_cpu_seconds(self) -> float | None:
        """CPU seconds used so far by the kernel and its children; None if unknown."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        try:
            kernel = psutil.Process(process.pid)
            processes = [kernel, *kernel.children(recursive=True)]
            return sum(sum(p.cpu_times()[:2]) for p in processes)
        except (AttributeError, psutil.Error):
            return None

    async def _async_handle_timeout(self, timeout: int, cell=None) -> None:
        now, cpu = time.monotonic(), self._kernel_cpu_seconds()
        window_start, cpu_at_start = self._window
        self._window = (now, cpu)
        if cpu is not None and cpu_at_start is not None:
            if cpu - cpu_at_start >= PROGRESS_CPU_FRACTION * (now - window_start):
                return None
        first_line = next((line for line in (cell.source if cell else "").splitlines()), "")
        where = f"cell {self._cell_index + 1} of {len(self.nb.cells)}"
        raise CellTimeoutError(
            f"{where} ({first_line.strip()[:60]!r}) ran "
            f"{now - self._cell_started:.0f} s, the last {timeout} s without using the CPU; "
            f"raise {CELL_TIMEOUT_FLAG} (now {timeout} s) if it needs longer"
        )


def _cancel_pending_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks an interrupt left pending on `loop` (the cell's polls) and collect their
    errors, so that none reports a dead kernel or an error never retrieved."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


class ProgressAwareEngine(NBClientEngine):
    """papermill's nbclient engine with `ProgressAwareClient` and IPC kernels; a ``run_id``
    is recorded in the notebook's metadata and given to its kernel."""

    @classmethod
    def execute_managed_notebook(
        cls, nb_man, kernel_name, start_timeout=60, execution_timeout=None, run_id=None,
        encoding_cache=None, case_bar=None, **kwargs
    ):
        kwargs.pop("input_path", None)
        environment = {**os.environ, PROGRESS_VARIABLE: "1"}
        if run_id is not None:
            nb_man.nb.metadata[RUN_METADATA] = {"run_id": run_id}
            environment[RUN_ID_VARIABLE] = run_id
        if encoding_cache is not None:
            environment[ENCODING_CACHE_VARIABLE] = str(encoding_cache)
        client = ProgressAwareClient(
            nb_man,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            kernel_manager_class=IPCKernelManager,
            log=logger,
            **kwargs,
        )
        client.case_bar = case_bar
        return client.execute(env=environment)


papermill_engines.register(ENGINE_NAME, ProgressAwareEngine)


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def execute(task: NotebookTask) -> NotebookRun:
    """Run ``task.notebook`` into ``task.executed``; any failure is recorded, not raised.

    A progress bar (cases done, with tqdm's estimate of the time left) is shown on a terminal.
    """
    started, start = time.time(), time.perf_counter()
    notebook = task.notebook
    if task.threads is not None:
        # The kernel inherits this worker's environment; a user's own setting wins.
        for variable in THREAD_VARIABLES:
            os.environ.setdefault(variable, str(task.threads))
    case_bar = tqdm(total=task.progress_total, desc=notebook.stem, unit="case", disable=None,
                    position=task.progress_position, file=sys.stderr, leave=False)
    try:
        papermill.execute_notebook(
            notebook,
            task.executed,
            parameters=task.parameters,
            engine_name=ENGINE_NAME,
            kernel_name=KERNEL_NAME,
            cwd=notebook.parent,
            execution_timeout=task.cell_timeout_s,
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            run_id=task.run_id,
            encoding_cache=task.encoding_cache,
            case_bar=case_bar,
        )
    # A failing notebook must not stop the study: record it and go on with the next one.
    except Exception as error:  # noqa: BLE001
        return NotebookRun(
            notebook.stem,
            "failed",
            started,
            time.perf_counter() - start,
            task.parameters,
            task.effective_parameters,
            error_type=getattr(error, "ename", type(error).__name__),
            error_message=_one_line(getattr(error, "evalue", None) or str(error)),
        )
    finally:
        case_bar.close()
    seconds = time.perf_counter() - start
    return NotebookRun(
        notebook.stem, "ok", started, seconds, task.parameters, task.effective_parameters
    )
