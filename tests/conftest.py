"""Fixtures shared by every tier (fixtures only: shared helpers and constants are in tests/helpers.py).

Integration tests talk to a real Kafka-protocol broker and a real Redis. By default the session starts the
embedded ones (Apache Kafka, or Tansu with ``TRACKER_EMBEDDED_BROKER=tansu``, and redis-server, or a 3-master
Redis Cluster of it with ``TRACKER_EMBEDDED_REDIS=cluster``: make test-cluster) on free loopback ports; with
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` set, the suite runs against those instead. Each test gets its own
namespace (topic, group and Redis key prefix), so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings as hypothesis_settings

from tests.helpers import BROKER, REPLAY_SECRET
from tracker.kafka import Producer, ensure_topics
from tracker.local.embedded import EmbeddedStack
from tracker.settings import Settings
from tracker.store import Store

# The property tests explore new examples on every local run; on CI (CI=true) they replay the same ones, so a
# run there never fails on an example no run before it met (a rare find belongs to a local run, where it can be
# looked at, as the escaped surrogate pair of test_parse_properties was).
hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    hypothesis_settings.load_profile("ci")


def _dump_asyncio_tasks() -> None:
    """Print every event loop's pending tasks with their stacks: what a hung test waits for (pytest-timeout
    dumps the threads only, and a hung test's threads all sit in a selector or a lock)."""
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]
    print(f"\n+++ asyncio tasks of {len(loops)} open event loop(s), before the timeout +++", file=sys.stderr)
    for loop in loops:
        for task in list(asyncio.all_tasks(loop)):
            print(f"--- {task.get_name()}: {task!r}"[:500], file=sys.stderr)
            task.print_stack(limit=12, file=sys.stderr)


@pytest.fixture(autouse=True)
def _asyncio_tasks_dumped_before_a_timeout(request) -> Iterator[None]:
    """Ten seconds before pytest-timeout's limit, print the asyncio tasks (set up first, torn down last: the
    dump also covers a hang in another fixture's teardown, as a TestClient's lifespan shutdown once did)."""
    marker = request.node.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker and marker.args else float(request.config.getini("timeout") or 0)
    if limit <= 10:
        yield
        return
    timer = threading.Timer(limit - 10, _dump_asyncio_tasks)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@pytest.fixture(scope="session")
def infra(tmp_path_factory) -> Iterator[Settings]:
    """Settings pointing at a running broker and Redis for the whole session."""
    stack = EmbeddedStack(Settings.from_env().replace(data_dir=str(tmp_path_factory.mktemp("infra"))))
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
async def settings(infra: Settings) -> Settings:
    """Settings in a fresh namespace, with its topics created."""
    namespaced = infra.replace(namespace=f"t{uuid.uuid4().hex[:10]}.", retry_backoff_ms=20, replay_secret=REPLAY_SECRET)
    if BROKER == "tansu":
        # Tansu does not act on LeaveGroup: a validator that stopped holds its partitions until its session
        # ends, and the next one waits that long (10 s by default). Short sessions keep hand-overs short.
        namespaced = namespaced.replace(kafka_session_timeout_ms=3000)
    await ensure_topics(namespaced)
    return namespaced


@pytest.fixture
async def store(settings: Settings):
    async with Store(settings) as opened:
        yield opened


@pytest.fixture
async def producer(settings: Settings):
    async with Producer(settings) as opened:
        yield opened
