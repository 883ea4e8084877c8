# Two commands for a new machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck imports installed-tree unit bench docs clean reliability

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,slack,serve,appstore,googleplay,analysis,parquet,metrics,otel,http,webhooks,rabbitmq,redis]'
	rm -f $(VENV)/.installed-* && touch $@

# The demo needs only the core (no extra, no dev tools): its own small venv, without a pip
# of its own (the host's pip installs into it: `pip --python`, pip >= 22.3).
DEMO_VENV ?= .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

$(DEMO_STAMP): pyproject.toml
	test -x $(DEMO_VENV)/bin/python || $(PY) -m venv --without-pip $(DEMO_VENV)
	$(PY) -m pip --python $(DEMO_VENV)/bin/python install --quiet --disable-pip-version-check -e .
	rm -f $(DEMO_VENV)/.installed-* && touch $@

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/iap-flow demo --db demo.db --fresh

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

# The reliability suite at a bigger setting (CI runs it at scale 1 inside `make test`):
# more orders and SIGKILLs, more racing items, more fuzz examples. RELIABILITY_SCALE=N to tune.
RELIABILITY_SCALE ?= 5
reliability: $(STAMP)
	IAP_FLOW_RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(BIN)/pytest -q -s tests/reliability

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
	rm -rf $(VENV) $(DEMO_VENV) build demo.db demo.db-wal demo.db-shm demo.notifications.jsonl .pytest_cache .mypy_cache .ruff_cache
