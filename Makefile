# deepatoms: two entry points, each creates .venv from scratch if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo_run

.PHONY: demo test test-slow docs lint format clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	PATH="$(abspath $(VENV))/bin:$$PATH" bash examples/demo.sh $(DEMO_DIR)

test: $(VENV)/.installed
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q

test-slow: $(VENV)/.installed
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -q -m slow

docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.installed
	$(VENV)/bin/ruff format --check src tests benchmarks docs_hooks
	$(VENV)/bin/ruff check src tests benchmarks docs_hooks

format: $(VENV)/.installed
	$(VENV)/bin/ruff format src tests benchmarks docs_hooks
	$(VENV)/bin/ruff check --fix src tests benchmarks docs_hooks

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache site
