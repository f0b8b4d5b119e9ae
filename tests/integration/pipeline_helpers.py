"""What a finished pipeline run must show, checked the same way by every end-to-end test that runs one."""

from __future__ import annotations

import json

from tests.integration.kafka_helpers import header, read_topic
from tracker import constants as c
from tracker.store import Store


async def validated(store: Store) -> int:
    """How many pings the validators have accounted for: accepted + rejected + duplicates, in Redis."""
    counters = await store.counters()
    return sum(counters.get(name, 0) for name in ("accepted", "rejected", "duplicates"))


def latest_good_by_courier(records) -> dict[str, dict]:
    """partner_id -> the newest (by event time) ping among ``records`` that the simulator made good."""
    latest: dict[str, dict] = {}
    for record in records:
        if all(name != c.H_SIM_EXPECT for name, _ in record.headers):
            doc = json.loads(record.value)
            if doc["partner_id"] not in latest or doc["ts"] > latest[doc["partner_id"]]["ts"]:
                latest[doc["partner_id"]] = doc
    return latest


async def assert_pipeline_outcome(settings, store, stats, *, allow_dlq_redeliveries: bool = False):
    """Identity, DLQ contents and Redis positions for a finished run; returns DLQ redelivery count."""
    counters = await store.counters()
    assert counters.get("accepted", 0) + counters.get("rejected", 0) + counters.get("duplicates", 0) == stats.produced
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
        for name in (c.H_DETAIL, c.H_ORIGINAL_TOPIC, c.H_ORIGINAL_TIMESTAMP, c.H_GROUP, c.H_VALIDATOR, c.H_REJECTED_AT):
            assert header(record, name), name
        distinct[where] = record
    assert len(distinct) == stats.bad
    redelivered = len(dead) - len(distinct)
    if not allow_dlq_redeliveries:
        assert redelivered == 0

    latest = latest_good_by_courier(originals)
    positions = await store.positions_json(sorted(latest))
    for (partner_id, doc), raw in zip(sorted(latest.items()), positions, strict=True):
        assert raw is not None, partner_id
        stored = json.loads(raw)
        assert (stored["ts"], stored["lat"], stored["lon"]) == (doc["ts"], doc["lat"], doc["lon"]), partner_id
    return redelivered
