# Two commands for a new machine: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,slack]'
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)
	$(BIN)/iap-flow demo --db demo.db --fresh

test: $(STAMP) lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check iap_flow adapters tests examples benchmarks
	$(BIN)/ruff format --check iap_flow adapters tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict iap_flow adapters tests/typing

unit: $(STAMP)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/lifecycle.py
	$(BIN)/python benchmarks/queries.py

docs: $(STAMP)
	$(BIN)/iap-flow docs --out PROCESS.md

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm .pytest_cache .mypy_cache .ruff_cache
