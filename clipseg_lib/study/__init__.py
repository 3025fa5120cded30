"""What a study notebook calls and what it leaves: start/finish, parameters, per-case
checkpoints, results files, the output directory they live in and the record of a run."""

from clipseg_lib.experiments.budget import image_gflop, sample_for_budget, support_gflop
from clipseg_lib.study.case_progress import progress
from clipseg_lib.study.checkpoints import checkpoints
from clipseg_lib.study.notebook import NotebookSession, record, seed_everything, start

__all__ = [
    "NotebookSession", "checkpoints", "image_gflop", "progress", "record", "sample_for_budget",
    "seed_everything", "start", "support_gflop",
]
