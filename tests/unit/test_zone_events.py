"""Zone and status events (tracker/events/decide.py, zones.py): enter / exit / none across a zone boundary,
with and without dwell, with out-of-order and duplicate fixes, and the status transitions, as tables over
the pure fold. The same fold runs against the real broker and Redis in
tests/integration/test_zone_events.py."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace
from typing import cast

import pytest
import shapely
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tracker.events import http as events_http
from tracker.events.decide import (
    EVENT_TYPES,
    Courier,
    Event,
    Fix,
    Params,
    PartitionFold,
    event_id,
    on_fix,
)
from tracker.events.index import EventFilters
from tracker.events.metrics import EventMetrics
from tracker.events.worker import read_fix, read_state, stored
from tracker.events.zones import Zones
from tracker.models import Record
from tracker.settings import Settings, SettingsError
from tracker.status import Status, StatusThresholds

S = 1000  # ms
ONLINE, IDLE, STALE, OFFLINE = (status.value for status in Status)
MOVING, STILL = 5.0, 0.1
W, E = ("West",), ("East",)
NONE: tuple[str, ...] = ()

# Fixes as (ts, zones, speed); "advance" rows as ("clock", ms): event time passing with no fix.
Row = tuple


def fold(rows: list[Row], *, dwell_s: float = 0, partner: str = "c1") -> list[Event]:
    params = Params(dwell_ms=round(dwell_s * S))
    partition = PartitionFold(params)
    events: list[Event] = []
    for row in rows:
        if row[0] == "clock":
            events.extend(partition.advance_to(row[1]))
            continue
        ts, zones, *speed = row
        fix = Fix(partner, 12.9, 77.6, ts, speed[0] if speed else MOVING)
        events.extend(partition.on_fix(fix, zones))
    return events


def zone_events(events: list[Event]) -> list[tuple[str, str | None, int]]:
    return [(e.type, e.zone, e.ts) for e in events if e.type != "status_change"]


def status_events(events: list[Event]) -> list[tuple[str | None, str | None, int]]:
    return [(e.from_, e.to, e.ts) for e in events if e.type == "status_change"]


ENTER, EXIT = "zone_enter", "zone_exit"
CROSSING = [(ENTER, "West", 1 * S), (EXIT, "West", 2 * S), (ENTER, "East", 2 * S)]

# -- enter / exit / none, no dwell ----------------------------------------------------------------------------

NO_DWELL = {
    "stays inside: one enter, then nothing": ([(1 * S, W), (2 * S, W), (3 * S, W)], [(ENTER, "West", 1 * S)]),
    "never in a zone: nothing": ([(1 * S, NONE), (2 * S, NONE)], []),
    "crosses West -> East: exit and enter at the crossing fix": ([(1 * S, W), (2 * S, E)], CROSSING),
    "leaves into no zone": ([(1 * S, W), (2 * S, NONE)], [(ENTER, "West", 1 * S), (EXIT, "West", 2 * S)]),
    "duplicate fixes change nothing": ([(1 * S, W), (1 * S, W), (2 * S, E), (2 * S, E)], CROSSING),
    "the same fixes sent twice change nothing": ([(1 * S, W), (2 * S, E), (1 * S, W), (2 * S, E)], CROSSING),
    "a late fix from the old side is ignored": (
        [(1 * S, W), (3 * S, E), (2 * S, W)],
        [CROSSING[0], (EXIT, "West", 3 * S), (ENTER, "East", 3 * S)],
    ),
    "a late fix from the new side does not cross earlier": (
        [(1 * S, W), (3 * S, W), (2 * S, E)],
        [(ENTER, "West", 1 * S)],
    ),
    "same ts, other side: the first fix stands": ([(1 * S, W), (1 * S, E)], [(ENTER, "West", 1 * S)]),
    "back and forth: every crossing, in order": (
        [(1 * S, W), (2 * S, E), (3 * S, W)],
        [*CROSSING, (EXIT, "East", 3 * S), (ENTER, "West", 3 * S)],
    ),
    "overlapping zones: each on its own": (
        [(1 * S, ("A", "B")), (2 * S, ("B",)), (3 * S, ("B", "C"))],
        [(ENTER, "A", 1 * S), (ENTER, "B", 1 * S), (EXIT, "A", 2 * S), (ENTER, "C", 3 * S)],
    ),
}


@pytest.mark.parametrize(("rows", "expected"), NO_DWELL.values(), ids=NO_DWELL.keys())
def test_zone_events_without_dwell(rows, expected):
    assert zone_events(fold(rows)) == expected


# -- with a 10 s dwell ----------------------------------------------------------------------------------------

IN_WEST = [(0, W), (10 * S, W)]  # confirmed in West, stamped at its first fix
DWELL = {
    "confirmed after the dwell, stamped at the crossing": ([(0, W), (10 * S, W)], [(ENTER, "West", 0)]),
    "not confirmed before the dwell": ([(0, W), (9_999, W)], []),
    "crosses and stays: exit and enter at the crossing fix": (
        [*IN_WEST, (20 * S, E), (25 * S, E), (30 * S, E)],
        [(ENTER, "West", 0), (EXIT, "West", 20 * S), (ENTER, "East", 20 * S)],
    ),
    "crosses for less than the dwell: nothing": ([*IN_WEST, (20 * S, E), (29_999, E)], [(ENTER, "West", 0)]),
    "weaving along the boundary: nothing": (
        [*IN_WEST, (20 * S, E), (22 * S, W), (24 * S, E), (26 * S, W), (40 * S, W)],
        [(ENTER, "West", 0)],
    ),
    "a return resets the dwell": (
        [*IN_WEST, (20 * S, E), (22 * S, W), (24 * S, E), (33 * S, E), (34 * S, E)],
        [(ENTER, "West", 0), (EXIT, "West", 24 * S), (ENTER, "East", 24 * S)],
    ),
    "a fix back on the old side drops the crossing": (
        [*IN_WEST, (20 * S, E), (25 * S, W), (30 * S, E)],
        [(ENTER, "West", 0)],
    ),
    "... but one older than the courier's clock is ignored": (
        [*IN_WEST, (20 * S, E), (26 * S, E), (25 * S, W), (30 * S, E)],
        [(ENTER, "West", 0), (EXIT, "West", 20 * S), (ENTER, "East", 20 * S)],
    ),
    "duplicates and the same fixes twice change nothing": (
        [*IN_WEST, (20 * S, E), (20 * S, E), *IN_WEST, (30 * S, E), (20 * S, E), (30 * S, E)],
        [(ENTER, "West", 0), (EXIT, "West", 20 * S), (ENTER, "East", 20 * S)],
    ),
}


@pytest.mark.parametrize(("rows", "expected"), DWELL.values(), ids=DWELL.keys())
def test_zone_events_with_a_dwell(rows, expected):
    assert zone_events(fold(rows, dwell_s=10)) == expected


def test_a_crossing_is_placed_where_the_courier_crossed():
    params = Params(dwell_ms=10 * S)
    state, _ = on_fix(None, Fix("c1", 1.0, 1.0, 0), W, params)
    state, _ = on_fix(state, Fix("c1", 1.0, 1.0, 10 * S), W, params)
    state, events = on_fix(state, Fix("c1", 2.0, 2.0, 20 * S), E, params)
    assert events == []
    state, events = on_fix(state, Fix("c1", 3.0, 3.0, 30 * S), E, params)
    assert [(e.type, e.zone, e.ts, e.lat, e.lon) for e in events] == [
        (EXIT, "West", 20 * S, 2.0, 2.0),
        (ENTER, "East", 20 * S, 2.0, 2.0),
    ]
    assert state.zones == E and state.pending == ()


# -- status transitions ---------------------------------------------------------------------------------------

STATUS = {
    "a new courier comes online": ([(1 * S, NONE, MOVING)], [(OFFLINE, ONLINE, 1 * S)]),
    "a new courier standing still is idle": ([(1 * S, NONE, STILL)], [(OFFLINE, IDLE, 1 * S)]),
    "online -> idle -> online at the fixes": (
        [(1 * S, NONE, MOVING), (2 * S, NONE, STILL), (3 * S, NONE, STILL), (4 * S, NONE, MOVING)],
        [(OFFLINE, ONLINE, 1 * S), (ONLINE, IDLE, 2 * S), (IDLE, ONLINE, 4 * S)],
    ),
    "no fix: stale at 60 s, offline at 600 s, each stamped then": (
        [(0, NONE), ("clock", 60 * S), ("clock", 60 * S + 1), ("clock", 601 * S)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S), (STALE, OFFLINE, 600 * S)],
    ),
    "a jump of the clock makes both at once, in order": (
        [(0, NONE), ("clock", 700 * S)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S), (STALE, OFFLINE, 600 * S)],
    ),
    "a fix after a gap: the stale it missed, then online": (
        [(0, NONE), (100 * S, NONE)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S), (STALE, ONLINE, 100 * S)],
    ),
    "back from offline": (
        [(0, NONE), ("clock", 601 * S), (700 * S, NONE, STILL)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S), (STALE, OFFLINE, 600 * S), (OFFLINE, IDLE, 700 * S)],
    ),
    "a late fix after stale was decided is ignored; a newer one brings it back": (
        [(0, NONE), ("clock", 70 * S), (50 * S, NONE), (80 * S, NONE)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S), (STALE, ONLINE, 80 * S)],
    ),
    "the clock never goes back": (
        [(0, NONE), ("clock", 70 * S), ("clock", 10 * S), ("clock", 70 * S)],
        [(OFFLINE, ONLINE, 0), (ONLINE, STALE, 60 * S)],
    ),
    "duplicates of a fix change no status": (
        [(1 * S, NONE, STILL), (1 * S, NONE, MOVING), (1 * S, NONE, STILL)],
        [(OFFLINE, IDLE, 1 * S)],
    ),
}


@pytest.mark.parametrize(("rows", "expected"), STATUS.values(), ids=STATUS.keys())
def test_status_transitions(rows, expected):
    assert status_events(fold(rows)) == expected


def test_a_quiet_courier_goes_stale_by_another_couriers_fixes_on_its_partition():
    partition = PartitionFold(Params())
    partition.on_fix(Fix("quiet", 12.9, 77.6, 0, MOVING), W)
    events: list[Event] = []
    for second in range(0, 70, 5):
        events.extend(partition.on_fix(Fix("busy", 12.9, 77.6, second * S + 1, MOVING), NONE))
    stale = [e for e in events if e.partner_id == "quiet"]
    assert [(e.from_, e.to, e.ts, e.zone) for e in stale] == [(ONLINE, STALE, 60 * S, None)]
    assert partition.couriers["quiet"].zones == W  # a stale courier is still where it was last seen


def test_a_courier_offline_past_the_ttl_is_forgotten_and_starts_afresh():
    params = Params(thresholds=StatusThresholds(), ttl_ms=3600 * S)
    partition = PartitionFold(params)
    partition.on_fix(Fix("c1", 12.9, 77.6, 0), W)
    partition.advance_to(3601 * S)
    assert "c1" not in partition.couriers and partition.take_changes()["c1"] is None
    events = partition.on_fix(Fix("c1", 12.9, 77.6, 4000 * S), W)
    assert [(e.type, e.zone, e.from_, e.to) for e in events] == [
        ("status_change", None, OFFLINE, ONLINE),
        (ENTER, "West", None, None),
    ]


def test_batches_cut_anywhere_make_the_same_events():
    # What a worker decides must not depend on where its batches end or when it moved the clock between
    # them (a crash, a rebalance, a fence): the records alone decide, in offset order.
    rows: list[Row] = [(0, W), (5 * S, W), (20 * S, E), (65 * S, E), (100 * S, NONE, STILL), (200 * S, W)]
    whole = fold(rows, dwell_s=10)
    for cut in range(1, len(rows)):
        params = Params(dwell_ms=10 * S)
        first = PartitionFold(params)
        events = [e for ts, zones, *speed in rows[:cut] for e in first.on_fix(_fix(ts, speed), zones)]
        # a fresh fold from what the first stored (as a successor loads it), then the rest
        loaded = {pid: read_state(stored(state).encode()) for pid, state in first.couriers.items()}
        second = PartitionFold(params, {pid: state for pid, state in loaded.items() if state is not None}, first.clock)
        assert len(second.couriers) == len(first.couriers)
        events += [e for ts, zones, *speed in rows[cut:] for e in second.on_fix(_fix(ts, speed), zones)]
        assert [e.id for e in events] == [e.id for e in whole], cut


def _fix(ts: int, speed: list) -> Fix:
    return Fix("c1", 12.9, 77.6, ts, speed[0] if speed else MOVING)


def test_event_ids_name_the_decision():
    one = event_id("c1", ENTER, 1000, "West", None, None)
    assert one == event_id("c1", ENTER, 1000, "West", None, None)
    others = {
        event_id("c2", ENTER, 1000, "West", None, None),
        event_id("c1", EXIT, 1000, "West", None, None),
        event_id("c1", ENTER, 1001, "West", None, None),
        event_id("c1", ENTER, 1000, "East", None, None),
        event_id("c1", "status_change", 1000, None, ONLINE, IDLE),
        event_id("c1", "status_change", 1000, None, IDLE, ONLINE),
    }
    assert one not in others and len(others) == 6
    a, b = fold([(1 * S, W), (2 * S, E)]), fold([(1 * S, W), (2 * S, E)])
    assert [e.id for e in a] == [e.id for e in b] and len({e.id for e in a}) == len(a)


def test_the_event_json_has_every_field():
    [event] = [e for e in fold([(1 * S, W)]) if e.type == ENTER]
    from tracker.events.index import encoded

    assert json.loads(encoded(event)) == {
        "id": event.id,
        "type": ENTER,
        "partner_id": "c1",
        "ts": 1 * S,
        "zone": "West",
        "lat": 12.9,
        "lon": 77.6,
        "from": None,
        "to": None,
        "order_id": None,
    }


# -- the zones -------------------------------------------------------------------------------------------------


def _box(west: float, south: float, east: float, north: float):
    return shapely.box(west, south, east, north)


def test_zones_of_points_boundary_inside_overlaps_and_shared_names():
    zones = Zones([("West", _box(0, 0, 1, 1)), ("East", _box(1, 0, 2, 1)), ("Ring", _box(0.5, 0, 1.5, 1))])
    zones_split = Zones([("Split", _box(0, 0, 1, 1)), ("Split", _box(5, 5, 6, 6))])
    # (lat, lon)
    points = [(0.5, 0.25), (0.5, 1.75), (0.5, 1.0), (5.0, 5.0), (0.5, 0.75)]
    assert zones.containing([p[0] for p in points], [p[1] for p in points]) == [
        ("West",),
        ("East",),
        ("East", "Ring", "West"),  # on the shared edge: in both, and in the overlapping one
        (),
        ("Ring", "West"),
    ]
    assert zones_split.containing([5.5, 0.5, 3.0], [5.5, 0.5, 3.0]) == [("Split",), ("Split",), ()]
    assert Zones([]).containing([1.0], [1.0]) == [()] and zones.containing([], []) == []


def test_a_thousand_zones_agree_with_shapely_point_by_point():
    grid = [(f"z{i}-{j}", _box(i, j, i + 1.2, j + 1.2)) for i in range(40) for j in range(25)]
    zones = Zones(grid)
    lats = [j * 0.37 % 26 for j in range(500)]
    lons = [i * 0.53 % 41 for i in range(500)]
    found = zones.containing(lats, lons)
    boxes = [box for _, box in grid]
    for lat, lon, inside in zip(lats, lons, found, strict=True):
        hits = shapely.intersects_xy(boxes, lon, lat)  # every zone, one by one
        assert inside == tuple(sorted(name for (name, _), hit in zip(grid, hits, strict=True) if hit)), (lat, lon)


def test_irregular_overlapping_zones_agree_with_shapely_on_boundaries_and_vertices_too():
    rng = random.Random(5)
    shapes = [
        shapely.Point(rng.uniform(0, 10), rng.uniform(0, 10)).buffer(rng.uniform(0.2, 2), quad_segs=3)
        for _ in range(60)
    ]
    shapes += [shapely.Polygon([(0, 0), (10, 0), (5, 7)]), _box(2, 2, 4, 4), _box(4, 2, 6, 4)]
    zones = Zones([(f"z{i}", shape) for i, shape in enumerate(shapes)])
    points = [(rng.uniform(-1, 11), rng.uniform(-1, 11)) for _ in range(3000)]  # (lon, lat)
    points += [(x, y) for shape in shapes[:20] for x, y in shape.exterior.coords[:4]]  # on vertices
    points += [(4.0, 3.0), (4.0, 2.0), (2.0, 2.0), (5.0, 7.0), (10.0, 0.0), (3.0, 4.0)]  # on edges and corners
    found = zones.containing([lat for _, lat in points], [lon for lon, _ in points])
    for (lon, lat), inside in zip(points, found, strict=True):
        hits = shapely.intersects_xy(shapes, lon, lat)
        assert inside == tuple(sorted(f"z{i}" for i, hit in enumerate(hits) if hit)), (lon, lat)


# -- the edges: bad records, stored state, settings, the API's bad input, metrics ---------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[]",
        b'{"id": "", "lat": 1, "lon": 1, "ts": 1}',
        b'{"id": "c", "lat": 91, "lon": 1, "ts": 1}',
        b'{"id": "c", "lat": 1, "lon": 1, "ts": -5}',
        b'{"id": "c", "lat": 1, "lon": 1, "ts": 1, "speed": -1}',
        b"\xff",
    ],
)
def test_a_position_record_that_is_not_a_fix_is_named_not_raised(value):
    record = Record("courier-positions", 0, 7, 0, b"c", value, ())
    assert isinstance(read_fix(record), str)


def test_a_position_is_a_fix():
    value = b'{"id":"c1","lat":12.9,"lon":77.6,"ts":5,"accepted_at_ms":6,"vehicle":"car","speed":3.5}'
    assert read_fix(Record("courier-positions", 0, 7, 0, b"c1", value, ())) == Fix("c1", 12.9, 77.6, 5, 3.5)


def test_stored_state_round_trips_and_garbage_reads_as_none():
    state = Courier(5, 4, 1.5, 2.5, None, STALE, ("A", "B"), ())
    text = stored(state)
    assert text.startswith("5 ") and read_state(text.encode()) == state
    assert read_state(b"5 {not json") is None and read_state(b"") is None
    assert read_state(b'5 [5,4,1.5,2.5,null,"asleep",[],[]]') is None  # a status there is none of


def test_settings_of_the_events():
    settings = Settings.from_env({"TRACKER_ZONE_DWELL_S": "0", "TRACKER_EVENTS_INDEX_MAX": "10"})
    assert Params.from_settings(settings).dwell_ms == 0 and settings.events_index_max == 10
    assert Settings().zone_dwell_s == 30 and Settings().events_topic == "courier-events"
    with pytest.raises(SettingsError, match="zone_dwell_s must not be negative"):
        Settings.from_env({"TRACKER_ZONE_DWELL_S": "-1"})


BAD_QUERIES = {
    "type=zone_enterr": "type must be one of zone_enter, zone_exit, status_change, order_picked_up",
    "since=yesterday": "since must be a whole number",
    "until=" + "9" * 5000: "until must be a whole number",
    "until=" + "9" * 400: "until is out of range",
    "since=10000000000000000": "since is out of range",
    "since=5&until=4": "since is after until",
    "limit=0": "limit must be 1-1000",
    "limit=1001": "limit must be 1-1000",
    "partner=" + "p" * 201: "partner is longer than 200 characters",
}


@pytest.mark.parametrize(("query", "message"), BAD_QUERIES.items(), ids=[q[:30] for q in BAD_QUERIES])
def test_bad_api_parameters_are_a_400_with_the_reason(query, message):
    app = Starlette(routes=events_http.routes)
    app.state.gateway = SimpleNamespace(store=None, settings=Settings())  # never reached: refused first
    with TestClient(app) as client:
        response = client.get(f"/api/events?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_filters_name_every_problem():
    assert EventFilters(type="nope", since_ms=2, until_ms=1).problems() == [
        f"type must be one of {', '.join(EVENT_TYPES)}, got 'nope'",
        "since is after until",
    ]


def test_the_events_counter_by_type_is_exported_for_every_type():
    events = EventMetrics()
    events.by_type = {"zone_enter": 3}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(cast(object, events))  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    [family] = list(text_string_to_metric_families(text))
    assert family.name == "tracker_events" and family.type == "counter"
    values = {sample.labels["type"]: sample.value for sample in family.samples if sample.name.endswith("_total")}
    assert values == {"zone_enter": 3} | {kind: 0 for kind in EVENT_TYPES if kind != "zone_enter"}
