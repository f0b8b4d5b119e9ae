"""One of each kind of ping through the real broker and Redis: DLQ bytes and headers, positions, counters."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers import subprocess_env, value_of
from tests.integration.kafka_helpers import header, read_topic, validate_until_idle
from tracker import constants as c
from tracker.models import OutRecord

pytestmark = pytest.mark.integration


def _ping(partner_id="courier-1", lat=12.9716, lon=77.5946, ts=None, **extra) -> bytes:
    doc = {"partner_id": partner_id, "lat": lat, "lon": lon, "ts": ts or int(time.time() * 1000), **extra}
    return json.dumps(doc).encode()


async def test_each_kind_lands_where_it_should(settings, store, producer):
    now = int(time.time() * 1000)
    good_a = _ping("courier-a", ts=now - 2000, vehicle="bike")
    good_a2 = _ping("courier-a", lat=12.97165, ts=now - 1000, vehicle="bike")
    good_b = _ping("courier-b", lat=12.95, lon=77.62, ts=now - 500)
    bad = {
        b"not json at all": "malformed_payload",
        _ping("courier-c", lat=95.0): "invalid_coordinates",
        _ping("courier-c", lat=12.30, lon=76.64): "outside_service_area",
        _ping("courier-c", ts=now - 600_000): "stale_timestamp",
        _ping("courier-c", ts=now + 600_000): "future_timestamp",
        _ping("courier-c", ts="soon"): "invalid_timestamp",
        json.dumps({"lat": 12.97, "lon": 77.59, "ts": now}).encode(): "missing_partner_id",
    }
    stream = [
        OutRecord(value=good_a, key=b"courier-a"),
        OutRecord(value=good_a, key=b"courier-a"),
        OutRecord(value=good_a2, key=b"courier-a"),
        OutRecord(value=good_b, key=b"courier-b"),
    ]
    stream += [OutRecord(value=raw, key=b"courier-c", headers=(("origin", b"test"),)) for raw in bad]
    stream.append(OutRecord(value=_ping("courier-a", ts=now - 1500, vehicle="bike"), key=b"courier-a"))  # out of order
    await producer.flush()
    for future in await producer.send_many(settings.location_topic, stream):
        await future

    totals = await validate_until_idle(settings)

    assert totals["accepted"] == 3
    assert totals["duplicates"] == 1
    assert totals["rejected"] == len(bad) + 1
    counters = await store.counters()
    assert counters["accepted"] + counters["duplicates"] + counters["rejected"] == len(stream)
    assert counters["rejected:out_of_order"] == 1

    dead = await read_topic(settings, settings.dlq_topic, expect=len(bad) + 1)
    by_value = {record.value: record for record in dead}
    for raw, reason in bad.items():
        record = by_value[raw]  # original bytes, unchanged
        assert header(record, c.H_REASON) == reason
        assert header(record, "origin") == "test"  # original headers kept
        assert record.key == b"courier-c"
        assert header(record, c.H_ORIGINAL_TOPIC) == settings.location_topic
        assert int(header(record, c.H_ORIGINAL_OFFSET)) >= 0
        assert header(record, c.H_GROUP) == settings.validator_group
        assert header(record, c.H_VALIDATOR) == settings.validator_id
        assert header(record, c.H_DETAIL)
        assert abs(int(header(record, c.H_REJECTED_AT)) - now) < 60_000
    last_dead = dead[-1] if dead[-1].key == b"courier-a" else by_value[stream[-1].value]
    assert header(last_dead, c.H_REASON) == "out_of_order"

    latest = json.loads(await store.position_json("courier-a"))
    assert (latest["lat"], latest["ts"]) == (12.97165, now - 1000)
    assert [point[0] for point in await store.trail("courier-a")] == [now - 1000, now - 2000]
    assert await store.position_json("courier-c") is None

    positions = await read_topic(settings, settings.positions_topic, expect=3)
    assert sorted(json.loads(value_of(r))["id"] for r in positions) == ["courier-a", "courier-a", "courier-b"]


async def test_an_exact_resend_after_a_restart_is_still_a_duplicate(settings, store, producer):
    # The second validator knows the courier's last fix only from Redis, so the coordinates must come back
    # from Redis bit for bit (digits that a 14-digit round trip would lose).
    now = int(time.time() * 1000)
    ping = _ping("courier-d", lat=12.971600000000001, lon=77.59460000000001, ts=now - 1000, speed=0.30000000000000004)
    for future in await producer.send_many(settings.location_topic, [OutRecord(value=ping, key=b"courier-d")]):
        await future
    assert (await validate_until_idle(settings))["accepted"] == 1
    for future in await producer.send_many(settings.location_topic, [OutRecord(value=ping, key=b"courier-d")]):
        await future
    second = await validate_until_idle(settings)

    assert (second["accepted"], second["duplicates"], second["rejected"]) == (0, 1, 0)
    assert (await store.counters())["duplicates"] == 1
    assert await store.trail("courier-d") == [[now - 1000, 12.971600000000001, 77.59460000000001, 0.30000000000000004]]


@pytest.mark.parametrize("command", ["validate", "gateway"])
def test_a_partition_count_other_than_the_topics_is_refused_in_one_line(settings, command):
    # The topic has settings.location_partitions partitions; the process is told another count.
    env = subprocess_env(settings) | {"TRACKER_LOCATION_PARTITIONS": str(settings.location_partitions + 4)}
    done = subprocess.run(
        [sys.executable, "-m", "tracker", command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        f"tracker {command}: {settings.location_topic} has {settings.location_partitions} partitions but "
        f"TRACKER_LOCATION_PARTITIONS is {settings.location_partitions + 4}: set it to "
        f"{settings.location_partitions} (couriers' keys in Redis are found by partition)"
    )
    assert "Traceback" not in done.stderr
