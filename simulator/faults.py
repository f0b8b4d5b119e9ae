"""Fault injection: turn the ping a courier was about to send into one the validator must reject.

Each fault corrupts exactly one thing, so the reject code it will get is unambiguous even though the
validator stops at its first failing check. The thresholds a fault has to cross (payload size, clock limits,
speed limits) come from the validator's own :class:`tracker.rules.Limits`, so faults stay faults when an
operator changes a setting.

Faults never touch the courier's state: the validator only remembers accepted pings, so neither may we.
"""

from __future__ import annotations

import enum
import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import msgspec

from simulator.fleet import StreetGrid, WirePing, node_latlon, point_beyond_area
from tracker.geo import ServiceArea, haversine_m
from tracker.models import Reason
from tracker.rules import PARTNER_ID_MAX, Limits


class FaultKind(enum.Enum):
    """What the simulator can break; each value is the reject code (a :class:`~tracker.models.Reason`) the
    validator must give. Every reason but ``processing_failed`` (a failure of the validator, not of a ping)
    has a kind, each with at least one way to make it in ``_VARIANTS`` (tests/unit/test_domain_facts.py).
    The order is the simulator's own: a seeded run draws kinds in it."""

    MALFORMED_PAYLOAD = Reason.MALFORMED_PAYLOAD.value
    MISSING_PARTNER_ID = Reason.MISSING_PARTNER_ID.value
    INVALID_COORDINATES = Reason.INVALID_COORDINATES.value
    INVALID_TIMESTAMP = Reason.INVALID_TIMESTAMP.value
    OUTSIDE_SERVICE_AREA = Reason.OUTSIDE_SERVICE_AREA.value
    STALE_TIMESTAMP = Reason.STALE_TIMESTAMP.value
    FUTURE_TIMESTAMP = Reason.FUTURE_TIMESTAMP.value
    OUT_OF_ORDER = Reason.OUT_OF_ORDER.value
    IMPOSSIBLE_SPEED = Reason.IMPOSSIBLE_SPEED.value

    @property
    def reason(self) -> Reason:
        return Reason(self.value)


# The kinds whose every variant means the same through any phone protocol of `tracker ingest` (OsmAnd query,
# OwnTracks JSON, native JSON): they change only the fix's time or place. The others can't go through the
# front door: the ingest sets partner_id itself, refuses a body that is not JSON, and a query string has no
# types (a lat of "12.97" is a number there, and a negative speed means "unknown" to every phone protocol).
DOOR_SAFE = frozenset(
    {
        FaultKind.INVALID_TIMESTAMP,
        FaultKind.OUTSIDE_SERVICE_AREA,
        FaultKind.STALE_TIMESTAMP,
        FaultKind.FUTURE_TIMESTAMP,
        FaultKind.OUT_OF_ORDER,
        FaultKind.IMPOSSIBLE_SPEED,
    }
)

# The expectation carried by exact resends: the validator drops and counts them, it does not dead-letter them.
DUPLICATE = "duplicate"

# Clock faults sit this far past the validator's limits, so that consumer lag cannot turn them into good pings.
CLOCK_FAULT_MIN_MS = 300_000
CLOCK_FAULT_SPREAD_MS = 3_600_000
OUT_OF_ORDER_BACK_MS = (5_000, 30_000)
JUMP_MIN_M = 5_000.0

INDIA = timezone(timedelta(hours=5, minutes=30))
FAR_AWAY = ((12.30, 76.64), (13.08, 80.27), (19.08, 72.88), (12.74, 77.83))  # Mysuru, Chennai, Mumbai, Hosur


class LastGood(msgspec.Struct, frozen=True):
    """The courier's last good ping: what the validator remembers of it, and its exact bytes."""

    ts_ms: int
    lat: float
    lon: float
    payload: bytes


class FaultContext(msgspec.Struct, frozen=True):
    ping: WirePing  # the good ping this slot would have carried
    last_good: LastGood | None
    grid: StreetGrid
    area: ServiceArea
    limits: Limits


Injector = Callable[[dict, FaultContext, random.Random], bytes | None]


def inject(kind: FaultKind, ctx: FaultContext, rng: random.Random) -> bytes | None:
    """The corrupted payload, or None when ``kind`` cannot apply to this courier right now.

    Only ``out_of_order`` and ``impossible_speed`` can refuse: both need a previous good ping (recent enough
    that the fault is not judged stale first, near enough that a 5 km jump fits in the area).
    """
    fields = msgspec.structs.asdict(ctx.ping)
    if fields["order_id"] is None:
        del fields["order_id"]
    return rng.choice(_VARIANTS[kind])(fields, ctx, rng)


