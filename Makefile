# Two commands: `make study` runs the whole study, `make test` runs every test.
# Each creates or updates the project's virtual environment (.venv) when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; a GPU user sets e.g. TORCH_SPEC="torch==2.13.0" with their index.
TORCH_SPEC ?= torch==2.13.0
MODEL ?= mini
OUTPUT_DIR ?= results
# Notebooks run at once (each in its own process); DTYPE=bfloat16 for CPUs with bf16 units.
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 1)
DTYPE ?=
RUN_OPTIONS = --model $(MODEL) --output-dir $(OUTPUT_DIR) --jobs $(JOBS) $(if $(DTYPE),--dtype $(DTYPE))
STAMP := $(VENV)/.installed

.PHONY: study quick test test-fast lint benchmark playground setup notebooks

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

study: $(STAMP)
	$(PY) -m clipseg_lib run $(RUN_OPTIONS)

quick: $(STAMP)
	$(PY) -m clipseg_lib run $(RUN_OPTIONS) --quick

lint: $(STAMP)
	$(PY) -m ruff check --no-cache .
	$(VENV)/bin/lint-imports --no-cache

# nbval executes the notebooks, whose output_dir is ../results: it runs a temporary copy of
# notebooks/ (beside a link to data/), and Hypothesis keeps its files there too, so that
# `make test` writes nothing outside temporary dirs. nbval checks that every notebook runs and
# prints what it printed (numbers sanitized); the results files the notebooks write are then
# checked against data/reference within their declared tolerances (tests/test_reproduction.py).
test: lint
	@copy=$$(mktemp -d) && trap 'rm -rf "$$copy"' EXIT && \
	cp -R notebooks "$$copy/notebooks" && ln -s "$(CURDIR)/data" "$$copy/data" && \
	PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY="$$copy/.hypothesis" \
	CLIPSEG_NOTEBOOK_RESULTS="$$copy/results" \
	$(PY) -m pytest -c pyproject.toml --rootdir . -p no:cacheprovider \
		tests "$$copy/notebooks" --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg

# The edit-test loop, about two minutes on two cores: lint, the tests not marked `slow` (those
# run notebooks, train, load full-size models or drive a browser) and nbval over one notebook,
# the conclusion, re-drawn from the reference results (a temporary copy: nothing is written
# here). `make test` stays the full suite.
test-fast: lint
	@copy=$$(mktemp -d) && trap 'rm -rf "$$copy"' EXIT && \
	mkdir "$$copy/notebooks" "$$copy/results" && ln -s "$(CURDIR)/data" "$$copy/data" && \
	cp notebooks/10_conclusion.ipynb "$$copy/notebooks/" && \
	cp data/reference/*.json "$$copy/results/" && rm "$$copy/results/conclusion.json" && \
	PYTHONDONTWRITEBYTECODE=1 HYPOTHESIS_STORAGE_DIRECTORY="$$copy/.hypothesis" \
	$(PY) -m pytest -c pyproject.toml --rootdir . -p no:cacheprovider -m "not slow" \
		tests "$$copy/notebooks" --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg

# Maintainers: re-execute every committed notebook in order, as `make test` runs them (a
# temporary copy beside data/, one fresh results folder); the executed notebooks replace
# notebooks/*.ipynb and their results files become data/reference/, what `make test` and
# `clipseg-study verify` compare results with.
notebooks: $(STAMP)
	@copy=$$(mktemp -d) && trap 'rm -rf "$$copy"' EXIT && \
	cp -R notebooks "$$copy/notebooks" && ln -s "$(CURDIR)/data" "$$copy/data" && \
	(cd "$$copy/notebooks" && for notebook in [0-9][0-9]_*.ipynb; do \
		echo "$$notebook" && "$(CURDIR)/$(PY)" -m papermill --no-progress-bar \
			--log-level WARNING "$$notebook" "$$notebook" || exit 1; done) && \
	cp "$$copy"/notebooks/[0-9][0-9]_*.ipynb notebooks/ && \
	rm -rf data/reference && mkdir data/reference && \
	cp "$$copy"/results/*.json data/reference/

benchmark: $(STAMP)
	$(PY) -m benchmarks.run

playground: $(STAMP)
	$(VENV)/bin/voila notebooks/11_playground.ipynb --port 8866
