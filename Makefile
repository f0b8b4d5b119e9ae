# The two commands a new user runs: `make run` (the live map on an embedded broker and Redis, with the
# simulator feeding it) and `make test`. Each sets up everything it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built

.PHONY: run test test-unit test-kafka kafka kafka3 bench setup frontend clean

run: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/tracker up

# Unit tests, then the integration and browser tests on the embedded broker (Tansu) and Redis.
test: $(STAMP) $(FRONTEND_STAMP)
	cd frontend && npm test --silent
	$(BIN)/python -m pytest -m "not apache_kafka" $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The same integration and browser tests on real Apache Kafka 4.x (jars from Maven Central, cached in
# ~/.cache/tracker), plus the launcher's own tests and the 3-broker failover test.
test-kafka: $(STAMP) $(FRONTEND_STAMP)
	TRACKER_TEST_BROKER=apache $(BIN)/python -m pytest tests/integration tests/browser tests/infra tests/apache $(PYTEST_ARGS)

# A real Apache Kafka on loopback for manual use (prints its bootstrap servers; Ctrl-C stops it).
kafka: $(STAMP)
	$(BIN)/python -m tests.infra.apache_kafka

kafka3: $(STAMP)
	$(BIN)/python -m tests.infra.apache_kafka --nodes 3

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
