"""``clipseg-study evaluate``: a model on PhraseCut, Pascal-5i or RefCOCO with the paper's metrics.

The images of each fold are cut into shards of ``shard_size`` images and run through
`clipseg_lib.runner.executor.map_tasks` (serial by default; ``local:N`` or ``tcp://...`` on
Dask). A worker loads the model and opens the dataset once per process (a per-process cache),
encodes each image once and decodes all of its prompts together (`score_image`), and writes
the shard's pixel counts atomically to ``<output>.shards/``. A shard file that exists with the
same fingerprint is finished: a rerun, or Dask's retry after a lost worker, skips it, and the
summary reads each shard once, so no shard is counted twice. The summary is the same whatever
the scheduler: records are read in shard order and the scheduler is not part of the JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from clipseg_lib.analysis.benchmark_metrics import (
    THRESHOLDS,
    benchmark_scores,
    bootstrap_resamples,
    confusion_counts,
    estimates,
    reported_indices,
    reported_scores,
    resize_probabilities,
    threshold_index,
    undefined_resamples,
)
from clipseg_lib.datasets import (
    DEFAULT_SPLITS,
    Sample,
    dataset_provenance,
    open_dataset,
)
from clipseg_lib.evaluation.paper_benchmarks import METRIC_LABELS, caveats, paper_row
from clipseg_lib.model.hardware import device_problem
from clipseg_lib.model.images import ImageLike
from clipseg_lib.model.loading import load_segmenter
from clipseg_lib.model.segmenter import Segmenter
from clipseg_lib.runner.executor import map_tasks
from clipseg_lib.study.results import provenance, write_json_atomic

SHARD_SIZE = 8
REPORT_THRESHOLDS: dict[str, float] = {"phrasecut": 0.3, "pascal5i": 0.3, "refcoco": 0.3}
"""PhraseCut and Pascal-5i at t = 0.3 as the paper (the original's ``Tables.ipynb`` prints
``pas_h2_miou_0.3``, ``pas_t_miou_0.3``); RefCOCO (not in the paper) at 0.3 too. Each IoU at its
own best threshold is reported beside ("best", labelled: chosen on the data it scores)."""


class EvaluationError(ValueError):
    """Invalid evaluation parameters, or an output that belongs to another evaluation."""


@dataclass(frozen=True)
class EvaluationSpec:
    """What a worker needs to score a shard (plain, picklable data)."""

    dataset: str
    root: str
    split: str
    model: str
    shots: int
    seed: int
    dtype: str | None
    device: str = "cpu"


@dataclass(frozen=True)
class ShardTask:
    """One shard: images of one fold, and the file its counts go to."""

    spec: EvaluationSpec
    fold: int
    image_ids: tuple[str, ...]
    path: str
    fingerprint: str


_PROCESS_CACHE: dict[tuple, Any] = {}


def _cached(key: tuple, build: Any) -> Any:
    if key not in _PROCESS_CACHE:
        _PROCESS_CACHE[key] = build()
    return _PROCESS_CACHE[key]


def _segmenter(spec: EvaluationSpec) -> Segmenter:
    return _cached(("model", spec.model, spec.dtype, spec.device),
                   lambda: load_segmenter(spec.model, dtype=spec.dtype, device=spec.device))


def _adapter(spec: EvaluationSpec, fold: int):
    key = ("dataset", spec.dataset, spec.root, spec.split, fold, spec.shots, spec.seed)
    return _cached(key, lambda: open_dataset(
        spec.dataset, spec.root, spec.split, fold=fold, shots=spec.shots, seed=spec.seed
    ))


def score_image(
    segmenter: Segmenter, image: ImageLike, samples: tuple[Sample, ...]
) -> list[np.ndarray]:
    """Counts (49, 4) of each sample of one image: the image encoded once, every prompt
    decoded in one batch, probabilities resized bilinearly to the ground truth's size.

    Clears the segmenter's text cache (see below): the counts depend on nothing else.
    """
    prompts = [sample.prompt for sample in samples]
    # A text embedded in a batch differs from the same text embedded alone by ~1e-7 (padding
    # changes the matmul shapes), so cached embeddings would make scores depend on what the
    # process embedded before, i.e. on the scheduler. Each text is embedded alone, afresh.
    segmenter.clear_text_cache()
    for text in dict.fromkeys(prompt for prompt in prompts if isinstance(prompt, str)):
        segmenter.embed_prompts([text])
    encoding = segmenter.encode_image(image)
    logits = segmenter.predict_logits(encoding, prompts)
    probs = resize_probabilities(torch.sigmoid(torch.from_numpy(logits)).numpy(),
                                 samples[0].target.shape)
    return [
        confusion_counts(np.clip(prob, 0.0, 1.0), sample.target, sample.ignore)
        for prob, sample in zip(probs, samples, strict=True)
    ]


def _read_shard(path: Path, fingerprint: str) -> dict | None:
    """The shard's content if it is finished with this fingerprint; None if absent."""
    if not path.is_file():
        return None
    shard = json.loads(path.read_text())
    if shard.get("fingerprint") != fingerprint:
        raise EvaluationError(
            f"{path} belongs to another evaluation (other parameters or data); pass --force "
            "or choose another --output"
        )
    return shard


