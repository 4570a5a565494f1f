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
# Tools from npm (package.json, locked by package-lock.json): the buf CLI that lints
# protos/ and checks them for breaking changes (buf.yaml, scripts/check_protos.sh).
NODE_STAMP := node_modules/.installed
# Browser tests drive Debian's chromium (never a browser downloaded by Playwright), with
# a font that has Chinese glyphs, so the dashboard's screenshots show its labels.
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-microhei.ttc
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# e.g. `make run RUN_FLAGS=--full-speed` or `RUN_FLAGS=--no-demo`.
RUN_FLAGS ?=

.PHONY: setup proto run test test-unit test-integration lint static-checks bench reliability clean

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

# npm ci installs exactly the lock file (and empties node_modules first, stamp included).
# --ignore-scripts: buf's optional post-install step only swaps its node launcher for
# the native binary; the launcher runs that same binary (@bufbuild/buf-linux-x64 etc.).
$(NODE_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(CHROMIUM) $(CJK_FONT):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-wqy-microhei

run: setup
	$(BIN)/chuhai-platform run $(RUN_FLAGS)

# The checks that need no running infrastructure, cheapest first: Python lint, the
# protobuf contracts (buf lint, breaking changes against the previous commit), then
# the architecture's import contracts ([tool.importlinter] in pyproject.toml).
static-checks: setup $(NODE_STAMP)
	$(BIN)/ruff check .
	scripts/check_protos.sh
	$(BIN)/lint-imports --no-logo

# The fault-injection suite runs last, on its own, so its report table shows in the log.
test: static-checks $(CHROMIUM) $(CJK_FONT)
	$(BIN)/python -m pytest -q --ignore=tests/reliability
	$(MAKE) --no-print-directory reliability

# Faults under load (docs/operations.md): prints the report and writes
# tests/reliability/results.json; fails on any missing write, double count or difference.
reliability: setup
	$(BIN)/python -m pytest -q -s tests/reliability

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

# Every figure of issue 12 against its target; `make bench BENCH_FLAGS=--quick` skips
# the full-speed demo (many minutes) and measures smaller loads.
bench: setup
	$(BIN)/python -m bench $(BENCH_FLAGS)

lint: static-checks
	$(BIN)/ruff format --check .

clean:
	rm -rf gen $(VENV) var .pytest_cache node_modules .import_linter_cache
