"""The pipeline end to end on the real broker and Redis: a seeded simulation with every kind of bad ping."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from simulator import SimConfig
from simulator.run import run_simulation
from tests.helpers import eventually
from tests.integration.kafka_helpers import validate_until_idle
from tests.integration.pipeline_helpers import assert_pipeline_outcome, validated
from tracker.geo import load_service_area
from tracker.kafka import Consumer, ensure_topics
from tracker.models import Reason
from tracker.validator import run_validator

pytestmark = pytest.mark.integration

INJECTABLE = {r.value for r in Reason} - {"processing_failed"}


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
    assignments: list[set[int]] = [set(), set()]
    processed: list[set[int]] = [set(), set()]
    stops = [asyncio.Event(), asyncio.Event()]
    everything = set(range(settings.location_partitions))
    tasks = []
    for index in range(2):
        member = settings.replace(validator_id=f"validator-{index}")
        held, done = assignments[index], processed[index]

        def on_assign(parts, held: set[int] = held) -> None:
            held.clear()
            held.update(parts)

        def on_batch(result, done: set[int] = done) -> None:
            done.update(p for _, p in result.commit)

        def assigned(held: set[int] = held) -> set[int]:
            return held

        tasks.append(
            asyncio.create_task(run_validator(member, area, stops[index], on_assign=on_assign, on_batch=on_batch))
        )
        await eventually(assigned, what=f"validator-{index}'s first assignment")

    def split() -> bool:
        return (
            all(assignments) and not assignments[0] & assignments[1] and assignments[0] | assignments[1] == everything
        )

    await eventually(split, what="the two validators to split the partitions")
    assert assignments[0] and assignments[1], assignments
    assert not assignments[0] & assignments[1]
    assert assignments[0] | assignments[1] == everything

    stats = await run_simulation(
        settings, SimConfig(couriers=120, count=3000, bad_rate=0.1, seed=5, burst=True), producer
    )

    async def all_validated() -> bool:
        return await validated(store) >= stats.produced

    await eventually(all_validated, timeout_s=60, what=f"all {stats.produced} pings validated")
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
        async with Consumer(
            fresh, [fresh.location_topic, fresh.positions_topic], group_id=None, start="latest"
        ) as reader:
            await reader.poll(timeout_ms=300)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR] == []
