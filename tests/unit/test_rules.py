"""Table tests for every reject code and its boundaries (pure rules, no I/O)."""

from __future__ import annotations

import json

import pytest

from tracker.geo import EARTH_RADIUS_M, ServiceArea, haversine_m, load_service_area
from tracker.models import LastFix, Outcome
from tracker.rules import Limits, StatefulChecker, evaluate, parse
from tracker.settings import Settings

NOW = 1_795_000_000_000
BLR = (12.9716, 77.5946)  # central Bengaluru, inside the built-in area
LIMITS = Limits.from_settings(Settings())
AREA = load_service_area(None)
WORLD = ServiceArea({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                    "geometry": {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90],
                                                                     [-180, 90], [-180, -90]]]}}]}, "world")
M_PER_DEG_LAT = EARTH_RADIUS_M * 3.141592653589793 / 180


def ping(**fields) -> bytes:
    doc = {"partner_id": "courier-1", "lat": BLR[0], "lon": BLR[1], "ts": NOW}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def verdict_of(raw, last: LastFix | None = None, area: ServiceArea = AREA, now: int = NOW):
    fixes = {} if last is None else {"courier-1": last}
    verdict, _ = evaluate(raw, fixes, now, LIMITS, area)
    return verdict.outcome.value if verdict.reason is None else verdict.reason.value


MALFORMED = [
    ("not utf-8", b'{"partner_id": "\xff", "lat": 12.9, "lon": 77.6, "ts": 1}'),
    ("not json", b"lat=12.9"),
    ("truncated json", b'{"partner_id": "a"'),
    ("array", b"[1, 2]"),
    ("number", b"42"),
    ("string", b'"hello"'),
    ("empty", b""),
    ("tombstone", None),
    ("over size limit", ping(pad="x" * 4096)),
    ("speed negative", ping(speed=-0.1)),
    ("speed string", ping(speed="fast")),
    ("heading over 360", ping(heading=360.5)),
    ("heading negative", ping(heading=-1)),
    ("accuracy zero", ping(accuracy=0)),
    ("vehicle unknown", ping(vehicle="plane")),
    ("order_id number", ping(order_id=5)),
]


