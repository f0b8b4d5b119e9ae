"""Table tests for every reject code and its boundaries (pure rules, no I/O)."""

from __future__ import annotations

import json

import msgspec
import pytest

from tracker.geo import EARTH_RADIUS_M, ServiceArea, haversine_m, load_service_area
from tracker.models import LastFix, Outcome, Ping, Position, Verdict
from tracker.rules import HISTORY_ONLY, Limits, StatefulChecker, evaluate, judge, judge_replay, parse
from tracker.settings import Settings

NOW = 1_795_000_000_000
BLR = (12.9716, 77.5946)  # central Bengaluru, inside the built-in area
LIMITS = Limits.from_settings(Settings())
AREA = load_service_area(None)
WORLD = ServiceArea(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]],
                },
            }
        ],
    },
    "world",
)
M_PER_DEG_LAT = EARTH_RADIUS_M * 3.141592653589793 / 180


def ping(**fields) -> bytes:
    doc = {"partner_id": "courier-1", "lat": BLR[0], "lon": BLR[1], "ts": NOW}
    doc.update(fields)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def reason_of(verdict: Verdict) -> str:
    """The reject code of ``verdict``, which must be a reject."""
    assert verdict.reason is not None, verdict
    return verdict.reason.value


def parsed_ping(raw: bytes) -> Ping:
    """``raw`` parsed, which must give a Ping."""
    parsed = parse(raw, LIMITS)
    assert isinstance(parsed, Ping), parsed
    return parsed


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


@pytest.mark.parametrize(("name", "raw"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_payload(name, raw):
    assert verdict_of(raw) == "malformed_payload"


def test_payload_at_size_limit_is_accepted():
    base = ping(pad="")
    raw = ping(pad="x" * (LIMITS.max_payload_bytes - len(base)))
    assert len(raw) == LIMITS.max_payload_bytes
    assert verdict_of(raw) == "accepted"
    assert verdict_of(ping(pad="x" * (LIMITS.max_payload_bytes - len(base) + 1))) == "malformed_payload"


@pytest.mark.parametrize(
    ("partner_id", "expected"),
    [
        ("a", "accepted"),
        ("x" * 64, "accepted"),
        ("x" * 65, "missing_partner_id"),
        (..., "missing_partner_id"),
        (None, "missing_partner_id"),
        ("", "missing_partner_id"),
        ("   ", "missing_partner_id"),
        (42, "missing_partner_id"),
        (["a"], "missing_partner_id"),
    ],
)
def test_partner_id(partner_id, expected):
    assert verdict_of(ping(partner_id=partner_id)) == expected


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
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
    ],
)
def test_coordinate_validity(lat, lon, expected):
    assert verdict_of(ping(lat=lat, lon=lon), area=WORLD) == expected


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_coordinates(literal):
    raw = b'{"partner_id": "c", "lat": ' + literal + b', "lon": 77.6, "ts": %d}' % NOW
    assert verdict_of(raw) == "invalid_coordinates"


@pytest.mark.parametrize(
    ("lat", "lon", "expected"),
    [
        (12.90, 77.52, "accepted"),
        (13.05, 77.68, "accepted"),
        (12.90, 77.68, "accepted"),
        (13.05, 77.52, "accepted"),
        (12.30, 76.64, "outside_service_area"),  # Mysuru
        (28.61, 77.21, "outside_service_area"),  # Delhi
    ],
)
def test_service_area(lat, lon, expected):
    assert verdict_of(ping(lat=lat, lon=lon)) == expected


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
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
    ],
)
def test_timestamp_parsing(ts, expected):
    assert verdict_of(ping(ts=ts)) == expected


@pytest.mark.parametrize(
    ("offset_ms", "expected"),
    [
        (0, "accepted"),
        (-120_000, "accepted"),  # exactly max_age old
        (-120_001, "stale_timestamp"),
        (10_000, "accepted"),  # exactly max_skew ahead
        (10_001, "future_timestamp"),
    ],
)
def test_clock_boundaries(offset_ms, expected):
    assert verdict_of(ping(ts=NOW + offset_ms)) == expected


