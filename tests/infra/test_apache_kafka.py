"""Smoke tests for the Apache Kafka 4.x launcher (tracker/local/apache_kafka.py), on one node they share.

The tests run in file order on one module-wide node: the first needs a cluster no group has used yet; the
last stops and restarts the node. A broker SIGKILLed under load in a 3-node cluster, with its restart, is
tests/apache/test_failover.py (the pipeline's identity across it, which includes "no record lost or doubled").

Skipped with a one-line reason when no Java 17+ runtime is found, except under ``CI=true`` where that fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.helpers import eventually
from tests.infra.infra_helpers import require_java
from tracker.kafka import Consumer, ensure_topics
from tracker.local.apache_kafka import ApacheKafkaCluster
from tracker.settings import Settings

pytestmark = pytest.mark.apache_kafka

PARTITIONS = 12


def _started(nodes: int):
    """A running cluster of ``nodes`` for one test; prints its start-up timings and memory."""
    require_java()
    with ApacheKafkaCluster(nodes=nodes) as cluster:
        t = cluster.timings
        rss = {i: f"{b / 2**20:.0f} MiB" for i, b in cluster.rss_bytes().items() if b}
        print(
            f"\n[apache-kafka {nodes} node(s)] classpath {t['classpath_s']:.2f}s, format {t['format_s']:.1f}s, "
            f"ready {t['ready_s']:.1f}s, total {t['start_total_s']:.1f}s; RSS {rss}"
        )
        yield cluster


@pytest.fixture(scope="module")
def kafka1():
    yield from _started(1)


async def _create_topic(bootstrap: str, topic: str, partitions: int, rf: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, rf)])
        described: list = []

        async def every_partition_led() -> bool:
            described[:] = await admin.describe_topics([topic])
            parts = described[0].get("partitions", []) if described else []
            return len(parts) == partitions and all(p["leader"] >= 0 for p in parts)

        # Creation is asynchronous: wait until every partition has a leader in the metadata.
        await eventually(
            every_partition_led,
            timeout_s=30,
            interval_s=0.2,
            what=f"leaders for topic {topic}",
            explain=lambda: f"last described: {described}",
        )
    finally:
        await admin.close()


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=30_000,
        retry_backoff_ms=100,
        metadata_max_age_ms=5_000,
    )


def _record(i: int) -> tuple[bytes, bytes]:
    return f"courier-{i % 97}".encode(), f"ping-{i}".encode()


async def _produce(producer: AIOKafkaProducer, topic: str, ids: range) -> None:
    futures = []
    for i in ids:
        key, value = _record(i)
        futures.append(await producer.send(topic, value, key=key))
    await asyncio.gather(*futures)


async def _consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0):
    """Consume ``topic`` in a fresh group until ``expected`` records arrived; return (values, end offsets)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"infra-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        metadata_max_age_ms=5_000,
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        per_partition: dict[int, int] = {}
        deadline = time.monotonic() + timeout_s
        while len(values) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for r in records:
                    values.append(r.value)
                    assert r.key == _record(int(r.value.split(b"-")[1]))[0]
                per_partition[tp.partition] = per_partition.get(tp.partition, 0) + len(records)
        await consumer.commit()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        end_by_p = {tp.partition: off for tp, off in ends.items()}
        # group offsets reached the log end wherever something was consumed
        for p in per_partition:
            assert committed[p] == end_by_p[p], (p, committed[p], end_by_p[p])
        return values, end_by_p
    finally:
        await consumer.stop()


async def test_a_fresh_cluster_takes_the_product_without_error_logs(kafka1: ApacheKafkaCluster, caplog) -> None:
    # On a brand-new cluster the offsets topic does not exist until a group first asks for its coordinator,
    # and new partitions are led before they are served; aiokafka retries both but logs them at ERROR.
    # ensure_topics (what `tracker up` and `tracker topics` run first) waits for both, quietly.
    caplog.set_level(logging.ERROR, logger="aiokafka")
    settings = Settings(kafka_bootstrap_servers=kafka1.bootstrap_servers)
    await ensure_topics(settings)
    async with Consumer(settings, [settings.location_topic], group_id=settings.validator_group) as member:
        await member.poll(timeout_ms=2000)
    async with Consumer(settings, [settings.positions_topic], group_id=None, start="latest") as reader:
        await reader.poll(timeout_ms=500)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []


async def test_single_node_produce_consume(kafka1: ApacheKafkaCluster) -> None:
    bootstrap = kafka1.bootstrap_servers
    topic = "infra-single"
    n = 1_000
    await _create_topic(bootstrap, topic, PARTITIONS, 1)

    producer = _producer(bootstrap)
    await producer.start()
    t = time.monotonic()
    try:
        await _produce(producer, topic, range(n))
    finally:
        await producer.stop()
    produce_s = time.monotonic() - t

    t = time.monotonic()
    values, ends = await _consume_all(bootstrap, topic, n)
    print(f"[apache-kafka 1 node] produced {n} in {produce_s:.2f}s, consumed in {time.monotonic() - t:.2f}s")
    assert sorted(values) == sorted(_record(i)[1] for i in range(n))
    assert sum(ends.values()) == n  # idempotent producer: no duplicates, offsets are exact
    assert sum(1 for v in ends.values() if v > 0) > 1  # keys really spread over partitions


async def test_a_single_node_stopped_and_restarted_keeps_its_port_and_records(kafka1: ApacheKafkaCluster) -> None:
    # What EmbeddedStack.stop_broker/start_broker rely on: a controlled shutdown, then the same port and data.
    # One idempotent producer lives through it, so its retries after the restart must not duplicate records.
    bootstrap = kafka1.bootstrap_servers
    topic = "infra-restart"
    before, after = 500, 500
    await _create_topic(bootstrap, topic, PARTITIONS, 1)
    producer = _producer(bootstrap)
    await producer.start()
    try:
        await _produce(producer, topic, range(before))
        t_stop = time.monotonic()
        await asyncio.to_thread(kafka1.terminate, 0)
        assert kafka1.running_nodes() == []
        await asyncio.to_thread(kafka1.restart, 0)
        restart_s = time.monotonic() - t_stop
        assert kafka1.bootstrap_servers == bootstrap
        await _produce(producer, topic, range(before, before + after))
    finally:
        await producer.stop()
    print(f"[apache-kafka 1 node] stopped and ready again in {restart_s:.1f}s")

    total = before + after
    values, ends = await _consume_all(bootstrap, topic, total)
    assert sorted(values) == sorted(_record(i)[1] for i in range(total))
    assert sum(ends.values()) == total
