"""The study machinery: notebook start/finish, results files, the runner and the report."""

from clipseg_lib.study.notebook import finish, seed_everything, start

__all__ = ["finish", "seed_everything", "start"]