def test_seconds_instead_of_milliseconds_is_stale_with_a_hint():
    verdict, _ = evaluate(ping(ts=NOW // 1000), {}, NOW, LIMITS, AREA)
    assert reason_of(verdict) == "stale_timestamp"
    assert "looks like seconds" in verdict.detail


LAST = LastFix(NOW - 1000, BLR[0], BLR[1])


def moved(metres: float) -> float:
    return BLR[0] + metres / M_PER_DEG_LAT


@pytest.mark.parametrize(("vehicle", "limit"), [("walk", 4), ("bike", 15), ("scooter", 35), ("car", 45), (..., 45)])
@pytest.mark.parametrize(("delta", "expected"), [(-0.05, "accepted"), (0.05, "impossible_speed")])
def test_speed_limit_per_vehicle(vehicle, limit, delta, expected):
    lat = moved(limit + delta)  # 1 s after LAST
    assert haversine_m(BLR[0], BLR[1], lat, BLR[1]) == pytest.approx(limit + delta, abs=1e-3)
    assert verdict_of(ping(lat=lat, vehicle=vehicle), last=LAST) == expected


@pytest.mark.parametrize(
    ("metres", "accuracy", "expected"),
    [
        (48, 45, "accepted"),  # 48 m in 1 s on foot, 45 m forgiven: 3 m/s
        (48, 43, "impossible_speed"),  # 5 m/s
        (53, 50, "accepted"),  # 3 m/s
        (53, 1000, "accepted"),  # allowance capped at 50 m: 3 m/s
        (60, 1000, "impossible_speed"),  # capped at 50 m: 10 m/s
    ],
)
def test_accuracy_allowance(metres, accuracy, expected):
    assert verdict_of(ping(lat=moved(metres), vehicle="walk", accuracy=accuracy), last=LAST) == expected


def test_gps_jump_is_impossible_speed():
    assert verdict_of(ping(lat=13.04, lon=77.66), last=LAST) == "impossible_speed"


@pytest.mark.parametrize(
    ("ts", "lat", "expected"),
    [
        (NOW - 1000, BLR[0], "duplicate"),  # exact repeat of LAST
        (NOW - 1001, BLR[0], "out_of_order"),
        (NOW - 1000, moved(5), "impossible_speed"),  # same instant, another place
        (NOW, moved(5), "accepted"),
    ],
)
def test_against_last_fix(ts, lat, expected):
    assert verdict_of(ping(ts=ts, lat=lat), last=LAST) == expected


def test_duplicate_wins_over_staleness():
    old = LastFix(NOW - 600_000, BLR[0], BLR[1])
    assert verdict_of(ping(ts=NOW - 600_000), last=old) == "duplicate"


def test_unknown_fields_are_kept_and_ignored():
    parsed = parsed_ping(ping(battery=0.4, extra={"a": 1}))
    assert parsed.partner_id == "courier-1"


def test_stateful_checker_updates_only_on_accept():
    checker = StatefulChecker(Settings(), AREA)
    assert checker.check(ping(ts=NOW - 2000), NOW).outcome is Outcome.ACCEPTED
    assert reason_of(checker.check(ping(ts=NOW - 1000, lat=13.04, lon=77.66), NOW)) == "impossible_speed"
    assert reason_of(checker.check(ping(ts=NOW - 3000), NOW)) == "out_of_order"
    assert checker.check(ping(ts=NOW - 2000), NOW).outcome is Outcome.DUPLICATE
    assert checker.check(ping(ts=NOW - 1000, lat=moved(5)), NOW).outcome is Outcome.ACCEPTED
    assert checker.last_fixes["courier-1"] == LastFix(NOW - 1000, moved(5), BLR[1])


@pytest.mark.parametrize(
    ("ts", "lat", "expected"),
    [
        (NOW - 600_000, BLR[0], "accepted"),  # older than the latest fix: history only (no staleness for replays)
        (NOW - 1000, BLR[0], "duplicate"),
        (NOW, moved(5), "accepted"),  # newer and reachable: live
        (NOW, 13.04, "impossible_speed"),  # newer, but a jump
        (NOW + 600_000, BLR[0], "future_timestamp"),
    ],
)
def test_replay_rules(ts, lat, expected):
    parsed = parsed_ping(ping(ts=ts, lat=lat))
    verdict = judge_replay(parsed, LAST, NOW, LIMITS, AREA)
    assert (verdict.outcome.value if verdict.reason is None else verdict.reason.value) == expected
    assert (verdict is HISTORY_ONLY) == (ts < LAST.ts_ms and expected == "accepted")


HUGE = int("9" * 320)  # a 320-digit integer: float() of it raises OverflowError
DEEP = "[" * 1000 + "]" * 1000  # 2,000 bytes: fits in 4 KiB, far over Python's recursion limit when decoded


def nested(depth: int) -> bytes:
    """A valid ping with an unknown field whose value makes the payload ``depth`` levels deep."""
    return ping()[:-1] + b', "extra": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


POISON = [
    ("huge int lat", ping(lat=HUGE), "invalid_coordinates", "lat is an integer of more than 20 digits"),
    ("huge negative int lon", ping(lon=-HUGE), "invalid_coordinates", "lon is a negative integer of more than 20"),
    ("huge int speed", ping(speed=HUGE), "malformed_payload", "speed is an integer of more than 20 digits"),
    ("huge int heading", ping(heading=HUGE), "malformed_payload", "heading is an integer of more than 20 digits"),
    ("huge int accuracy", ping(accuracy=HUGE), "malformed_payload", "accuracy is an integer of more than 20 digits"),
    ("speed at 2**64", ping(speed=2**64), "malformed_payload", "speed is 18446744073709551616, beyond ±2**63"),
    ("huge int ts", ping(ts=HUGE), "invalid_timestamp", "ts is out of range: an integer of more than 20 digits"),
    ("huge float ts", ping(ts=1e300), "invalid_timestamp", "ts is out of range: 1e+300"),
    ("negative ts", ping(ts=-1), "invalid_timestamp", "ts is out of range: -1"),
    ("ts in the year 2286", ping(ts=10**13), "invalid_timestamp", "ts is out of range: 10000000000000"),
    (
        "ISO ts in year 1 pushed before it",
        ping(ts="0001-01-01T00:00:00+05:00"),
        "invalid_timestamp",
        "ts is out of range: '0001-01-01T00:00:00+05:00'",
    ),
    ("ISO ts in year 9999", ping(ts="9999-12-31T23:59:59-05:00"), "invalid_timestamp", "ts is out of range"),
    (
        "nested 1,000 deep in an unknown field",
        ping()[:-1] + b', "extra": ' + DEEP.encode() + b"}",
        "malformed_payload",
        "nested deeper than 32 levels",
    ),
    ("nested 2,000 deep, no object", b"[" * 2000 + b"]" * 2000, "malformed_payload", "nested deeper than 32 levels"),
    ("nested objects 600 deep", b'{"a":' * 600 + b"1" + b"}" * 600, "malformed_payload", "nested deeper than 32"),
    ("unclosed nesting 33 deep", b"[" * 33, "malformed_payload", "nested deeper than 32 levels"),
    (
        "lone surrogate partner_id",
        ping(partner_id="\ud800"),
        "missing_partner_id",
        "partner_id has U+D800 at position 0, not a printable character",
    ),
    (
        "lone surrogate order_id",
        ping(order_id="o-\udfff"),
        "malformed_payload",
        "order_id has U+DFFF at position 2, not a printable character",
    ),
    ("NUL in partner_id", ping(partner_id="c\x00"), "missing_partner_id", "U+0000 at position 1"),
    ("line separator in partner_id", ping(partner_id="c\u2028"), "missing_partner_id", "U+2028 at position 1"),
    ("private-use partner_id", ping(partner_id="\ue000"), "missing_partner_id", "U+E000 at position 0"),
    ("zero-width space in partner_id", ping(partner_id="c\u200b1"), "missing_partner_id", "U+200B at position 1"),
    ("escape char in order_id", ping(order_id="\x1b[31m"), "malformed_payload", "U+001B at position 0"),
    ("empty order_id", ping(order_id=""), "malformed_payload", "order_id is 0 characters, outside 1–64"),
    ("long order_id", ping(order_id="o" * 65), "malformed_payload", "order_id is 65 characters, outside 1–64"),
    (
        "not UTF-8 in an unknown field",
        ping()[:-1] + b', "note": "\xed\xa0\x80"}',
        "malformed_payload",
        "payload is not UTF-8",
    ),
    ("NaN lat", ping()[:-1] + b', "lat": NaN}', "invalid_coordinates", "lat is nan"),
    ("-Infinity lon", ping()[:-1] + b', "lon": -Infinity}', "invalid_coordinates", "lon is -inf"),
]


@pytest.mark.parametrize(("name", "raw", "reason", "detail"), POISON, ids=[p[0] for p in POISON])
def test_poison_gets_a_verdict_with_a_readable_detail(name, raw, reason, detail):
    verdict, parsed = evaluate(raw, {}, NOW, LIMITS, AREA)
    assert (reason_of(verdict), parsed) == (reason, None)
    assert detail in verdict.detail
    assert len(verdict.detail) <= 200
    verdict.detail.encode("utf-8")  # a lone surrogate in the payload must not make the detail unencodable


@pytest.mark.parametrize(("depth", "expected"), [(32, "accepted"), (33, "malformed_payload")])
def test_nesting_depth_boundary(depth, expected):
    assert verdict_of(nested(depth)) == expected
    # Brackets inside strings are text, not nesting.
    assert verdict_of(ping(note="[" * 100 + "{" * 100)) == "accepted"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("speed", 2**62, "accepted"),
        ("speed", float(2**63), "malformed_payload"),
        ("accuracy", 2**63 + 1, "malformed_payload"),
        ("ts", 10**13 - 1, "future_timestamp"),  # in range, so judged against the clock
        ("ts", 0, "stale_timestamp"),
    ],
)
def test_numeric_bounds(field, value, expected):
    assert verdict_of(ping(**{field: value})) == expected


