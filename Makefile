# The two commands a new user runs: `make run` (the live map on an embedded broker and Redis, with the
# simulator feeding it) and `make test`. Each sets up everything it needs first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FRONTEND_STAMP := frontend/dist/.built

.PHONY: run test lint test-unit test-tansu test-cluster kafka kafka3 bench fuzz setup frontend clean

run: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/tracker up

# The lint gate first, then page and unit tests, then the integration and browser tests on the embedded Apache
# Kafka and Redis, the launcher's own tests and the 3-broker failover test (Kafka jars are fetched once into
# ~/.cache/tracker).
test: lint $(STAMP) $(FRONTEND_STAMP)
	cd frontend && npm test --silent
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Ruff's rules and its format check, then mypy; their settings are in pyproject.toml (`ruff format` fixes the
# format). The page's code gets no linter of its own: the build (esbuild) and `npm test` parse every file.
LINT_PATHS := tracker simulator bench fuzz tests
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy $(LINT_PATHS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# The integration tests again on the other embedded broker, Tansu: those whose subject is the broker's part
# (not the ones marked broker_agnostic: HTTP edges, the ingest, the review, Redis faults, history; nor the
# browser tests: what a page does does not depend on the broker under the gateway, and each starts a system).
test-tansu: $(STAMP) $(FRONTEND_STAMP)
	TRACKER_EMBEDDED_BROKER=tansu $(BIN)/python -m pytest tests/integration -m "not broker_agnostic" $(PYTEST_ARGS)

# The suites whose subject is what Redis holds again on an embedded 3-master Redis Cluster (same redis-server
# binary; tracker/local/redis_cluster.py): the accounting identity through a validator's SIGKILL, two
# validators sharing partitions, newer-wins in the apply script, history's reads, the expiry walk, each other
# script (the review index, the events' fold with a fenced worker, the device registry, the orders' states),
# and the key layout's unit tests (every script's keys in one slot). (SIGTERM's subject is the group's
# LeaveGroup, the broker's part: not repeated here.) CI runs it after the Tansu tier.
CLUSTER_TESTS := tests/unit/test_cluster_keys.py tests/integration/test_crash_recovery.py::test_sigkill_mid_run_keeps_the_identity \
	tests/integration/test_pipeline.py tests/integration/test_newer_wins_redis.py tests/integration/test_history.py \
	tests/integration/test_supervision.py::test_the_sweep_expires_couriers_silent_past_the_ttl_from_redis \
	tests/integration/test_review.py \
	tests/integration/test_zone_events.py::test_a_worker_that_dies_after_the_acks_or_is_fenced_leaves_each_event_once \
	tests/integration/test_ingest.py::test_tracker_devices_adds_lists_and_revokes \
	tests/integration/test_ingest.py::test_only_a_device_token_posts_and_only_as_its_own_courier \
	tests/integration/test_orders_events.py tests/integration/test_store_connections.py
test-cluster: $(STAMP)
	TRACKER_EMBEDDED_REDIS=cluster $(BIN)/python -m pytest $(CLUSTER_TESTS) $(PYTEST_ARGS)

# A real Apache Kafka on loopback for manual use (prints its bootstrap servers; Ctrl-C stops it).
kafka: $(STAMP)
	$(BIN)/python -m tracker.local.apache_kafka

kafka3: $(STAMP)
	$(BIN)/python -m tracker.local.apache_kafka --nodes 3

bench: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The fuzz corpus (100,000 payloads by default) through the live gateway and validators; fails unless every
# payload is accounted for and nothing stopped. FUZZ_ARGS="--payloads 5000 --seed 2", "--kinds deep_nesting".
fuzz: $(STAMP) $(FRONTEND_STAMP)
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

setup: $(STAMP) $(FRONTEND_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[embedded,test]'
	touch $@

$(FRONTEND_STAMP): frontend/package.json frontend/package-lock.json $(shell find frontend/src -type f 2>/dev/null) $(wildcard frontend/*.html) frontend/build.mjs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $@

frontend: $(FRONTEND_STAMP)

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist var .pytest_cache .ruff_cache .mypy_cache
