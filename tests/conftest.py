"""Fixtures shared by every tier.

Integration tests talk to a real Kafka-protocol broker and a real Redis. By default the session starts the
embedded ones (Tansu and redis-server from their wheels) on free loopback ports; with
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` set, the suite runs against those instead. Each test gets its own
namespace (topic, group and Redis key prefix), so tests never see each other's records.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tracker.embedded import EmbeddedStack
from tracker.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


BROKER = os.environ.get("TRACKER_TEST_BROKER", "embedded")


@pytest.fixture(scope="session")
def infra(tmp_path_factory) -> Settings:
    """Settings pointing at a running broker and Redis for the whole session.

    ``TRACKER_TEST_BROKER=apache`` (``make test-kafka``) runs the same tests on a real single-node Apache
    Kafka 4.x started from Maven Central jars (tests/infra/apache_kafka.py).
    """
    base = Settings.from_env().replace(data_dir=str(tmp_path_factory.mktemp("infra")))
    cluster = None
    if BROKER == "apache" and not base.kafka_bootstrap_servers:
        from tests.infra.apache_kafka import ApacheKafkaCluster, java_and_maven

        reason = java_and_maven()
        if reason:
            if os.environ.get("CI") == "true":
                pytest.fail(f"TRACKER_TEST_BROKER=apache on CI, but {reason}")
            pytest.skip(f"Apache Kafka tier skipped: {reason}")
        cluster = ApacheKafkaCluster(1).start()
        base = base.replace(kafka_bootstrap_servers=cluster.bootstrap_servers, kafka_idempotence=True)
    stack = EmbeddedStack(base)
    try:
        yield stack.start()
    finally:
        stack.stop()
        if cluster is not None:
            cluster.stop()


@pytest.fixture
async def settings(infra: Settings) -> Settings:
    """Settings in a fresh namespace, with its topics created."""
    from tracker.kafka import ensure_topics

    namespaced = infra.replace(namespace=f"t{uuid.uuid4().hex[:10]}.", retry_backoff_ms=20)
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
