"""The study's main command: execute the numbered notebooks with papermill, then build the report.

``clipseg-study run`` (or ``python -m clipseg_lib run``) executes ``notebooks/NN_*.ipynb``, each
in its own kernel, writes the executed copies to ``<output_dir>/notebooks/``, the manifest
``<output_dir>/run.json`` (outcomes, parameters, provenance and every file the run wrote) and the
HTML report ``<output_dir>/report/``. A notebook that fails, times out or kills its kernel is
recorded and the run goes on. Independent notebooks may run concurrently (``jobs``); a notebook
whose stem contains `CONCLUSION_MARKER` reads the others' results and starts after them. A run
that cannot go on (a worker process killed, a full disk) keeps the finished notebooks' results
and marks ``run.json`` failed with the error and the notebooks it did not finish.

`plan_study` checks everything (parameters, device, output dir, the model loading once)
without writing anything and forecasts each notebook's time from a warm-up (`forecast`);
`execute_plan` runs a plan, records the forecast beside the actual time and, with ``resume``,
continues the unfinished run of the same configuration (`runner.resume`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipseg_lib.experiments.budget import image_gflop
from clipseg_lib.model.hardware import device_problem
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.report.pages import build_report
from clipseg_lib.runner.execution import NotebookRun, NotebookTask, execute
from clipseg_lib.runner.executor import (
    SchedulerError,
    check_reachable,
    map_tasks,
    parse_scheduler,
)
from clipseg_lib.runner.forecast import NotebookForecast, notebook_seconds, plan_record
from clipseg_lib.runner.model_check import check_model_loads, load_source, resolve_model
from clipseg_lib.runner.resume import Resumed, clear_checkpoints, resumable_run
from clipseg_lib.runner.warm_up import Speed, measure_speed
from clipseg_lib.runner.work_plan import notebook_work
from clipseg_lib.study.encodings import ENCODING_CACHE_DIR, disk_gib, run_encodings
from clipseg_lib.study.output_dir import Interval, OwnedOutputDir, run_lock
from clipseg_lib.study.parameters import (
    StudyConfigError,
    check_cell_timeout,
    discover_notebooks,
    effective_parameters,
    model_options,
    notebook_parameters,
    resolve_model_source,
    split_assignments,
)
from clipseg_lib.study.results import new_run_id, provenance, write_json_atomic

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "results"
DEFAULT_CELL_TIMEOUT_S = 600
CONCLUSION_MARKER = "conclusion"
"""Notebooks whose stem contains this read the other notebooks' results: they run last."""
TRAINING_MARKER = "finetuning"
"""Notebooks whose stem contains this train models: their cost is training steps, which no
sample budget bounds, so with a full-size model they run only when selected by name."""
FULL_SIZE_GFLOP = 10.0
"""Models whose image encoding costs more than this are full-size (ViT-B/16: 76.45; mini: 0.20)."""


@dataclass(frozen=True)
class StudyRun:
    """Outcome of one ``run``: the model asked for and used, and each notebook's outcome."""

    model_requested: str
    model_resolved: str
    output_dir: Path
    quick: bool
    parameters: dict[str, str]
    notebooks: list[NotebookRun]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[NotebookRun]:
        return [run for run in self.notebooks if run.status != "ok"]


