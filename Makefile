# Two commands: `make study` runs the whole study, `make test` runs every test.
# Each creates or updates the project's virtual environment (.venv) when needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch; a GPU user sets e.g. TORCH_SPEC="torch==2.13.0" with their index.
TORCH_SPEC ?= torch==2.13.0
MODEL ?= mini
OUTPUT_DIR ?= results
STAMP := $(VENV)/.installed

.PHONY: study quick test lint benchmark playground setup

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

study: $(STAMP)
	$(PY) -m clipseg_lib run --model $(MODEL) --output-dir $(OUTPUT_DIR)

quick: $(STAMP)
	$(PY) -m clipseg_lib run --model $(MODEL) --output-dir $(OUTPUT_DIR) --quick

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

benchmark: $(STAMP)
	$(PY) -m benchmarks.run

playground: $(STAMP)
	$(VENV)/bin/voila notebooks/11_playground.ipynb --port 8866
