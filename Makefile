# kwil-sync: `make demo` runs the main job, `make test` checks everything.
# Both set themselves up (venv, pip, npm) and are safe to re-run.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DIR := tests/node
PY_STAMP := $(VENV)/.installed
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: setup test check lint typecheck pytest unit demo bench proto clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

lint: $(PY_STAMP)
	$(BIN)/ruff check .

typecheck: $(PY_STAMP)
	$(BIN)/mypy -p kwil_sync -p bench

# Two workers, a module each at a time (--dist loadfile keeps a module's fixtures in one
# process): the suite mostly waits on the servers it starts, so two halve its time even
# on two cores. PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= 2
pytest: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

# The quick loop (under 3 minutes): lint, types and the tests that need no service.
check: lint typecheck unit

unit: $(PY_STAMP)
	$(BIN)/pytest -q -m "not integration" $(PYTEST_ARGS)

demo: setup
	$(BIN)/kwil-sync demo $(DEMO_ARGS)

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

proto: $(PY_STAMP)
	$(BIN)/python -m kwil_sync.proto.generate

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules .mypy_cache .ruff_cache .pytest_cache