@dataclass
class StudyPlan:
    """A checked study: what to run, with which parameters, into which directory."""

    notebooks: list[Path]
    output: OwnedOutputDir
    model_requested: str
    model_resolved: str
    overrides: dict[str, str]
    injected: dict[str, dict[str, Any]]
    quick: bool
    dtype: str | None
    cell_timeout_s: int
    scheduler: str | None
    model_options: dict[str, str]
    selected: list[str]
    device: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    """Set by `execute_plan`: each execution is a run of its own."""
    speed: Speed | None = None
    forecasts: list[NotebookForecast] = field(default_factory=list)
    """Set by `forecast`: each notebook's work and estimated seconds, at `speed`."""
    resumed: Resumed | None = None
    """The unfinished run this plan continues (``--resume``); None: a new run."""

    def injected_for(self, notebook: Path) -> dict[str, Any]:
        """The parameters papermill injects into `notebook`: its overrides, the model and
        the output dir."""
        runner_parameters = {"model": self.model_resolved, "output_dir": str(self.output.path)}
        return {**self.injected[notebook.stem], **runner_parameters}

    def configuration(self) -> dict[str, dict[str, Any]]:
        """Notebook stem -> every parameter it runs with, as run.json stores it: what a
        resumed run must match."""
        planned = {path.stem: effective_parameters(path, self.injected_for(path))
                   for path in self.notebooks}
        return json.loads(json.dumps(planned, default=str))

    @property
    def workers(self) -> int:
        """Notebooks that run at once (a Dask cluster counts as one: its size is unknown)."""
        kind, workers = parse_scheduler(self.scheduler)
        return int(workers) if kind != "dask" else 1

    @property
    def kernel_threads(self) -> int | None:
        """Threads of each kernel when notebooks share the cores (None: torch's default)."""
        kind, _ = parse_scheduler(self.scheduler)
        return max(1, (os.cpu_count() or 1) // self.workers) if kind == "processes" else None

    def check_model(self) -> Segmenter:
        """Load the model once as the notebooks will (StudyConfigError if it cannot load)."""
        return check_model_loads(
            self.model_resolved,
            requested=self.model_requested,
            dtype=self.dtype,
            options=self.model_options,
            device=self.device,
        )

    def measure_speed(self, segmenter: Segmenter) -> Speed:
        """The warm-up (`measure_speed`) of `segmenter` at the kernels' threads."""
        source = load_source(self.model_resolved, dtype=self.dtype, device=self.device,
                             options=self.model_options)
        return measure_speed(segmenter, load_model=source, threads=self.kernel_threads)

    def forecast(self, segmenter: Segmenter, speed: Speed) -> None:
        """Set `forecasts`: each notebook's work with its effective parameters, at `speed`."""
        self.speed, self.forecasts = speed, []
        for notebook in self.notebooks:
            parameters = effective_parameters(notebook, self.injected[notebook.stem])
            work = notebook_work(notebook, parameters, segmenter)
            seconds = notebook_seconds(work, speed, image_gflop=image_gflop(segmenter),
                                       parameters=parameters)
            self.forecasts.append(NotebookForecast(notebook.stem, work, seconds))

    def skip_training(self, gflop_per_image: float) -> None:
        """Leave out the training notebooks (`TRAINING_MARKER`) the user did not select by
        name when the model is full-size, recording why in `skipped`."""
        if gflop_per_image <= FULL_SIZE_GFLOP:
            return
        for path in [p for p in self.notebooks if TRAINING_MARKER in p.stem]:
            if path.stem in self.selected or path.stem[:2] in self.selected:
                continue
            self.notebooks.remove(path)
            self.skipped[path.stem] = (
                f"trains decoders: with this model ({gflop_per_image:.2f} GFLOP an image) it "
                f"takes far longer than the study; run it with --notebooks {path.stem[:2]}"
            )


def scheduler_for(jobs: int, scheduler: str | None) -> str | None:
    """The `map_tasks` scheduler for ``--jobs``/``--scheduler`` (StudyConfigError if invalid,
    or a Dask address that accepts no connection)."""
    if scheduler is not None and jobs != 1:
        raise StudyConfigError("give --jobs or --scheduler, not both")
    if jobs < 1:
        raise StudyConfigError(f"--jobs must be at least 1, got {jobs}")
    chosen = scheduler if scheduler is not None else (f"processes:{jobs}" if jobs > 1 else None)
    try:
        check_reachable(chosen)
    except SchedulerError as error:
        raise StudyConfigError(str(error)) from error
    return chosen


def plan_study(
    notebooks_dir: Path,
    output_dir: Path,
    *,
    model: str = "auto",
    selected: Sequence[str] | None = None,
    parameters: Sequence[str] = (),
    quick: bool = False,
    dtype: str | None = None,
    device: str | None = None,
    cell_timeout: float = DEFAULT_CELL_TIMEOUT_S,
    jobs: int = 1,
    scheduler: str | None = None,
    force: bool = False,
    check_model: bool = True,
    resume: bool = False,
) -> StudyPlan:
    """Check a study without writing anything; StudyConfigError naming the first problem.

    ``parameters`` are ``name=value`` texts, parsed by the type of each notebook's default;
    paths among them (and ``model``) resolve against the current directory. ``device`` (None:
    each notebook's default, cpu) goes to every notebook that declares it. With
    ``check_model`` the model is loaded once, timed and the plan's forecast set. ``resume``:
    continue the unfinished run of this configuration in ``output_dir`` (`resumable_run`).
    """
    problem = device_problem(device) if device is not None else None
    if problem:
        raise StudyConfigError(problem)
    cell_timeout_s = check_cell_timeout(cell_timeout)
    disk_gib()  # a wrong CLIPSEG_ENCODING_CACHE_GIB stops the study here, not in each notebook
    chosen_scheduler = scheduler_for(jobs, scheduler)
    notebooks_dir = Path(notebooks_dir).resolve()
    notebooks = discover_notebooks(notebooks_dir, selected)
    overrides = split_assignments(parameters)
    injected = notebook_parameters(notebooks, overrides, quick=quick, dtype=dtype, device=device)
    model_resolved = resolve_model(resolve_model_source(model))
    output = OwnedOutputDir.claim(
        Path(output_dir), kind="study", identity=model_resolved, sources=notebooks_dir, force=force
    )
    plan = StudyPlan(
        notebooks,
        output,
        model,
        model_resolved,
        overrides,
        injected,
        quick,
        dtype,
        cell_timeout_s,
        chosen_scheduler,
        model_options(overrides),
        list(selected or []),
        device,
    )
    if check_model:
        segmenter = plan.check_model()
        plan.skip_training(image_gflop(segmenter))
        plan.forecast(segmenter, plan.measure_speed(segmenter))
    if resume:
        plan.resumed = resumable_run(plan.output.path, plan.configuration())
    return plan


def _manifest(
    plan: StudyPlan, outcomes: list[NotebookRun], status: str, error: str | None = None
) -> dict[str, Any]:
    """run.json's content; `error` (why a failed run stopped) only where given."""
    seeds = [o.effective_parameters.get("seed") for o in outcomes if o.effective_parameters]
    intervals = [Interval(o.stem, o.started, o.started + o.seconds) for o in outcomes]
    return {
        "kind": "study",
        "identity": plan.model_resolved,
        "run_id": plan.run_id,
        "status": status,
        "model_requested": plan.model_requested,
        "model_resolved": plan.model_resolved,
        "quick": plan.quick,
        "dtype": plan.dtype,
        "device": plan.device,
        "cell_timeout_s": plan.cell_timeout_s,
        "scheduler": plan.scheduler or "serial",
        "parameters": plan.overrides,
        "configuration": plan.configuration(),
        "notebooks": [asdict(outcome) for outcome in outcomes],
        "skipped": plan.skipped,
        **({"plan": plan_record(plan.forecasts, plan.speed, plan.workers)} if plan.speed else {}),
        "actual_s": _wall_seconds(intervals),
        "provenance": provenance(seed=seeds[0] if len(set(seeds)) == 1 else None),
        "seeds": sorted({seed for seed in seeds if seed is not None}),
        "written_files": plan.output.written_files(intervals),
        "encodings": run_encodings(plan.output.path, plan.run_id),
        **({"error": error} if error is not None else {}),
    }


def _wall_seconds(intervals: list[Interval]) -> float:
    """Seconds from the first notebook's start to the last one's end (what the plan's total
    estimates); 0 before any finished."""
    if not intervals:
        return 0.0
    return round(max(i.finished for i in intervals) - min(i.started for i in intervals), 3)


def _stages(notebooks: list[Path]) -> list[list[Path]]:
    """The experiments, then the conclusions that read them (empty stages left out).

    Training notebooks lead their stage: they run on one thread (their weights must not depend
    on the core count) and longest, so concurrent workers fill the other cores meanwhile."""
    last = [path for path in notebooks if CONCLUSION_MARKER in path.stem]
    first = [path for path in notebooks if path not in last]
    first.sort(key=lambda path: TRAINING_MARKER not in path.stem)
    return [stage for stage in (first, last) if stage]


def execute_plan(plan: StudyPlan) -> StudyRun:
    """Run ``plan``'s notebooks (concurrently where its scheduler allows), record every file
    they write in ``run.json`` as they finish, then build the report; all under the output
    dir's run lock (StudyConfigError when another run is writing there), under a new run id,
    or the resumed run's id and without the notebooks it finished."""
    plan.run_id = plan.resumed.run_id if plan.resumed else new_run_id()
    with run_lock(plan.output.path, run_id=plan.run_id):
        return _execute_locked(plan)


def _execute_locked(plan: StudyPlan) -> StudyRun:
    output_dir = plan.output.path
    stems = [path.stem for path in plan.notebooks]
    outcomes: list[NotebookRun] = list(plan.resumed.kept) if plan.resumed else []
    kept = {outcome.stem for outcome in outcomes}
    plan.output.prepare(rerun=[stem for stem in stems if stem not in kept])
    if plan.resumed is None:
        clear_checkpoints(output_dir)
    (output_dir / "notebooks").mkdir(exist_ok=True)
    manifest_path = plan.output.manifest_path
    bars, threads = plan.workers, plan.kernel_threads
    try:
        write_json_atomic(manifest_path, _manifest(plan, outcomes, "running"))
        # A run killed from here on must not leave the previous run's report looking current.
        build_report(output_dir)
        cases = {forecast.stem: forecast.work.cases for forecast in plan.forecasts}
        for stage in _stages([path for path in plan.notebooks if path.stem not in kept]):
            tasks = []
            for position, notebook in enumerate(stage):
                injected = plan.injected_for(notebook)
                tasks.append(
                    NotebookTask(
                        notebook,
                        output_dir / "notebooks" / notebook.name,
                        injected,
                        effective_parameters(notebook, injected),
                        plan.cell_timeout_s,
                        progress_position=position % bars,
                        threads=threads if len(stage) > 1 else None,
                        run_id=plan.run_id,
                        encoding_cache=output_dir / ENCODING_CACHE_DIR,
                        progress_total=cases.get(notebook.stem) or None,
                    )
                )
            # Starting worker processes costs seconds; a lone notebook runs in this process.
            scheduler = plan.scheduler if len(tasks) > 1 else None
            for _, outcome in map_tasks(execute, tasks, scheduler=scheduler):
                outcomes.append(outcome)
                outcomes.sort(key=lambda run: stems.index(run.stem))
                write_json_atomic(manifest_path, _manifest(plan, outcomes, "running"))
        write_json_atomic(manifest_path, _manifest(plan, outcomes, "finished"))
        clear_checkpoints(output_dir)
        build_report(output_dir)
        # Once more, to record the report's own files.
        write_json_atomic(manifest_path, _manifest(plan, outcomes, "finished"))
    except KeyboardInterrupt:
        write_json_atomic(manifest_path, _manifest(plan, outcomes, "interrupted"))
        raise
    except (SchedulerError, OSError) as error:
        finished = {outcome.stem for outcome in outcomes}
        unfinished = ", ".join(stem for stem in stems if stem not in finished)
        text = f"{error}; notebooks not finished: {unfinished}" if unfinished else str(error)
        message = _mark_failed(manifest_path, plan, outcomes, text)
        raise StudyConfigError(f"the run in {output_dir} stopped: {message}") from error
    return StudyRun(
        plan.model_requested, plan.model_resolved, output_dir, plan.quick, plan.overrides, outcomes,
        plan.skipped,
    )


def _mark_failed(
    manifest_path: Path, plan: StudyPlan, outcomes: list[NotebookRun], error: str
) -> str:
    """Record in run.json that the run failed with `error`; return `error`, with a note when
    run.json could not be written (a full disk): then it stays as it was."""
    try:
        write_json_atomic(manifest_path, _manifest(plan, outcomes, "failed", error))
    except OSError as write_error:
        return (f"{error}; run.json could not be marked failed ({write_error}) and stays as it "
                f"was (status {_status_on_disk(manifest_path)!r})")
    return error


def _status_on_disk(manifest_path: Path) -> str:
    """The status run.json now records, or "unreadable"."""
    try:
        return str(json.loads(manifest_path.read_text(encoding="utf-8"))["status"])
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable"


def run_study(notebooks_dir: Path, output_dir: Path, **options: Any) -> StudyRun:
    """`plan_study` then `execute_plan`: the keyword options are those of `plan_study`."""
    return execute_plan(plan_study(notebooks_dir, output_dir, **options))
