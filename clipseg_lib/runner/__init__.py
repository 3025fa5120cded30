"""The notebook runner: runs the study's notebooks (papermill, one process each or a Dask
cluster), checks parameters and models first, expands grids and writes ``run.json``."""