def encode(fields: object) -> bytes:  # the ping's fields, or any JSON value a fault puts in their place
    # json, not msgspec: only json writes the NaN/Infinity literals some GPS stacks emit.
    return json.dumps(fields, separators=(",", ":"), allow_nan=True).encode()


def _set(name: str, value: Callable[[dict, FaultContext, random.Random], object]) -> Injector:
    return lambda fields, ctx, rng: encode({**fields, name: value(fields, ctx, rng)})


def _drop(name: str) -> Injector:
    return lambda fields, ctx, rng: encode({k: v for k, v in fields.items() if k != name})


def _iso(ts_ms: int, tz: timezone | None) -> str:
    stamp = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return (stamp.astimezone(tz) if tz else stamp.replace(tzinfo=None)).isoformat(timespec="milliseconds")


# -- malformed_payload -------------------------------------------------------------------------------------


def _not_utf8(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    # A stray 0xFF byte, as from a broken serial bridge; 0xFF never occurs in UTF-8.
    return encode(fields).replace(b'"partner_id":"', b'"partner_id":"\xff', 1)


def _utf16(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    return json.dumps(fields).encode("utf-16")


def _truncated(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    raw = encode(fields)
    return raw[: rng.randint(1, len(raw) - 1)]


def _key_value_text(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    return ";".join(f"{name}={value}" for name, value in fields.items()).encode()


def _oversized(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    padding = ctx.limits.max_payload_bytes - len(encode(fields)) + rng.randint(1, 2048)
    return encode({**fields, "debug_log": "x" * max(1, padding)})


_MALFORMED: tuple[Injector, ...] = (
    _not_utf8,
    _utf16,
    _truncated,
    _key_value_text,
    lambda fields, ctx, rng: encode(list(fields.values())),
    lambda fields, ctx, rng: encode(fields["ts"]),
    _oversized,
    _set("speed", lambda f, ctx, rng: -round(rng.uniform(0.1, 20), 2)),
    _set("speed", lambda f, ctx, rng: rng.choice((str(f["speed"]), "fast"))),
    _set(
        "heading", lambda f, ctx, rng: rng.choice((round(rng.uniform(360.1, 720), 1), -round(rng.uniform(0.1, 180), 1)))
    ),
    _set("accuracy", lambda f, ctx, rng: rng.choice((0, -round(rng.uniform(0.1, 20), 1)))),
    _set("vehicle", lambda f, ctx, rng: rng.choice(("truck", "rocket", "boat", "hoverboard"))),
    _set("order_id", lambda f, ctx, rng: rng.randint(1, 10**9)),
)

# -- missing_partner_id ------------------------------------------------------------------------------------

_MISSING_PARTNER_ID: tuple[Injector, ...] = (
    _drop("partner_id"),
    _set("partner_id", lambda f, ctx, rng: None),
    _set("partner_id", lambda f, ctx, rng: rng.choice(("", "   ", "\t"))),
    _set("partner_id", lambda f, ctx, rng: int("".join(filter(str.isdigit, f["partner_id"])) or 0)),
    _set("partner_id", lambda f, ctx, rng: [f["partner_id"]]),
    _set(
        "partner_id",
        lambda f, ctx, rng: f["partner_id"] + "-" + "x" * (PARTNER_ID_MAX + rng.randint(0, 40) - len(f["partner_id"])),
    ),
)

# -- invalid_coordinates -----------------------------------------------------------------------------------


def _zero_zero(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    return encode({**fields, "lat": 0, "lon": 0} if rng.random() < 0.5 else {**fields, "lat": 0.0, "lon": 0.0})


def _coordinate(make: Callable[[str, float, random.Random], object]) -> Injector:
    def corrupt(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
        name = rng.choice(("lat", "lon"))
        return encode({**fields, name: make(name, fields[name], rng)})

    return corrupt


_INVALID_COORDINATES: tuple[Injector, ...] = (
    _drop("lat"),
    _drop("lon"),
    _coordinate(lambda name, value, rng: str(value)),
    _coordinate(lambda name, value, rng: rng.choice((None, True, False))),
    _coordinate(lambda name, value, rng: rng.choice((90.5, -91.0, 123.4) if name == "lat" else (181.0, -180.5, 200.0))),
    _zero_zero,
    _coordinate(lambda name, value, rng: rng.choice((math.nan, math.inf, -math.inf))),
)

# -- invalid_timestamp -------------------------------------------------------------------------------------

_INVALID_TIMESTAMP: tuple[Injector, ...] = (
    _drop("ts"),
    _set("ts", lambda f, ctx, rng: rng.choice(("yesterday", "now", "12:30"))),
    _set("ts", lambda f, ctx, rng: _iso(f["ts"], None)),
    _set("ts", lambda f, ctx, rng: rng.choice((True, False))),
)

# -- outside_service_area ----------------------------------------------------------------------------------


def _far_away(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    places = [(lat, lon) for lat, lon in FAR_AWAY if not ctx.area.contains(lat, lon)]
    lat, lon = rng.choice(places) if places else point_beyond_area(ctx.grid, rng)
    return encode(
        {**fields, "lat": round(lat + rng.uniform(-0.01, 0.01), 7), "lon": round(lon + rng.uniform(-0.01, 0.01), 7)}
    )


def _just_beyond(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
    lat, lon = point_beyond_area(ctx.grid, rng)
    return encode({**fields, "lat": round(lat, 7), "lon": round(lon, 7)})


# -- stale_timestamp, future_timestamp ---------------------------------------------------------------------


def _shifted_ts(direction: int, limit: Callable[[Limits], int], as_iso: bool) -> Injector:
    def corrupt(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes:
        shift = max(CLOCK_FAULT_MIN_MS, 2 * limit(ctx.limits)) + rng.randint(0, CLOCK_FAULT_SPREAD_MS)
        ts_ms = fields["ts"] + direction * shift
        # A valid ISO-8601 string with an offset is as good as epoch ms: only the age is wrong.
        return encode({**fields, "ts": _iso(ts_ms, INDIA) if as_iso else ts_ms})

    return corrupt


# -- out_of_order, impossible_speed ------------------------------------------------------------------------


def _out_of_order(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes | None:
    """A fix a few seconds older than the last good one, about where that one was (a delayed upload)."""
    last = ctx.last_good
    if last is None:
        return None
    # Never so old that the validator's clock check would call it stale first.
    oldest = max(last.ts_ms - OUT_OF_ORDER_BACK_MS[1], fields["ts"] - ctx.limits.max_age_ms // 2)
    newest = last.ts_ms - OUT_OF_ORDER_BACK_MS[0]
    if oldest > newest:
        return None
    x, y = ctx.grid.projection.to_xy(last.lat, last.lon)
    bearing, offset = rng.uniform(0, 2 * math.pi), rng.uniform(0, fields["accuracy"] / 2)
    lat, lon = ctx.grid.projection.to_latlon(x + offset * math.sin(bearing), y + offset * math.cos(bearing))
    return encode({**fields, "ts": rng.randint(oldest, newest), "lat": round(lat, 7), "lon": round(lon, 7)})


def _impossible_speed(fields: dict, ctx: FaultContext, rng: random.Random) -> bytes | None:
    """A GPS jump: a corner at least 5 km (and far more than the vehicle could ride) from the last good fix."""
    last = ctx.last_good
    if last is None:
        return None
    limits = ctx.limits
    elapsed_s = (fields["ts"] - last.ts_ms) / 1000
    limit = limits.speed_limits.get(fields["vehicle"], limits.default_speed_limit)
    allowance = min(fields["accuracy"], limits.accuracy_allowance_cap_m)
    needed_m = max(JUMP_MIN_M, limit * elapsed_s + allowance + 500)
    for _ in range(30):
        lat, lon = node_latlon(ctx.grid, rng.choice(ctx.grid.node_list))
        if haversine_m(last.lat, last.lon, lat, lon) >= needed_m:
            return encode({**fields, "lat": round(lat, 7), "lon": round(lon, 7)})
    return None


_VARIANTS: dict[FaultKind, tuple[Injector, ...]] = {
    FaultKind.MALFORMED_PAYLOAD: _MALFORMED,
    FaultKind.MISSING_PARTNER_ID: _MISSING_PARTNER_ID,
    FaultKind.INVALID_COORDINATES: _INVALID_COORDINATES,
    FaultKind.INVALID_TIMESTAMP: _INVALID_TIMESTAMP,
    FaultKind.OUTSIDE_SERVICE_AREA: (_far_away, _just_beyond),
    FaultKind.STALE_TIMESTAMP: (
        _shifted_ts(-1, lambda limits: limits.max_age_ms, as_iso=False),
        _shifted_ts(-1, lambda limits: limits.max_age_ms, as_iso=True),
    ),
    FaultKind.FUTURE_TIMESTAMP: (
        _shifted_ts(+1, lambda limits: limits.max_skew_ms, as_iso=False),
        _shifted_ts(+1, lambda limits: limits.max_skew_ms, as_iso=True),
    ),
    FaultKind.OUT_OF_ORDER: (_out_of_order,),
    FaultKind.IMPOSSIBLE_SPEED: (_impossible_speed,),
}
