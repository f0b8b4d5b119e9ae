# The two commands a new user runs: `make run` (the live map on an embedded broker and Redis, with the
# simulator feeding it) and `make test`. Each sets up everything it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built

.PHONY: run test test-unit test-integration bench setup frontend clean

run: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/tracker up

test: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

setup: $(STAMP) $(FRONTEND_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json $(shell find frontend/src -type f 2>/dev/null) frontend/index.html
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $@

frontend: $(FRONTEND_STAMP)

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist var .pytest_cache