@pytest.mark.parametrize("name,raw", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_payload(name, raw):
    assert verdict_of(raw) == "malformed_payload"


def test_payload_at_size_limit_is_accepted():
    base = ping(pad="")
    raw = ping(pad="x" * (LIMITS.max_payload_bytes - len(base)))
    assert len(raw) == LIMITS.max_payload_bytes
    assert verdict_of(raw) == "accepted"
    assert verdict_of(ping(pad="x" * (LIMITS.max_payload_bytes - len(base) + 1))) == "malformed_payload"


@pytest.mark.parametrize("partner_id,expected", [
    ("a", "accepted"),
    ("x" * 64, "accepted"),
    ("x" * 65, "missing_partner_id"),
    (..., "missing_partner_id"),
    (None, "missing_partner_id"),
    ("", "missing_partner_id"),
    ("   ", "missing_partner_id"),
    (42, "missing_partner_id"),
    (["a"], "missing_partner_id"),
])
def test_partner_id(partner_id, expected):
    assert verdict_of(ping(partner_id=partner_id)) == expected


@pytest.mark.parametrize("lat,lon,expected", [
    (90, 0.5, "accepted"),
    (-90, 0.5, "accepted"),
    (90.000001, 0.5, "invalid_coordinates"),
    (-90.000001, 0.5, "invalid_coordinates"),
    (10, 180, "accepted"),
    (10, -180, "accepted"),
    (10, 180.000001, "invalid_coordinates"),
    (10, -180.000001, "invalid_coordinates"),
    (0, 0, "invalid_coordinates"),
    (0, 0.000001, "accepted"),
    ("12.9", 77.6, "invalid_coordinates"),
    (12.9, "77.6", "invalid_coordinates"),
    (None, 77.6, "invalid_coordinates"),
    (12.9, None, "invalid_coordinates"),
    (..., 77.6, "invalid_coordinates"),
    (True, 77.6, "invalid_coordinates"),
])
def test_coordinate_validity(lat, lon, expected):
    assert verdict_of(ping(lat=lat, lon=lon), area=WORLD) == expected


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_coordinates(literal):
    raw = b'{"partner_id": "c", "lat": ' + literal + b', "lon": 77.6, "ts": %d}' % NOW
    assert verdict_of(raw) == "invalid_coordinates"


@pytest.mark.parametrize("lat,lon,expected", [
    (12.90, 77.52, "accepted"),
    (13.05, 77.68, "accepted"),
    (12.90, 77.68, "accepted"),
    (13.05, 77.52, "accepted"),
    (12.30, 76.64, "outside_service_area"),  # Mysuru
    (28.61, 77.21, "outside_service_area"),  # Delhi
])
def test_service_area(lat, lon, expected):
    assert verdict_of(ping(lat=lat, lon=lon)) == expected


@pytest.mark.parametrize("ts,expected", [
    (NOW, "accepted"),
    ("2026-11-18T11:06:40+00:00", "accepted"),  # == NOW
    ("2026-11-18T16:36:40+05:30", "accepted"),
    ("2026-11-18T11:06:40Z", "accepted"),
    ("2026-11-18T11:06:40", "invalid_timestamp"),  # no offset
    ("yesterday", "invalid_timestamp"),
    (..., "invalid_timestamp"),
    (None, "invalid_timestamp"),
    (True, "invalid_timestamp"),
    (float(NOW) + 0.5, "invalid_timestamp"),
    (float(NOW), "accepted"),
    ([NOW], "invalid_timestamp"),
])
def test_timestamp_parsing(ts, expected):
    assert verdict_of(ping(ts=ts)) == expected


@pytest.mark.parametrize("offset_ms,expected", [
    (0, "accepted"),
    (-120_000, "accepted"),  # exactly max_age old
    (-120_001, "stale_timestamp"),
    (10_000, "accepted"),  # exactly max_skew ahead
    (10_001, "future_timestamp"),
])
def test_clock_boundaries(offset_ms, expected):
    assert verdict_of(ping(ts=NOW + offset_ms)) == expected


def test_seconds_instead_of_milliseconds_is_stale_with_a_hint():
    verdict, _ = evaluate(ping(ts=NOW // 1000), {}, NOW, LIMITS, AREA)
    assert verdict.reason.value == "stale_timestamp"
    assert "looks like seconds" in verdict.detail


LAST = LastFix(NOW - 1000, BLR[0], BLR[1])


def moved(metres: float) -> float:
    return BLR[0] + metres / M_PER_DEG_LAT


@pytest.mark.parametrize("vehicle,limit", [("walk", 4), ("bike", 15), ("scooter", 35), ("car", 45), (..., 45)])
@pytest.mark.parametrize("delta,expected", [(-0.05, "accepted"), (0.05, "impossible_speed")])
def test_speed_limit_per_vehicle(vehicle, limit, delta, expected):
    lat = moved(limit + delta)  # 1 s after LAST
    assert haversine_m(BLR[0], BLR[1], lat, BLR[1]) == pytest.approx(limit + delta, abs=1e-3)
    assert verdict_of(ping(lat=lat, vehicle=vehicle), last=LAST) == expected


@pytest.mark.parametrize("metres,accuracy,expected", [
    (48, 45, "accepted"),  # 48 m in 1 s on foot, 45 m forgiven: 3 m/s
    (48, 43, "impossible_speed"),  # 5 m/s
    (53, 50, "accepted"),  # 3 m/s
    (53, 1000, "accepted"),  # allowance capped at 50 m: 3 m/s
    (60, 1000, "impossible_speed"),  # capped at 50 m: 10 m/s
])
def test_accuracy_allowance(metres, accuracy, expected):
    assert verdict_of(ping(lat=moved(metres), vehicle="walk", accuracy=accuracy), last=LAST) == expected


def test_gps_jump_is_impossible_speed():
    assert verdict_of(ping(lat=13.04, lon=77.66), last=LAST) == "impossible_speed"


@pytest.mark.parametrize("ts,lat,expected", [
    (NOW - 1000, BLR[0], "duplicate"),  # exact repeat of LAST
    (NOW - 1001, BLR[0], "out_of_order"),
    (NOW - 1000, moved(5), "impossible_speed"),  # same instant, another place
    (NOW, moved(5), "accepted"),
])
def test_against_last_fix(ts, lat, expected):
    assert verdict_of(ping(ts=ts, lat=lat), last=LAST) == expected


def test_duplicate_wins_over_staleness():
    old = LastFix(NOW - 600_000, BLR[0], BLR[1])
    assert verdict_of(ping(ts=NOW - 600_000), last=old) == "duplicate"


def test_unknown_fields_are_kept_and_ignored():
    parsed = parse(ping(battery=0.4, extra={"a": 1}), LIMITS)
    assert parsed.partner_id == "courier-1"


def test_stateful_checker_updates_only_on_accept():
    checker = StatefulChecker(Settings(), AREA)
    assert checker.check(ping(ts=NOW - 2000), NOW).outcome is Outcome.ACCEPTED
    assert checker.check(ping(ts=NOW - 1000, lat=13.04, lon=77.66), NOW).reason.value == "impossible_speed"
    assert checker.check(ping(ts=NOW - 3000), NOW).reason.value == "out_of_order"
    assert checker.check(ping(ts=NOW - 2000), NOW).outcome is Outcome.DUPLICATE
    assert checker.check(ping(ts=NOW - 1000, lat=moved(5)), NOW).outcome is Outcome.ACCEPTED
    assert checker.last_fixes["courier-1"] == LastFix(NOW - 1000, moved(5), BLR[1])


@pytest.mark.parametrize("ts,lat,expected", [
    (NOW - 600_000, BLR[0], "accepted"),  # older than the latest fix: history only (no staleness for replays)
    (NOW - 1000, BLR[0], "duplicate"),
    (NOW, moved(5), "accepted"),  # newer and reachable: live
    (NOW, 13.04, "impossible_speed"),  # newer, but a jump
    (NOW + 600_000, BLR[0], "future_timestamp"),
])
def test_replay_rules(ts, lat, expected):
    from tracker.rules import HISTORY_ONLY, judge_replay

    parsed = parse(ping(ts=ts, lat=lat), LIMITS)
    verdict = judge_replay(parsed, LAST, NOW, LIMITS, AREA)
    assert (verdict.outcome.value if verdict.reason is None else verdict.reason.value) == expected
    assert (verdict is HISTORY_ONLY) == (ts < LAST.ts_ms and expected == "accepted")
