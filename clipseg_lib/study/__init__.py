"""The study machinery: notebook start/finish, results files, the runner and the report."""

from clipseg_lib.study.budget import image_gflop, sample_for_budget, support_gflop
from clipseg_lib.study.notebook import (
    finish,
    mask_threshold,
    record_parameters,
    scene_size,
    seed_everything,
    start,
)

__all__ = [
    "finish", "image_gflop", "mask_threshold", "record_parameters", "sample_for_budget",
    "scene_size", "seed_everything", "start", "support_gflop",
]
