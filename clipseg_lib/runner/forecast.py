"""The plan a user sees before waiting: per notebook its cases, encodings and estimated time.

A notebook's time is its start-up plus its work (`NotebookWork`) at the warm-up's speed
(`Speed`): image encodings scaled by their GFLOP (a notebook encoding at other sizes costs
in proportion), decoder passes, support-image embeddings, and training samples at one
encoding and `TRAINING_DECODES` decoder passes each (forward and backward of the decoder).
A notebook that sets its own ``threads`` runs at the warm-up's speed scaled by the thread
ratio. Notebooks run one after another unless `jobs` > 1 (then the total is the sum divided
by the concurrency, never less than the longest notebook).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from clipseg_lib.runner.warm_up import Speed
from clipseg_lib.runner.work_plan import NotebookWork

TRAINING_DECODES = 3
"""Decoder passes one training sample costs: its forward and a backward of about twice that."""


@dataclass(frozen=True)
class NotebookForecast:
    """One notebook's planned work and estimated wall seconds."""

    stem: str
    work: NotebookWork
    seconds: float


def notebook_seconds(work: NotebookWork, speed: Speed, *, image_gflop: float,
                     parameters: Mapping[str, Any]) -> float:
    """Estimated wall seconds of a notebook doing `work` at `speed`; `image_gflop` is the
    GFLOP of the warm-up's image encoding."""
    images = work.image_gflop / image_gflop if image_gflop > 0 else work.images
    compute = images * speed.image_s + work.decodes * speed.decode_s
    compute += work.supports * speed.support_s
    compute += work.training_samples * (speed.image_s + TRAINING_DECODES * speed.decode_s)
    threads = parameters.get("threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        compute *= max(speed.threads / threads, 1.0)
    return speed.startup_s + compute


def total_seconds(forecasts: Sequence[NotebookForecast], jobs: int = 1) -> float:
    """The study's estimated wall seconds with `jobs` notebooks at once."""
    seconds = [forecast.seconds for forecast in forecasts]
    if not seconds:
        return 0.0
    return max(sum(seconds) / max(jobs, 1), max(seconds))


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def plan_table(forecasts: Sequence[NotebookForecast], speed: Speed, jobs: int = 1) -> str:
    """The plan as text: a row per notebook (cases, image encodings, support embeddings,
    estimated time), the total and the warm-up it rests on."""
    lines = [
        f"plan ({speed.device}, {speed.threads} threads; warm-up: "
        f"{speed.image_s * 1e3:.1f} ms an image encoding, {speed.decode_s * 1e3:.1f} ms a "
        f"decoder pass, {speed.support_s * 1e3:.1f} ms a support image, "
        f"{speed.startup_s:.1f} s a notebook's start-up):",
        f"  {'notebook':<26}{'cases':>7}{'images':>9}{'supports':>10}{'estimate':>14}",
    ]
    for forecast in forecasts:
        work = forecast.work
        lines.append(
            f"  {forecast.stem:<26}{work.cases:>7}{work.images:>9}{work.supports:>10}"
            f"{_duration(forecast.seconds):>14}"
        )
    cases = sum(f.work.cases for f in forecasts)
    images = sum(f.work.images for f in forecasts)
    supports = sum(f.work.supports for f in forecasts)
    lines.append(
        f"  {'total' + (f' ({jobs} at once)' if jobs > 1 else ''):<26}{cases:>7}{images:>9}"
        f"{supports:>10}{_duration(total_seconds(forecasts, jobs)):>14}"
    )
    return "\n".join(lines)


def plan_record(forecasts: Sequence[NotebookForecast], speed: Speed,
                jobs: int = 1) -> dict[str, Any]:
    """The plan for run.json: the warm-up, each notebook's work and estimate, the total."""
    return {
        "speed": speed.as_dict(),
        "notebooks": {
            f.stem: {**asdict(f.work), "estimated_s": round(f.seconds, 3)} for f in forecasts
        },
        "estimated_s": round(total_seconds(forecasts, jobs), 3),
    }
