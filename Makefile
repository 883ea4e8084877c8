# Two commands for a new machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,slack,appstore,googleplay,analysis]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/iap-flow demo --db demo.db --fresh

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check iap_flow adapters bots tests examples benchmarks
	$(BIN)/ruff format --check iap_flow adapters bots tests examples benchmarks

# adapters/ and bots/ install as iap_flow.adapters / iap_flow.bots; mypy cannot follow the
# editable install's import hook, so it checks a tree of symlinks laid out as installed.
typecheck: $(STAMP)
	rm -rf build/mypy && mkdir -p build/mypy
	cp -rs $(CURDIR)/iap_flow build/mypy/iap_flow
	cp -rs $(CURDIR)/adapters build/mypy/iap_flow/adapters
	if [ -d bots ]; then cp -rs $(CURDIR)/bots build/mypy/iap_flow/bots; fi
	cd build/mypy && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --strict iap_flow $(CURDIR)/tests/typing

unit: $(STAMP)
	$(BIN)/pytest -q

# The PostgreSQL benchmarks read IAP_FLOW_BENCH_POSTGRES_URL (or IAP_FLOW_TEST_POSTGRES_URL);
# `benchmarks/table.py` runs them all and prints the README's Performance table.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/table.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/slack_ack.py

docs: $(STAMP)
	mkdir -p build && $(BIN)/iap-flow docs --out build/PROCESS.md

clean:
	rm -rf $(VENV) build demo.db demo.db-wal demo.db-shm demo.notifications.jsonl .pytest_cache .mypy_cache .ruff_cache
