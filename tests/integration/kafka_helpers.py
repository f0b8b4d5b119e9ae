"""Small helpers for integration tests: read a topic back, run a validator in-process until idle."""

from __future__ import annotations

import asyncio
import time

from fuzz.wire import RawProducer
from tracker.geo import load_service_area
from tracker.kafka import Consumer
from tracker.models import OutRecord, Record
from tracker.settings import Settings
from tracker.validator import run_validator


async def read_topic(
    settings: Settings, topic: str, *, expect: int | None = None, idle_s: float = 2.0, timeout_s: float = 60.0
) -> list[Record]:
    """Every record of ``topic`` from the beginning: stops at ``expect`` records, or after ``idle_s`` quiet.

    We never ask the broker for end offsets: Tansu can report the base offset of the last
    batch as "latest" (docs/contract.md, "Brokers"), so "read to the end" means "read until nothing more arrives".
    """
    records: list[Record] = []
    async with Consumer(settings, [topic], group_id=None, start="earliest") as consumer:
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            polled = await consumer.poll(timeout_ms=200)
            batch = [r for rs in polled.values() for r in rs]
            if batch:
                records.extend(batch)
                quiet_since = time.monotonic()
            if expect is not None and len(records) >= expect:
                break
            if expect is None and time.monotonic() - quiet_since >= idle_s:
                break
    return records


async def validate_until_idle(settings: Settings, idle_s: float = 2.0, **kwargs):
    """Run a validator in-process on ``settings`` until it has had nothing to read for ``idle_s``; its totals."""
    return await run_validator(
        settings, load_service_area(settings.service_area_file), asyncio.Event(), idle_exit_s=idle_s, **kwargs
    )


def header(record: Record, name: str) -> str:
    """The value of ``record``'s header ``name`` as text; the test fails when it has none."""
    for key, value in record.headers:
        if key == name and value is not None:
            return value.decode()
    raise AssertionError(f"no header {name!r} in {record.headers!r}")


async def produce_with_raw_header_key(
    settings: Settings, topic: str, partition: int, records: list[OutRecord], raw_key_of: dict[str, bytes]
) -> None:
    """Produce ``records`` to one partition in one batch, with the header names in ``raw_key_of`` written as
    the raw bytes it maps them to (no Kafka client writes a header name that is not UTF-8, but a broker
    stores whatever bytes it is sent; the batch is encoded by the fuzz package's :mod:`fuzz.wire`)."""
    raw = [
        (record.key, record.value, [(raw_key_of.get(name, name), value) for name, value in record.headers])
        for record in records
    ]
    assert settings.kafka_bootstrap_servers
    async with RawProducer(settings.kafka_bootstrap_servers, idempotent=settings.kafka_idempotence) as producer:
        await (await producer.send(topic, partition, raw, time.time_ns() // 1_000_000))
