# Tessera — every install step lives here, so a fresh machine with Python 3.11,
# Node 20 and npm gets from `git clone` to a running system with one command.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Both arch folders go on PATH: node_modules may not exist yet when make starts.
ANVIL_BIN := $(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(CURDIR)/node_modules/@foundry-rs/anvil-linux-arm64/bin

# Environment set once for every target (see ../shared/TOOLCHAIN.md).
export PATH := $(ANVIL_BIN):$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_ZERO_COPY_TORCH_TENSORS := 1
export PYTHONDONTWRITEBYTECODE := 1

SLITHER_STAMP := .venv-slither/.installed
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
SOLC_LINK := .solcx/solc-v0.8.37
BUILD_STAMP := build/.compiled

.PHONY: help setup test demo lint format bench fuzz compile clean

help:
	@echo "make demo   - set up what is missing, then run the whole protocol locally"
	@echo "make test   - set up what is missing, then run the whole test suite"
	@echo "make lint   - ruff check + ruff format --check + solhint"
	@echo "make bench  - gas, training and pipeline benchmarks (print their figures; the pipeline run takes ~28 min on 2 cores)"
	@echo "make fuzz   - deep invariant fuzzing of the contracts (1,000,000 calls; prints calls, reverts, wall time)"

setup: $(PY_STAMP) $(NODE_STAMP) $(SOLC_LINK) $(BUILD_STAMP)

$(PY_STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(SOLC_LINK): scripts/solc-shim.js $(NODE_STAMP)
	@mkdir -p .solcx
	ln -sf ../scripts/solc-shim.js $@
	@$@ --version | grep -q 'Version: 0.8.37'

$(BUILD_STAMP): $(PY_STAMP) $(SOLC_LINK) $(shell find contracts -name "*.sol")
	$(BIN)/brownie compile
	@touch $@

compile: $(BUILD_STAMP)

test: setup
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

demo: setup
	$(BIN)/tessera demo $(DEMO_ARGS)

# slither has its own venv: its web3/eth-* pins would break brownie's.
$(SLITHER_STAMP):
	@test -x .venv-slither/bin/python || $(PYTHON) -m venv .venv-slither || python3 -m venv .venv-slither
	.venv-slither/bin/pip install --quiet "slither-analyzer==0.11.6"
	@touch $@

lint: $(PY_STAMP) $(NODE_STAMP) $(SOLC_LINK) $(SLITHER_STAMP)
	$(BIN)/ruff check agents tests scripts bench
	$(BIN)/ruff format --check agents tests scripts bench
	npx --no-install solhint --max-warnings 0 'contracts/**/*.sol'
	.venv-slither/bin/python scripts/slither_check.py

format: $(PY_STAMP)
	$(BIN)/ruff check --fix agents tests scripts bench
	$(BIN)/ruff format agents tests scripts bench

bench: setup
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/training.py
	nice -n 10 $(BIN)/python bench/pipeline.py

# The CI profile (>= 20,000 calls) runs inside `make test` (tests/forge/test_invariant_fuzz.py).
fuzz: setup
	nice -n 10 $(BIN)/python scripts/fuzz.py --profile deep $(FUZZ_ARGS)

clean:
	rm -rf build .solcx demo-out reports
