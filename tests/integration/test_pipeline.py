"""The pipeline end to end on the real broker and Redis: a seeded simulation with every kind of bad ping."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import pytest

from simulator import SimConfig
from simulator.run import run_simulation
from tests.integration.kafka_helpers import header, read_topic, validate_until_idle
from tracker import constants as c
from tracker.kafka import Consumer, ensure_topics
from tracker.models import Reason
from tracker.validator import run_validator
from tracker.geo import load_service_area

pytestmark = pytest.mark.integration

INJECTABLE = {r.value for r in Reason} - {"processing_failed"}


def latest_good_by_courier(records) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for record in records:
        if header(record, c.H_SIM_EXPECT) is None:
            doc = json.loads(record.value)
            if doc["partner_id"] not in latest or doc["ts"] > latest[doc["partner_id"]]["ts"]:
                latest[doc["partner_id"]] = doc
    return latest


async def assert_pipeline_outcome(settings, store, stats, *, allow_dlq_redeliveries: bool = False):
    """Identity, DLQ contents and Redis positions for a finished run; returns DLQ redelivery count."""
    counters = await store.counters()
    assert counters.get("accepted", 0) + counters.get("rejected", 0) + counters.get("duplicates", 0) \
        == stats.produced
    assert counters.get("accepted", 0) == stats.good
    assert counters.get("duplicates", 0) == stats.duplicates
    for reason, count in stats.bad_by_reason.items():
        assert counters.get(f"rejected:{reason}", 0) == count, reason

    originals = await read_topic(settings, settings.location_topic, expect=stats.produced)
    assert len(originals) == stats.produced
    by_position = {(r.partition, r.offset): r for r in originals}
    dead = await read_topic(settings, settings.dlq_topic, idle_s=3)
    distinct = {}
    for record in dead:
        where = (int(header(record, c.H_ORIGINAL_PARTITION)), int(header(record, c.H_ORIGINAL_OFFSET)))
        original = by_position[where]
        assert record.value == original.value and record.key == original.key  # bytes unchanged
        assert header(record, c.H_REASON) == header(original, c.H_SIM_EXPECT)
        assert header(record, c.H_SIM_EXPECT) == header(original, c.H_SIM_EXPECT)  # original headers kept
        for name in (c.H_DETAIL, c.H_ORIGINAL_TOPIC, c.H_ORIGINAL_TIMESTAMP, c.H_GROUP, c.H_VALIDATOR,
                     c.H_REJECTED_AT):
            assert header(record, name), name
        distinct[where] = record
    assert len(distinct) == stats.bad
    redelivered = len(dead) - len(distinct)
    if not allow_dlq_redeliveries:
        assert redelivered == 0

    latest = latest_good_by_courier(originals)
    positions = await store.positions_json(sorted(latest))
    for (partner_id, doc), raw in zip(sorted(latest.items()), positions):
        assert raw is not None, partner_id
        stored = json.loads(raw)
        assert (stored["ts"], stored["lat"], stored["lon"]) == (doc["ts"], doc["lat"], doc["lon"]), partner_id
    return redelivered


async def test_seeded_run_every_code_lands_in_the_dlq(settings, store, producer):
    config = SimConfig(couriers=200, count=6000, bad_rate=0.15, duplicate_rate=0.01, seed=20261126, burst=True)
    stats = await run_simulation(settings, config, producer)
    assert stats.produced >= 5000
    assert stats.bad / stats.produced >= 0.10
    assert set(stats.bad_by_reason) == INJECTABLE
    assert stats.duplicates > 0

    totals = await validate_until_idle(settings)
    assert totals["consumed"] == stats.produced

    await assert_pipeline_outcome(settings, store, stats)


async def test_two_validators_split_the_partitions(settings, store, producer):
    area = load_service_area(None)
    assignments = [set(), set()]
    processed = [set(), set()]
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = []
    for index in range(2):
        member = settings.replace(validator_id=f"validator-{index}")
        tasks.append(asyncio.create_task(run_validator(
            member, area, stops[index],
            on_assign=lambda parts, i=index: assignments[i].__init__(parts),
            on_batch=lambda result, i=index: processed[i].update(p for _, p in result.commit))))
        await asyncio.sleep(0.5)
    for _ in range(300):
        if all(assignments) and not (assignments[0] & assignments[1]) \
                and assignments[0] | assignments[1] == set(range(settings.location_partitions)):
            break
        await asyncio.sleep(0.1)
    assert assignments[0] and assignments[1], assignments
    assert not assignments[0] & assignments[1]
    assert assignments[0] | assignments[1] == set(range(settings.location_partitions))

    stats = await run_simulation(settings, SimConfig(couriers=120, count=3000, bad_rate=0.1, seed=5, burst=True),
                                 producer)
    for _ in range(600):
        counters = await store.counters()
        if sum(counters.get(k, 0) for k in ("accepted", "rejected", "duplicates")) >= stats.produced:
            break
        await asyncio.sleep(0.1)
    for stop in stops:
        stop.set()
    totals = await asyncio.gather(*tasks)

    assert processed[0] <= assignments[0] and processed[1] <= assignments[1]
    assert processed[0] and processed[1]
    assert totals[0]["consumed"] > 0 and totals[1]["consumed"] > 0
    assert totals[0]["consumed"] + totals[1]["consumed"] == stats.produced
    await assert_pipeline_outcome(settings, store, stats)


async def test_readers_of_just_created_topics_log_no_errors(infra, caplog):
    # A leader named in metadata may not serve its partition yet; a reader's first ListOffsets then fails
    # and aiokafka logs it at ERROR. ensure_topics waits until every new partition is served.
    caplog.set_level(logging.ERROR, logger="aiokafka")
    for _ in range(3):
        fresh = infra.replace(namespace=f"t{uuid.uuid4().hex[:10]}.")
        await ensure_topics(fresh)
        async with Consumer(fresh, [fresh.location_topic, fresh.positions_topic], group_id=None,
                            start="latest") as reader:
            await reader.poll(timeout_ms=300)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
