"""Benchmarks of clipseg_lib: `python -m benchmarks.run` (see benchmarks/run.py)."""
