"""Small helpers for integration tests: read a topic back, run a validator in-process until idle."""

from __future__ import annotations

import asyncio
import time

from tracker.geo import load_service_area
from tracker.kafka import Consumer, OutRecord, Producer, Record
from tracker.settings import Settings
from tracker.validator import run_validator


async def read_topic(settings: Settings, topic: str, *, expect: int | None = None,
                     idle_s: float = 2.0, timeout_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` from the beginning: stops at ``expect`` records, or after ``idle_s`` quiet.

    We never ask the broker for end offsets: Tansu can report the base offset of the last
    batch as "latest" (DESIGN.md), so "read to the end" means "read until nothing more arrives".
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
    return await run_validator(settings, load_service_area(settings.service_area_file), asyncio.Event(),
                               idle_exit_s=idle_s, **kwargs)


def header(record: Record, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return value.decode()
    return None


async def produce_with_raw_header_key(settings: Settings, topic: str, partition: int, records: list[OutRecord],
                                      raw_key_of: dict[str, bytes]) -> None:
    """Produce ``records`` to one partition in one batch, with header names swapped for raw bytes afterwards.

    No Kafka client will write a header name that is not UTF-8 (the protocol says String), but the broker
    stores whatever bytes it gets. The batch is built with placeholder names of the same length, which are
    replaced in the built batch before its CRC is computed again. ``raw_key_of``: placeholder -> raw bytes.
    """
    from aiokafka.record.util import calc_crc32c

    for placeholder, raw in raw_key_of.items():
        if len(placeholder.encode()) != len(raw):
            raise ValueError("a placeholder and its raw header name must have the same length in bytes")
    async with Producer(settings) as producer:
        inner = producer._producer  # the aiokafka producer: this helper builds the batch by hand
        batch = inner.create_batch()
        for record in records:
            batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers))
        build = batch._build

        def patched_build():
            buffer = bytearray(build())
            for placeholder, raw in raw_key_of.items():
                buffer = buffer.replace(placeholder.encode(), raw)
            # v2 record batch: the CRC-32C at bytes 17-20 covers everything from the attributes (byte 21) on.
            buffer[17:21] = calc_crc32c(bytes(buffer[21:])).to_bytes(4, "big")
            return buffer

        batch._build = patched_build
        batch.close()
        await (await inner.send_batch(batch, topic, partition=partition))
