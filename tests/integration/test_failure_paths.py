"""Failure paths of the validator on the real broker and Redis: a fenced write (another member applied
part of the partition) and Redis refusing writes through every retry (processing_failed)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis as redis_sync

from tests.helpers import eventually
from tests.integration.kafka_helpers import header, read_topic
from tracker import constants as c
from tracker.geo import load_service_area
from tracker.kafka import Producer, ensure_topics
from tracker.models import OutRecord
from tracker.store import PartitionKeys, Store
from tracker.validator import run_validator

pytestmark = pytest.mark.integration


def pings(partner_id: str, count: int, start_ms: int) -> list[OutRecord]:
    return [
        OutRecord(
            json.dumps(
                {
                    "partner_id": partner_id,
                    "lat": 12.95 + i * 1e-5,
                    "lon": 77.6,
                    "ts": start_ms + i * 1000,
                    "vehicle": "bike",
                }
            ).encode(),
            partner_id.encode(),
        )
        for i in range(count)
    ]


@pytest.fixture
async def one_partition(infra):
    settings = infra.replace(
        namespace=f"f{uuid.uuid4().hex[:8]}.", location_partitions=1, max_batch=10, retry_backoff_ms=10
    )
    await ensure_topics(settings)
    return settings


async def test_fenced_slices_are_dropped_and_read_again_from_redis_progress(one_partition):
    settings = one_partition
    async with Producer(settings) as producer:
        await asyncio.gather(
            *await producer.send_many(
                settings.location_topic, pings("courier-f", 100, int(time.time() * 1000) - 100_000)
            )
        )
    progress_key = PartitionKeys.of(settings.redis_prefix, 0).progress + settings.location_topic
    client = redis_sync.Redis.from_url(settings.redis_url)

    def another_member_applied_up_to_29(partitions: set[int]) -> None:
        # The validator has just read progress -1; pretend another member then applied offsets 0-29.
        client.hset(progress_key, "0", "29")

    totals = await run_validator(
        settings, load_service_area(None), asyncio.Event(), idle_exit_s=2, on_assign=another_member_applied_up_to_29
    )
    client.close()
    async with Store(settings) as store:
        counters = await store.counters()
        assert (await store.progress(settings.location_topic, [0]))[0] == 99
    # Offsets 30-99 applied by us, exactly once; 0-29 left to "the other member".
    assert counters["accepted"] == 70
    assert totals["accepted"] == 70


async def test_redis_refusing_writes_dead_letters_processing_failed_then_recovers(one_partition):
    settings = one_partition.replace(retry_attempts=2)
    client = redis_sync.Redis.from_url(settings.redis_url)
    stop = asyncio.Event()
    validator = asyncio.create_task(run_validator(settings, load_service_area(None), stop))
    now = int(time.time() * 1000)
    try:
        async with Producer(settings) as producer:
            client.config_set("maxmemory-policy", "noeviction")
            client.config_set("maxmemory", "1")  # every write is refused: OOM
            await asyncio.gather(
                *await producer.send_many(settings.location_topic, pings("courier-p", 5, now - 20_000))
            )
            failed = await read_topic(settings, settings.dlq_topic, expect=5, timeout_s=60)
            client.config_set("maxmemory", "0")
            await asyncio.gather(*await producer.send_many(settings.location_topic, pings("courier-q", 3, now - 5_000)))
            async with Store(settings) as store:
                latest = json.loads(
                    await eventually(
                        lambda: store.position_json("courier-q"), timeout_s=20, what="courier-q's position"
                    )
                )
    finally:
        client.config_set("maxmemory", "0")
        client.close()
        stop.set()
        totals = await validator
    assert len(failed) == 5
    assert {header(r, c.H_REASON) for r in failed} == {"processing_failed"}
    assert {header(r, c.H_ATTEMPTS) for r in failed} == {"2"}
    assert all("OOM" in header(r, c.H_DETAIL) for r in failed)
    assert latest["ts"] == now - 5_000 + 2000  # the validator carried on once Redis took writes again
    assert totals["rejected:processing_failed"] == 5 and totals["accepted"] == 3
