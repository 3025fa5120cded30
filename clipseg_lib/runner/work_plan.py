"""What each study notebook will compute, from its parameters: the runner's work model.

One function per notebook (`WORK_MODELS`, keyed by stem) restates the notebook's own
sampling (`affordable_sample` with the notebook's ``gflop_per_case``) and its loops as
counts: cases (the questions its loops answer, each scene or photo with its prompts, as
`study.progress` counts them), image encodings (`encode_image`, and the images
`predict` encodes itself), support-image embeddings and decoder passes (one per
image-prompt pair); training notebooks add training samples. A notebook missing from the
table is planned as its start-up alone. `tests/test_run_plan.py` checks the counts against
the work a run records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clipseg_lib.datasets.export import DEFAULT_IMAGES
from clipseg_lib.experiments import mitigations, tasks
from clipseg_lib.experiments.architecture import input_sizes
from clipseg_lib.experiments.budget import affordable_sample, image_gflop, support_gflop
from clipseg_lib.experiments.cases import FULL_SIZE_INPUT, by_image, load_cases
from clipseg_lib.finetune.failure_study import FAILURES, GROUPS
from clipseg_lib.model.segmenter import Segmenter


@dataclass(frozen=True)
class NotebookWork:
    """What one notebook computes: `cases` judged; `images` encoded (their GFLOP in
    `image_gflop`, which differs from images x the model's per-image GFLOP where a notebook
    encodes at other sizes); `supports` embedded; `decodes` (image, prompt) decoder passes;
    `training_samples` forward and backward passes of a fine-tuning."""

    cases: int = 0
    images: int = 0
    image_gflop: float = 0.0
    supports: int = 0
    decodes: int = 0
    training_samples: int = 0

    @property
    def encodings(self) -> int:
        """Backbone runs: images and support images."""
        return self.images + self.supports


def _severe(levels: list[int]) -> int:
    return sum(level > 0 for level in levels)


def _photos(segmenter: Segmenter, parameters: Mapping[str, Any], notebook: Path,
            *, with_mask: bool = False) -> int:
    """Photos (distinct images of the cases file) a notebook adds: none for a model that only
    knows the synthetic world (`cases_for_model`) or a notebook given another dataset."""
    if segmenter.image_size < FULL_SIZE_INPUT or parameters.get("dataset", "world") != "world":
        return 0
    folder = notebook.parent
    cases = load_cases(folder / parameters["cases_file"], folder / parameters["images_dir"])
    return len(by_image([case for case in cases if case.mask is not None or not with_mask]))


def _sample(parameters: Mapping[str, Any], photos: int, gflop_per_case: float,
            gflop_per_photo: float | None = None) -> tuple[int, int]:
    return affordable_sample(
        parameters["n_cases"], photos, budget_gflop=parameters.get("budget_gflop"),
        gflop_per_case=gflop_per_case, gflop_per_photo=gflop_per_photo,
    )


def architecture_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """00: every case at every input size."""
    sizes = input_sizes(segmenter, parameters.get("larger_input_size"))
    per_case = sum(image_gflop(segmenter, size) for size in sizes)
    n, _ = _sample(parameters, 0, per_case)
    return NotebookWork(n, n * len(sizes), n * per_case, 0, n * len(sizes))


def three_tasks_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """01: a scene per task and case, a support image per one-shot case, then the photos."""
    per_image, count = image_gflop(segmenter), len(tasks.TASK_QUESTIONS)
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        count * per_image + support_gflop(segmenter), per_image)
    images = count * n + photos
    return NotebookWork(images, images, images * per_image, n, images)


def distorted_images_work(parameters: Mapping, segmenter: Segmenter,
                          notebook: Path) -> NotebookWork:
    """02: each image clean and at every distortion and non-zero severity."""
    views = 1 + len(parameters["distortions"]) * _severe(parameters["severities"])
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        views * image_gflop(segmenter))
    images = (n + photos) * views
    return NotebookWork(n + photos, images, images * image_gflop(segmenter), 0, images)


def distorted_prompts_work(parameters: Mapping, segmenter: Segmenter,
                           notebook: Path) -> NotebookWork:
    """03: one image per case, a support per engineering variant and distorted cell."""
    supports = len(parameters["engineering_variants"])
    supports += len(parameters["distortions"]) * _severe(parameters["severities"])
    n, photos = _sample(
        parameters, _photos(segmenter, parameters, notebook, with_mask=True),
        image_gflop(segmenter) + supports * support_gflop(segmenter),
    )
    cases = n + photos
    return NotebookWork(cases, cases, cases * image_gflop(segmenter), cases * supports,
                        cases * supports)


def extract_layers_work(parameters: Mapping, segmenter: Segmenter,
                        notebook: Path) -> NotebookWork:
    """04: one encoding per image, decoded with every layer triple (and the two references)."""
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        image_gflop(segmenter))
    triples = {tuple(t) for t in parameters["layer_triples"]}
    triples |= {tuple(parameters["reference_layers"]), tuple(segmenter.extract_layers)}
    images = n + photos
    return NotebookWork(images, images, images * image_gflop(segmenter), 0,
                        images * len(triples))


def probe_pairs_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """05, 07: a probe scene and a control scene per case, one prompt each."""
    n, _ = _sample(parameters, 0, 2 * image_gflop(segmenter))
    return NotebookWork(2 * n, 2 * n, 2 * n * image_gflop(segmenter), 0, 2 * n)


def negation_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """06: one scene per case with its three prompts (X, not X, except X), then the photos."""
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        image_gflop(segmenter))
    images = n + photos
    return NotebookWork(images, images, images * image_gflop(segmenter), 0, 3 * images)


def absent_objects_work(parameters: Mapping, segmenter: Segmenter,
                        notebook: Path) -> NotebookWork:
    """08: a scene per group (absent/present x seen/unseen pair) and case, then the photos."""
    per_image = image_gflop(segmenter)
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        4 * per_image, per_image)
    images = 4 * n + photos
    return NotebookWork(4 * n + photos, images, images * per_image, 0, images)


def mitigations_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """09: six clean scenes per case (two held out for the gate), every view of every
    distorted scene of the augmentation cases, and per photo its clean and distorted views."""
    per_image, views = image_gflop(segmenter), len(mitigations.DEFAULT_TRANSFORMS)
    distorted = len(parameters["tta_distortions"]) * len(parameters["tta_severities"])
    per_photo = 1 + len(parameters["tta_distortions"]) * views
    n, photos = _sample(parameters, _photos(segmenter, parameters, notebook),
                        (6 + distorted * views) * per_image, per_photo * per_image)
    tta = min(parameters["n_tta_cases"], n)
    images = 6 * n + tta * distorted * views + photos * per_photo
    templates = len(parameters["templates"])
    decodes = 4 * n + 2 * n * templates + n * (2 + len(parameters["foreground_prompts"]))
    return NotebookWork(6 * n + tta * distorted + photos, images, images * per_image, 0,
                        decodes + tta * distorted * views + photos * per_photo)


def benchmarks_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """12: `evaluate` on the exported world (`DEFAULT_IMAGES` images) or a dataset (its
    ``limit``; the default export's size when none is given)."""
    images = min(parameters.get("limit") or DEFAULT_IMAGES, DEFAULT_IMAGES)
    if parameters.get("dataset_root"):
        images = parameters.get("limit") or DEFAULT_IMAGES
    return NotebookWork(images, images, images * image_gflop(segmenter), 0, images)


def finetuning_work(parameters: Mapping, segmenter: Segmenter, notebook: Path) -> NotebookWork:
    """13: per failure, ``steps`` batches of training, then every evaluation group scored
    before and after."""
    failures, per_image = len(FAILURES), image_gflop(segmenter)
    scored = failures * len(GROUPS) * parameters["n_cases"] * 2
    samples = failures * parameters["steps"] * parameters["batch_size"]
    return NotebookWork(failures * len(GROUPS) * parameters["n_cases"], scored,
                        scored * per_image, 0, scored, samples)


WorkModel = Callable[[Mapping[str, Any], Segmenter, Path], NotebookWork]
WORK_MODELS: dict[str, WorkModel] = {
    "00_architecture": architecture_work,
    "01_three_tasks": three_tasks_work,
    "02_distorted_images": distorted_images_work,
    "03_distorted_prompts": distorted_prompts_work,
    "04_extract_layers": extract_layers_work,
    "05_specific_word": probe_pairs_work,
    "06_negation": negation_work,
    "07_facial_expressions": probe_pairs_work,
    "08_absent_objects": absent_objects_work,
    "09_mitigations": mitigations_work,
    "12_benchmarks": benchmarks_work,
    "13_finetuning": finetuning_work,
}


def notebook_work(notebook: Path, parameters: Mapping[str, Any],
                  segmenter: Segmenter) -> NotebookWork:
    """The work `notebook` does with its effective `parameters` on `segmenter`'s model."""
    model = WORK_MODELS.get(notebook.stem)
    return NotebookWork() if model is None else model(parameters, segmenter, notebook)
