"""What a study notebook calls and what it leaves: start/finish, parameters, results files,
the output directory they live in and the record of a run."""

from clipseg_lib.experiments.budget import image_gflop, sample_for_budget, support_gflop
from clipseg_lib.study.case_progress import progress
from clipseg_lib.study.notebook import (
    finish,
    mask_threshold,
    record_parameters,
    scene_size,
    seed_everything,
    start,
)

__all__ = [
    "finish", "image_gflop", "mask_threshold", "progress", "record_parameters", "sample_for_budget",
    "scene_size", "seed_everything", "start", "support_gflop",
]