def run_shard(task: ShardTask) -> str:
    """Score one shard (skipped if finished) and write its counts atomically; returns the path."""
    path = Path(task.path)
    if _read_shard(path, task.fingerprint) is not None:
        return task.path
    segmenter, adapter = _segmenter(task.spec), _adapter(task.spec, task.fold)
    records = []
    for image_id in task.image_ids:
        group = adapter.image_samples(image_id)
        for sample, counts in zip(
            group.samples, score_image(segmenter, group.image_path, group.samples), strict=True
        ):
            records.append({"image_id": image_id, "sample_id": sample.sample_id,
                            "class_id": sample.class_id, "counts": counts.tolist()})
    write_json_atomic(path, {"fingerprint": task.fingerprint, "model": segmenter.provenance,
                             "records": records})
    return task.path


def _fingerprint(parameters: dict, files: dict) -> str:
    text = json.dumps({"parameters": parameters, "files": files}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_output(output: Path, fingerprint: str, force: bool) -> None:
    if not output.exists() or force:
        return
    try:
        previous = json.loads(output.read_text()).get("fingerprint")
    except (ValueError, AttributeError):
        previous = None
    if previous != fingerprint:
        raise EvaluationError(
            f"{output} exists and is not this evaluation's result; pass --force to replace it"
        )


def evaluate(
    dataset: str,
    root: str | Path,
    *,
    model: str,
    output: str | Path,
    split: str | None = None,
    folds: list[int] | None = None,
    shots: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    dtype: str | None = None,
    device: str = "cpu",
    scheduler: str | None = None,
    shard_size: int = SHARD_SIZE,
    force: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluate ``model`` on a dataset; write the results JSON and return its content.

    ``folds`` (Pascal-5i; default all four) are averaged as the paper does; ``shots`` 1 is
    one-shot, 0 text prompts (Pascal-5i; default 1); ``limit`` caps the images per fold;
    ``progress`` shows a progress bar of images scored. ``device`` (cpu, cuda, cuda:N, mps):
    EvaluationError at once where torch sees no such device.
    """
    problem = device_problem(device)
    if problem:
        raise EvaluationError(problem)
    is_pascal = dataset == "pascal5i"
    if not is_pascal and (folds or shots):
        raise EvaluationError(f"--fold and --shots apply to pascal5i only, not {dataset}")
    if limit is not None and limit < 1 or shard_size < 1:
        raise EvaluationError("--limit and the shard size must be positive")
    folds = sorted(set(folds)) if folds else ([0, 1, 2, 3] if is_pascal else [0])
    shots = (1 if shots is None else shots) if is_pascal else 0
    split = split or DEFAULT_SPLITS.get(dataset, "")
    spec = EvaluationSpec(
        dataset, str(Path(root).resolve()), split, model, shots, seed, dtype, device
    )
    adapters = {fold: _adapter(spec, fold) for fold in folds}
    data = dataset_provenance(adapters[folds[0]])
    parameters = {**asdict(spec), "folds": folds, "limit": limit, "shard_size": shard_size}
    fingerprint = _fingerprint(parameters, data["files"])
    output = Path(output)
    _check_output(output, fingerprint, force)
    shard_dir = output.with_name(output.name + ".shards")
    if force and shard_dir.is_dir():
        for stale in shard_dir.glob("fold*.json"):
            stale.unlink()
    tasks = []
    for fold in folds:
        image_ids = adapters[fold].image_ids()[:limit]
        for start in range(0, len(image_ids), shard_size):
            shard_path = shard_dir / f"fold{fold}-{start // shard_size:05d}.json"
            tasks.append(ShardTask(spec, fold, tuple(image_ids[start : start + shard_size]),
                                   str(shard_path), fingerprint))
    if not tasks:
        raise EvaluationError(f"{dataset} split {split!r} under {root} holds no samples")
    pending = [task for task in tasks if _read_shard(Path(task.path), fingerprint) is None]
    total = sum(len(task.image_ids) for task in tasks)
    with tqdm(total=total, initial=total - sum(len(t.image_ids) for t in pending),
              unit="image", desc=f"evaluate {dataset}", disable=not progress) as bar:
        for task, _ in map_tasks(run_shard, pending, scheduler=scheduler):
            bar.update(len(task.image_ids))
    write_json_atomic(output, _summarise(tasks, parameters, data, fingerprint))
    return json.loads(output.read_text())


def _summarise(tasks: list[ShardTask], parameters: dict, data: dict, fingerprint: str) -> dict:
    threshold = REPORT_THRESHOLDS[parameters["dataset"]]
    shards = [(task.fold, _read_shard(Path(task.path), fingerprint)) for task in tasks]
    models = {json.dumps(shard["model"], sort_keys=True) for _, shard in shards}
    if len(models) != 1:
        raise EvaluationError(f"shards were scored by different models: {sorted(models)}")
    fold_results, resampled_by_fold, per_sample = [], [], []
    for fold in parameters["folds"]:
        records = [r for in_fold, shard in shards if in_fold == fold for r in shard["records"]]
        counts = np.array([record["counts"] for record in records], dtype=np.int64)
        class_ids = [record["class_id"] for record in records]
        image_ids = [record["image_id"] for record in records]
        scores = benchmark_scores(counts, class_ids)
        point = reported_scores(scores, threshold)
        resampled_by_fold.append((point, bootstrap_resamples(
            counts, class_ids, image_ids, threshold, seed=parameters["seed"]
        )))
        best = reported_indices(scores, "best")
        fold_results.append({
            "fold": fold, **point, "n": scores["n"], "n_classes": scores["n_classes"],
            "n_images": len(set(image_ids)),
            "best": {name: {"value": scores[name][index], "threshold": float(THRESHOLDS[index])}
                     for name, index in best.items()},
            "curves": {"thresholds": THRESHOLDS.tolist(),
                       **{name: scores[name] for name in ("miou", "fgiou", "biniou")}},
            "pr_curve": scores["pr_curve"],
        })
        report_index = threshold_index(threshold)
        per_sample += [
            {"fold": fold, "image_id": r["image_id"], "sample_id": r["sample_id"],
             "class_id": r["class_id"], "iou": _plain_iou(np.asarray(r["counts"][report_index]))}
            for r in records
        ]
    point = {name: _fold_mean([p[name] for p, _ in resampled_by_fold])
             for name in resampled_by_fold[0][0]}
    resampled = {name: np.mean([r[name] for _, r in resampled_by_fold], axis=0) for name in point}
    n = sum(fold["n"] for fold in fold_results)
    model = json.loads(models.pop())
    row = paper_row(parameters["dataset"], parameters["shots"])
    undefined = undefined_resamples(resampled)
    return {
        **{name: (estimate.as_dict() if estimate else
                  {"mean": None, "n": n, "ci_low": None, "ci_high": None})
           for name, estimate in estimates(point, resampled, n).items()},
        "n": n,
        "n_images": len({r["image_id"] for r in per_sample}),
        "threshold": threshold,
        "best": {name: _fold_mean([fold["best"][name]["value"] for fold in fold_results])
                 for name in fold_results[0]["best"]},
        "undefined_resamples": undefined,
        "folds": fold_results,
        "per_sample": per_sample,
        "per_sample_threshold": threshold,
        "dataset": data,
        "model": model,
        "parameters": parameters,
        "paper": None if row is None else {"label": row.label, "metrics": row.metrics},
        "caveats": caveats(row, model=parameters["model"], split=parameters["split"],
                           folds=parameters["folds"], data=data)
        + undefined_notes(point, undefined, len(next(iter(resampled.values())))),
        "provenance": {**provenance(seed=parameters["seed"]), **model},
        "fingerprint": fingerprint,
    }


def _fold_mean(values: list[float | None]) -> float | None:
    """The mean over folds, None when any fold's value is undefined."""
    return None if any(value is None for value in values) else float(np.mean(values))


def undefined_notes(point: dict[str, float | None], undefined: dict[str, int],
                    resamples: int) -> list[str]:
    """Sentences on metrics that are undefined on the data or in some bootstrap resamples
    (no threshold predicts any pixel there: the model predicts nothing on those images)."""
    notes = []
    for name in point:
        label = METRIC_LABELS[name]
        if point[name] is None:
            notes.append(f"{label} is undefined: no threshold predicts any pixel on these data")
        elif undefined.get(name):
            notes.append(f"{label} is undefined in {undefined[name]} of {resamples} bootstrap "
                         f"resamples (no pixel predicted on the images they draw); its interval "
                         f"is over the other {resamples - undefined[name]}")
    return notes


def _plain_iou(counts: np.ndarray) -> float:
    """tp / (tp + fp + fn) without smoothing; 1.0 when target and prediction are both empty."""
    tp, fp, fn, _ = (int(value) for value in counts)
    return 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)
