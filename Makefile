# The README's commands. `make quickstart` and `make test` set up a virtual environment first (CPU torch wheel).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; GPU users: `make setup TORCH="torch --index-url https://download.pytorch.org/whl/cu128"`.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup test test-fast quickstart clean

$(BIN)/mathalign: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(BIN)/mathalign

test: setup  ## every test, slow end-to-end runs included
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: setup  ## skip the end-to-end runs marked slow
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

quickstart: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/mathalign quickstart

clean:
	rm -rf $(VENV) runs .pytest_cache