def test_values_in_details_are_cut_and_escaped():
    verdict, _ = evaluate(ping(vehicle="\ud800" + "x" * 3000), {}, NOW, LIMITS, AREA)
    assert reason_of(verdict) == "malformed_payload"
    assert "'\\ud800xxx" in verdict.detail and "(cut, 3001 characters)" in verdict.detail
    assert len(verdict.detail) < 200


def test_printable_unicode_ids_are_accepted():
    parsed = parsed_ping(ping(partner_id="कूरियर-७ 🚲", order_id="ऑर्डर-1"))
    assert (parsed.partner_id, parsed.order_id) == ("कूरियर-७ 🚲", "ऑर्डर-1")
    msgspec.msgpack.encode(Position.from_ping(parsed, NOW))


def test_a_ping_with_unknown_fields_parses_to_the_same_ping():
    plain = parse(ping(speed=3.5, order_id="o-1"), LIMITS)
    with_extras = parse(ping(speed=3.5, order_id="o-1", battery=0.4, meta={"os": "android", "v": [1, [2]]}), LIMITS)
    assert type(with_extras) is Ping and with_extras == plain


def test_judge_details_never_divide_huge_numbers():
    parsed = parsed_ping(ping())
    # A clock far in the future (a bad NTP fix on the validator) still gives a verdict, not an OverflowError.
    verdict = judge(parsed, LastFix(0, BLR[0], BLR[1]), 10**400, LIMITS, AREA)
    assert reason_of(verdict) == "stale_timestamp" and "over 10**20 s old" in verdict.detail
