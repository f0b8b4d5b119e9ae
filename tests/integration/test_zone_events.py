"""Zone events on the real broker and Redis: a courier driven across a zone boundary makes exactly one exit
and one enter, through the whole pipeline with every ping sent twice, when the events worker or the validator
is killed with SIGKILL between the two pings, and when a worker dies after its events are acknowledged but before its
state is applied (or another member applied the partition meanwhile); and a courier that stops sending
goes stale, then offline, with no fix."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import msgspec
import pytest
from starlette.applications import Starlette

from tests.helpers import BROKER, eventually, subprocess_env
from tests.integration.kafka_helpers import read_topic, validate_until_idle
from tracker.events import http as events_http
from tracker.events.decide import EVENT_TYPES
from tracker.events.index import EventFilters, EventIndex
from tracker.events.indexer import run_event_indexer
from tracker.events.metrics import EventMetrics
from tracker.events.worker import EventWorker, run_events
from tracker.events.zones import Zones
from tracker.geo import load_service_area
from tracker.kafka import Producer
from tracker.models import OutRecord, Position, Record
from tracker.settings import Settings

pytestmark = pytest.mark.integration

# /api/events/stats counts every type, the orders' too (none here).
NO_ORDER_EVENTS = {kind: 0 for kind in EVENT_TYPES if kind.startswith("order_")}

# Two zones side by side along lon 77.60, inside a service area around them.
WEST, EAST = "West", "East"
IN_WEST = (12.95, 77.599)  # (lat, lon), ~110 m from the shared edge
IN_EAST = (12.95, 77.601)


def _box(west: float, south: float, east: float, north: float) -> dict:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _area_file(tmp_path: Path) -> str:
    features = [
        {"type": "Feature", "properties": {"kind": "service_area"}, "geometry": _box(77.50, 12.90, 77.70, 13.00)},
        {"type": "Feature", "properties": {"kind": "zone", "name": WEST}, "geometry": _box(77.55, 12.92, 77.60, 12.98)},
        {"type": "Feature", "properties": {"kind": "zone", "name": EAST}, "geometry": _box(77.60, 12.92, 77.65, 12.98)},
    ]
    path = tmp_path / "zones.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return str(path)


@pytest.fixture
def zoned(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(service_area_file=_area_file(tmp_path), zone_dwell_s=0.0)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ping(partner_id: str, where: tuple[float, float], ts: int) -> OutRecord:
    value = json.dumps({"partner_id": partner_id, "lat": where[0], "lon": where[1], "ts": ts, "speed": 8.0})
    return OutRecord(value.encode(), partner_id.encode())


def _position(partner_id: str, where: tuple[float, float], ts: int) -> OutRecord:
    position = Position(partner_id, where[0], where[1], ts, ts + 5, speed=8.0)
    return OutRecord(msgspec.json.encode(position), partner_id.encode())


async def _produce(producer: Producer, topic: str, records: list[OutRecord]) -> None:
    await asyncio.gather(*await producer.send_many(topic, records))


def _in_time_order(events: list[tuple]) -> list[tuple]:
    return sorted(events, key=lambda e: (e[2], e[0], e[1] or ""))  # events at one time in no particular order


def _crossing(partner_id: str, first: int, second: int) -> list[tuple]:
    """What one crossing West -> East must leave in the index: (type, zone, ts, from, to)."""
    return _in_time_order(
        [
            ("status_change", None, first, "offline", "online"),
            ("zone_enter", WEST, first, None, None),
            ("zone_exit", WEST, second, None, None),
            ("zone_enter", EAST, second, None, None),
        ]
    )


async def _indexed(store, partner_id: str) -> list[tuple]:
    events = await EventIndex(store).list(EventFilters(partner=partner_id), limit=100)
    return _in_time_order([(e["type"], e["zone"], e["ts"], e["from"], e["to"]) for e in events])


async def _index_until_idle(settings: Settings, store, idle_s: float = 2.0):
    return await run_event_indexer(settings, store, asyncio.Event(), idle_exit_s=idle_s)


def _zones(settings: Settings) -> Zones:
    return Zones.of_area(load_service_area(settings.service_area_file))


async def test_a_crossing_through_the_pipeline_sent_twice_is_one_exit_and_one_enter(zoned, store, producer):
    now = _now_ms()
    first, second = now - 40_000, now - 20_000
    pings = [_ping("c1", IN_WEST, first), _ping("c1", IN_EAST, second)]
    await _produce(producer, zoned.location_topic, pings + pings)  # the same pings sent twice
    totals = await validate_until_idle(zoned)
    assert totals["accepted"] == 2  # the repeats: a duplicate and an out_of_order
    # and the positions produced a second time, as a validator that crashed before its Redis write does
    positions = await read_topic(zoned, zoned.positions_topic, expect=2)
    await _produce(producer, zoned.positions_topic, [OutRecord(p.value, p.key) for p in positions])

    decided, _ = await asyncio.gather(
        run_events(zoned, _zones(zoned), asyncio.Event(), idle_exit_s=2.0), _index_until_idle(zoned, store)
    )
    assert decided["consumed"] == 4 and decided["events:zone_exit"] == 1 and decided["events:zone_enter"] == 2
    assert await _indexed(store, "c1") == _crossing("c1", first, second)

    # The API, on the same index: filters, the JSON shape, bad input.
    app = Starlette(routes=events_http.routes)
    app.state.gateway = SimpleNamespace(store=store, settings=zoned)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        exits = (await client.get("/api/events", params={"partner": "c1", "type": "zone_exit"})).json()
        assert exits == [
            {
                "id": exits[0]["id"],
                "type": "zone_exit",
                "partner_id": "c1",
                "ts": second,
                "zone": WEST,
                "lat": IN_EAST[0],
                "lon": IN_EAST[1],
                "from": None,
                "to": None,
                "order_id": None,
            }
        ]
        in_east = (await client.get("/api/events", params={"zone": EAST})).json()
        assert [(e["type"], e["ts"]) for e in in_east] == [("zone_enter", second)]
        window = (await client.get("/api/events", params={"since": first + 1, "until": second})).json()
        assert sorted(e["type"] for e in window) == ["zone_enter", "zone_exit"]
        everything = (await client.get("/api/events")).json()
        assert [e["ts"] for e in everything] == [second, second, first, first]  # newest first
        assert len((await client.get("/api/events", params={"limit": 1})).json()) == 1
        assert (await client.get("/api/events", params={"partner": "nobody"})).json() == []
        assert (await client.get("/api/events", params={"type": "teleport"})).status_code == 400
        assert (await client.get("/api/events/stats")).json() == {
            "total": 4,
            "indexed": 4,
            "by_type": {"zone_enter": 2, "zone_exit": 1, "status_change": 1} | NO_ORDER_EVENTS,
        }
    metrics = EventMetrics()
    await metrics.refresh(store)
    assert metrics.by_type == {"zone_enter": 2, "zone_exit": 1, "status_change": 1}


async def test_sigkill_between_the_two_pings_still_one_exit_and_one_enter(zoned, store, producer):
    env = subprocess_env(zoned) | {"KAFKA_SESSION_TIMEOUT_MS": "6000"}
    command = [sys.executable, "-m", "tracker.events"]
    now = _now_ms()
    first, second = now - 40_000, now - 20_000
    # Popen only forks and execs; the test then watches the child from the loop.
    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: ASYNC220
    try:
        await _produce(producer, zoned.positions_topic, [_position("c1", IN_WEST, first)])

        async def entered() -> bool:
            return ("zone_enter", WEST, first, None, None) in await _indexed(store, "c1")

        await eventually(entered, timeout_s=60, what="the first ping's enter event, indexed")
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
    # The second ping, and both pings again (a phone that resent them, a validator that re-produced them).
    again = [_position("c1", IN_WEST, first), _position("c1", IN_EAST, second)]
    await _produce(producer, zoned.positions_topic, [_position("c1", IN_EAST, second), *again])
    successor = await asyncio.to_thread(
        subprocess.run, [*command, "--until-idle", "3"], env=env, capture_output=True, timeout=120
    )
    assert successor.returncode == 0, successor.stderr.decode()[-2000:]
    totals = json.loads(successor.stdout.decode().strip().splitlines()[-1])
    assert totals["events:zone_exit"] == 1 and totals["events:zone_enter"] == 1
    assert await _indexed(store, "c1") == _crossing("c1", first, second)
    produced = await read_topic(zoned, zoned.events_topic, idle_s=1)
    assert len({json.loads(r.value or b"")["id"] for r in produced}) == 4


@pytest.mark.broker_agnostic  # a validator's hand-over on Tansu is test_crash_recovery's there; CI time counts
async def test_the_validator_killed_with_sigkill_between_the_two_pings_still_one_exit_and_one_enter(
    zoned, store, producer
):
    """The whole pipeline from ``location-updates``: a validator and an events worker running, the validator
    SIGKILLed once the first ping's event is indexed, the second ping (and the first again, as a phone resends)
    judged by its successor, which also judges the resent first ping a duplicate. (A kill inside a batch, with
    positions produced but offsets not committed, is test_crash_recovery's subject; the positions it can
    re-produce are the first test's.)"""
    env = subprocess_env(zoned) | {"KAFKA_SESSION_TIMEOUT_MS": "6000"}
    validate = [sys.executable, "-m", "tracker", "validate"]
    now = _now_ms()
    first, second = now - 40_000, now - 20_000
    # Popen only forks and execs; the test then watches the children from the loop.
    validator = subprocess.Popen(validate, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: ASYNC220
    events = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "tracker.events"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        await _produce(producer, zoned.location_topic, [_ping("c1", IN_WEST, first)])

        async def entered() -> bool:
            return ("zone_enter", WEST, first, None, None) in await _indexed(store, "c1")

        await eventually(entered, timeout_s=60, what="the first ping's enter event, indexed")
        validator.send_signal(signal.SIGKILL)
        validator.wait(10)
        await _produce(producer, zoned.location_topic, [_ping("c1", IN_EAST, second), _ping("c1", IN_WEST, first)])
        successor = await asyncio.to_thread(
            subprocess.run, [*validate, "--until-idle", "3"], env=env, capture_output=True, timeout=120
        )
        assert successor.returncode == 0, successor.stderr.decode()[-2000:]

        async def crossed() -> bool:
            return await _indexed(store, "c1") == _crossing("c1", first, second)

        await eventually(crossed, timeout_s=60, what="one exit and one enter, indexed")
    finally:
        for process in (validator, events):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
    assert events.returncode == 0, (events.stderr.read() if events.stderr else b"").decode()[-2000:]
    produced = await read_topic(zoned, zoned.events_topic, idle_s=1)
    assert len({json.loads(r.value or b"")["id"] for r in produced}) == 4
    assert await _indexed(store, "c1") == _crossing("c1", first, second)


def _polled(records: list[Record]) -> dict[tuple[str, int], list[Record]]:
    polled: dict[tuple[str, int], list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        polled.setdefault((record.topic, record.partition), []).append(record)
    return polled


async def test_a_worker_that_dies_after_the_acks_or_is_fenced_leaves_each_event_once(zoned, store, producer):
    """The windows a SIGKILL rarely hits, driven step by step: events acknowledged but states never applied
    (a crash), and a member whose view is stale while another applies the same partition (a zombie)."""
    zones, now = _zones(zoned), _now_ms()
    first, second = now - 40_000, now - 20_000
    await _produce(producer, zoned.positions_topic, [_position(f"c{i}", IN_WEST, first) for i in range(5)])
    crossing = await read_topic(zoned, zoned.positions_topic, expect=5)
    partitions = [(zoned.positions_topic, p) for p in range(zoned.positions_partitions)]

    committed: list[dict] = []

    async def commit(offsets: dict[tuple[str, int], int]) -> None:
        committed.append(offsets)  # no consumer group here: the test hands each worker its records

    def worker() -> EventWorker:
        member = EventWorker(zoned, zones, store, producer)
        member.commit = commit
        return member

    # 1. A worker decides the first pings and its events are acknowledged; it dies before applying them.
    doomed = worker()
    await doomed.on_assign(partitions)
    await doomed.produce(doomed.decide(_polled(crossing)).events)
    # 2. Its successor reads the same records from the same state: the same events, produced again.
    successor, zombie = worker(), worker()
    await successor.on_assign(partitions)
    await zombie.on_assign(partitions)  # a member that still thinks it owns them
    assert len(await successor.handle(_polled(crossing))) == 10
    # 3. The zombie decides them too, on its stale view: refused (fenced), reloaded, nothing decided twice.
    await zombie.handle(_polled(crossing))
    assert zombie.totals["fenced"] >= 1

    await _produce(producer, zoned.positions_topic, [_position(f"c{i}", IN_EAST, second) for i in range(5)])
    everything = await read_topic(zoned, zoned.positions_topic, expect=10)
    later = [r for r in everything if r not in crossing]
    assert len(await zombie.handle(_polled(later))) == 10  # reloaded: it carries on from what was applied
    await successor.handle(_polled(later))  # now the successor's view is the stale one
    assert successor.totals["fenced"] >= 1

    produced = await read_topic(zoned, zoned.events_topic, idle_s=1)
    assert len(produced) > 20  # the same events, more than once on the wire
    await _index_until_idle(zoned, store, idle_s=1)
    for i in range(5):
        assert await _indexed(store, f"c{i}") == _crossing(f"c{i}", first, second)


@pytest.mark.skipif(BROKER != "kafka", reason="the quiet-time clock needs true end offsets (TRACKER_REPORT_LAG)")
async def test_a_courier_that_stops_sending_goes_stale_then_offline_with_no_fix(zoned, store, producer):
    # Short thresholds: stale after 1 s without a fix, offline after 2 s; a fix may be 1 s late at most.
    quick = zoned.replace(stale_after_s=1.0, offline_after_s=2.0, max_age_s=1.0, max_skew_s=0.0)
    sent = _now_ms()
    await _produce(producer, quick.positions_topic, [_position("c1", IN_WEST, sent)])
    decided, _ = await asyncio.gather(
        run_events(quick, _zones(quick), asyncio.Event(), idle_exit_s=5.0), _index_until_idle(quick, store, 6.0)
    )
    assert decided["events:status_change"] == 3
    statuses = [(e[3], e[4], e[2]) for e in await _indexed(store, "c1") if e[0] == "status_change"]
    assert statuses == [
        ("offline", "online", sent),
        ("online", "stale", sent + 1000),
        ("stale", "offline", sent + 2000),
    ]
