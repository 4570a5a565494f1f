# Two commands do all set-up on a fresh machine: `make run` and `make test`.
# Every target is idempotent; a second call skips what is already done.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOS := $(shell find protos -name '*.proto')
# The protoc that compiles protos/ comes from the pinned grpcio-tools in the venv.
TOOLS_STAMP := $(VENV)/.tools-installed
GEN_STAMP := gen/.generated
INSTALL_STAMP := $(VENV)/.installed
# Browser tests drive Debian's chromium (never a browser downloaded by Playwright).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# e.g. `make run RUN_FLAGS=--full-speed` or `RUN_FLAGS=--no-demo`.
RUN_FLAGS ?=

.PHONY: setup proto run test test-unit test-integration lint bench clean

setup: $(INSTALL_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(TOOLS_STAMP): constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt grpcio-tools
	touch $@

# Stubs are generated, never committed and never edited by hand: gen/ is rebuilt
# whenever a .proto changes, so code and contracts cannot drift apart.
$(GEN_STAMP): $(PROTOS) $(TOOLS_STAMP) scripts/gen_protos.py
	$(BIN)/python scripts/gen_protos.py
	touch $@

proto: $(GEN_STAMP)

$(INSTALL_STAMP): pyproject.toml constraints.txt $(GEN_STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium

run: setup
	$(BIN)/chuhai-platform run $(RUN_FLAGS)

test: setup $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

bench: setup
	$(BIN)/python bench/outbox_bench.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf gen $(VENV) var .pytest_cache
