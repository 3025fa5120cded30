"""The study machinery: notebook start/finish, results files, the runner and the report."""

from clipseg_lib.study.notebook import finish, record_parameters, seed_everything, start

__all__ = ["finish", "record_parameters", "seed_everything", "start"]
