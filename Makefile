# The two commands a user needs: `make run` and `make test`. Each sets up .venv itself, once:
# a second run with pyproject.toml unchanged installs nothing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch where there is no GPU. On a CUDA host: make TORCH_SPEC=torch ...
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup run test lint bench clean

help:
	@echo "make run    set up and start the model server, the bot and the scheduler"
	@echo "make test   set up and run the tests"
	@echo "make lint   ruff and mypy"
	@echo "make bench  run the benchmarks under bench/ (JSON into bench/results/)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e '.[dev]'
	@touch $@

setup: $(STAMP)
	$(BIN)/chatbot setup

run: setup
	$(BIN)/honcho start

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
