# Two commands for a new machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck imports installed-tree unit bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,slack,appstore,googleplay,analysis]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/iap-flow demo --db demo.db --fresh

test: $(STAMP) lint typecheck imports unit

lint: $(STAMP)
	$(BIN)/ruff check iap_flow adapters bots tests examples benchmarks
	$(BIN)/ruff format --check iap_flow adapters bots tests examples benchmarks

# adapters/ and bots/ install as iap_flow.adapters / iap_flow.bots; mypy and lint-imports
# cannot follow the editable install's import hook, so they check a tree of symlinks laid
# out as installed.
installed-tree: $(STAMP)
	rm -rf build/installed && mkdir -p build/installed
	cp -rs $(CURDIR)/iap_flow build/installed/iap_flow
	cp -rs $(CURDIR)/adapters build/installed/iap_flow/adapters
	if [ -d bots ]; then cp -rs $(CURDIR)/bots build/installed/iap_flow/bots; fi

typecheck: installed-tree
	cd build/installed && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --strict iap_flow $(CURDIR)/tests/typing

# The import rules ([tool.importlinter] in pyproject.toml).
imports: installed-tree
	cd build/installed && $(CURDIR)/$(BIN)/lint-imports --no-cache --no-logo $(CURDIR)/pyproject.toml

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/lifecycle.py
	$(BIN)/python benchmarks/queries.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/slack_ack.py
	$(BIN)/python benchmarks/report_1m.py

docs: $(STAMP)
	mkdir -p build && $(BIN)/iap-flow docs --out build/PROCESS.md

clean:
	rm -rf $(VENV) build demo.db demo.db-wal demo.db-shm demo.notifications.jsonl .pytest_cache .mypy_cache .ruff_cache
