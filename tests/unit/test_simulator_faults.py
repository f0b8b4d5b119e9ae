"""Each fault kind corrupts exactly one thing, in the way its reject code describes."""

from __future__ import annotations

import json
import math
import random
from datetime import datetime
from typing import Any

import msgspec
import pytest

from simulator.faults import FaultContext, FaultKind, LastGood, inject
from simulator.fleet import WirePing, build_grid
from tracker.geo import haversine_m, load_service_area
from tracker.rules import PARTNER_ID_MAX, Limits
from tracker.settings import Settings

AREA = load_service_area(None)
GRID = build_grid(AREA, random.Random(0))
LIMITS = Limits.from_settings(Settings())
GOOD = WirePing("courier-0042", 1_750_000_000_000, 12.9716, 77.5946, 6.4, 87.5, 8.2, "scooter", "order-00000000aa")
GOOD_FIELDS = msgspec.structs.asdict(GOOD)
LAST = LastGood(GOOD.ts - 1_000, 12.97158, 77.59455, b"{}")
DRAWS = 400


def corrupted(kind: FaultKind, last: LastGood | None = LAST) -> list[bytes | None]:
    """One payload per draw; None where the fault cannot apply (out_of_order, impossible_speed)."""
    context = FaultContext(GOOD, last, GRID, AREA, LIMITS)
    return [inject(kind, context, random.Random(seed)) for seed in range(DRAWS)]


def decode(raw: bytes | None) -> Any:
    assert raw is not None, "the fault did not apply"
    return json.loads(raw.decode("utf-8"))  # json, unlike msgspec, reads NaN and Infinity


def changed(doc: dict) -> set[str]:
    return {name for name in GOOD_FIELDS.keys() | doc.keys() if doc.get(name, "<absent>") != GOOD_FIELDS.get(name)}


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ts_ms(value: int | str) -> int:
    return value if isinstance(value, int) else round(datetime.fromisoformat(value).timestamp() * 1000)


def malformed_shape(raw: bytes | None) -> str:
    """Which of the malformed_payload shapes ``raw`` has; asserts the rest of the ping is intact."""
    assert raw is not None, "the fault did not apply"
    if len(raw) > LIMITS.max_payload_bytes:
        return "oversized"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not utf-8"
    try:
        doc = json.loads(text)
    except ValueError:
        return "not json"
    if not isinstance(doc, dict):
        return "not an object"
    (name,) = changed(doc)
    value = doc[name]
    bad = {
        "speed": not is_number(value) or value < 0,
        "heading": not is_number(value) or not 0 <= value <= 360,
        "accuracy": not is_number(value) or value <= 0,
        "vehicle": value not in ("walk", "bike", "scooter", "car"),
        "order_id": not isinstance(value, str),
    }
    assert bad[name], doc
    return f"bad {name}"


def test_malformed_payload_comes_in_every_shape():
    shapes = {malformed_shape(raw) for raw in corrupted(FaultKind.MALFORMED_PAYLOAD)}
    assert shapes == {
        "oversized",
        "not utf-8",
        "not json",
        "not an object",
        "bad speed",
        "bad heading",
        "bad accuracy",
        "bad vehicle",
        "bad order_id",
    }


def test_missing_partner_id_breaks_only_the_partner_id():
    seen = set()
    for raw in corrupted(FaultKind.MISSING_PARTNER_ID):
        doc = decode(raw)
        assert changed(doc) == {"partner_id"}
        value = doc.get("partner_id", "<absent>")
        assert (
            value is None
            or value == "<absent>"
            or not isinstance(value, str)
            or not value.strip()
            or len(value) > PARTNER_ID_MAX
        )
        seen.add(
            "absent"
            if value == "<absent>"
            else type(value).__name__
            if not isinstance(value, str)
            else "blank"
            if not value.strip()
            else "too long"
        )
    assert seen == {"absent", "NoneType", "int", "list", "blank", "too long"}


def test_invalid_coordinates_break_only_the_coordinates():
    seen = set()
    for raw in corrupted(FaultKind.INVALID_COORDINATES):
        doc = decode(raw)
        assert changed(doc) and changed(doc) <= {"lat", "lon"}
        lat, lon = doc.get("lat"), doc.get("lon")
        for value, bound in ((lat, 90), (lon, 180)):
            if not is_number(value):
                seen.add("absent" if value is None else type(value).__name__)
            elif not math.isfinite(value):
                seen.add("nan" if math.isnan(value) else "infinite")
            elif abs(value) > bound:
                seen.add("out of range")
        if (lat, lon) == (0, 0):
            seen.add("(0, 0)")
    assert seen == {"absent", "str", "bool", "nan", "infinite", "out of range", "(0, 0)"}


