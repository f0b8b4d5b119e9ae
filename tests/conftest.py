"""Fixtures shared by every tier.

Integration tests talk to a real Kafka-protocol broker and a real Redis. By default the session starts the
embedded ones (Apache Kafka, or Tansu with ``TRACKER_EMBEDDED_BROKER=tansu``, and redis-server) on free
loopback ports; with
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` set, the suite runs against those instead. Each test gets its own
namespace (topic, group and Redis key prefix), so tests never see each other's records.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tracker.local.embedded import EmbeddedStack
from tracker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
REPLAY_SECRET = "test-replay-secret"


# "kafka" (Apache Kafka, the default embedded broker, or any cluster given by KAFKA_BOOTSTRAP_SERVERS) or
# "tansu" (`make test-tansu`): the few tests that depend on broker behaviour branch on it.
BROKER = "kafka" if os.environ.get("KAFKA_BOOTSTRAP_SERVERS") else Settings.from_env().embedded_broker


@pytest.fixture(scope="session")
def infra(tmp_path_factory) -> Settings:
    """Settings pointing at a running broker and Redis for the whole session."""
    stack = EmbeddedStack(Settings.from_env().replace(data_dir=str(tmp_path_factory.mktemp("infra"))))
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
async def settings(infra: Settings) -> Settings:
    """Settings in a fresh namespace, with its topics created."""
    from tracker.kafka import ensure_topics

    namespaced = infra.replace(namespace=f"t{uuid.uuid4().hex[:10]}.", retry_backoff_ms=20,
                               replay_secret=REPLAY_SECRET)
    await ensure_topics(namespaced)
    return namespaced


@pytest.fixture
async def store(settings: Settings):
    from tracker.store import Store

    async with Store(settings) as opened:
        yield opened


@pytest.fixture
async def producer(settings: Settings):
    from tracker.kafka import Producer

    async with Producer(settings) as opened:
        yield opened


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``tracker`` child process that should use ``settings``' services."""
    from tracker.up import child_env

    return child_env(settings)