def test_invalid_timestamp_breaks_only_the_timestamp():
    seen = set()
    for raw in corrupted(FaultKind.INVALID_TIMESTAMP):
        doc = decode(raw)
        assert changed(doc) == {"ts"}
        value = doc.get("ts")
        if isinstance(value, str):
            try:
                assert datetime.fromisoformat(value).tzinfo is None
                seen.add("iso without offset")
            except ValueError:
                seen.add("words")
        else:
            assert value is None or isinstance(value, bool)
            seen.add(type(value).__name__)
    assert seen == {"NoneType", "bool", "words", "iso without offset"}


def test_outside_service_area_moves_a_valid_fix_out_of_the_area():
    distances = []
    for raw in corrupted(FaultKind.OUTSIDE_SERVICE_AREA):
        doc = decode(raw)
        assert changed(doc) == {"lat", "lon"}
        assert is_number(doc["lat"]) and is_number(doc["lon"]) and (doc["lat"], doc["lon"]) != (0, 0)
        assert not AREA.contains(doc["lat"], doc["lon"])
        distances.append(haversine_m(GOOD.lat, GOOD.lon, doc["lat"], doc["lon"]))
    assert min(distances) < 30_000 < max(distances)  # both "just beyond the edge" and "another city"


@pytest.mark.parametrize(
    ("kind", "low_ms", "high_ms"),
    [
        (FaultKind.STALE_TIMESTAMP, -300_000 - 3_600_000, -300_000),
        (FaultKind.FUTURE_TIMESTAMP, 300_000, 300_000 + 3_600_000),
    ],
)
def test_clock_faults_shift_only_the_timestamp_far_past_the_limits(kind, low_ms, high_ms):
    formats = set()
    for raw in corrupted(kind):
        doc = decode(raw)
        assert changed(doc) == {"ts"}
        assert low_ms <= ts_ms(doc["ts"]) - GOOD.ts <= high_ms
        formats.add(type(doc["ts"]).__name__)
    assert formats == {"int", "str"}  # epoch ms, and ISO-8601 with an offset


def test_out_of_order_is_a_slightly_older_fix_near_the_last_good_one():
    for raw in corrupted(FaultKind.OUT_OF_ORDER):
        doc = decode(raw)
        assert changed(doc) <= {"ts", "lat", "lon"}
        assert LAST.ts_ms - 30_000 <= doc["ts"] <= LAST.ts_ms - 5_000
        assert haversine_m(LAST.lat, LAST.lon, doc["lat"], doc["lon"]) <= GOOD.accuracy / 2 + 0.05


def test_impossible_speed_is_a_jump_of_kilometres_inside_the_area():
    for raw in corrupted(FaultKind.IMPOSSIBLE_SPEED):
        doc = decode(raw)
        assert changed(doc) == {"lat", "lon"}
        assert AREA.contains(doc["lat"], doc["lon"])
        distance_m = haversine_m(LAST.lat, LAST.lon, doc["lat"], doc["lon"])
        assert distance_m >= 5_000
        assert distance_m - min(GOOD.accuracy, 50) > 35 * (GOOD.ts - LAST.ts_ms) / 1000


def test_impossible_speed_jumps_further_when_the_last_good_fix_is_older():
    last = LastGood(GOOD.ts - 200_000, LAST.lat, LAST.lon, b"{}")  # a scooter could ride 7 km in 200 s
    for raw in corrupted(FaultKind.IMPOSSIBLE_SPEED, last)[:50]:
        if raw is not None:
            doc = decode(raw)
            assert haversine_m(last.lat, last.lon, doc["lat"], doc["lon"]) - 8.2 > 35 * 200


@pytest.mark.parametrize(
    ("kind", "last"),
    [
        (FaultKind.OUT_OF_ORDER, None),
        (FaultKind.IMPOSSIBLE_SPEED, None),
        # 30 s older than a last fix that is itself 50 s old would be judged stale, not out of order.
        (FaultKind.OUT_OF_ORDER, LastGood(GOOD.ts - 56_000, LAST.lat, LAST.lon, b"{}")),
    ],
)
def test_faults_that_need_a_recent_good_ping_refuse_without_one(kind, last):
    assert corrupted(kind, last)[:20] == [None] * 20


@pytest.mark.parametrize(
    ("kind", "crosses_the_limit"),
    [
        (FaultKind.MALFORMED_PAYLOAD, lambda raw: len(raw) <= 4096 or len(raw) > 9000),
        (FaultKind.STALE_TIMESTAMP, lambda raw: GOOD.ts - ts_ms(decode(raw)["ts"]) >= 2 * 900_000),
        (FaultKind.FUTURE_TIMESTAMP, lambda raw: ts_ms(decode(raw)["ts"]) - GOOD.ts >= 2 * 700_000),
    ],
)
def test_faults_follow_the_validator_settings(kind, crosses_the_limit):
    limits = Limits.from_settings(Settings(max_age_s=900, max_skew_s=700, max_payload_bytes=9000))
    context = FaultContext(GOOD, LAST, GRID, AREA, limits)
    assert all(crosses_the_limit(inject(kind, context, random.Random(seed))) for seed in range(DRAWS))
