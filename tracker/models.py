"""Domain records: what a ping is once parsed, and what the validator decided about it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Literal, get_args

import msgspec


class Reason(enum.Enum):
    """Stable reject codes (header ``dlq.reason``), the one list of them: the simulator's fault kinds
    (simulator/faults.py) name these, and the review page reads them from ``/api/config``. docs/contract.md,
    "Reject codes", says when each is given."""

    MALFORMED_PAYLOAD = "malformed_payload"
    MISSING_PARTNER_ID = "missing_partner_id"
    INVALID_COORDINATES = "invalid_coordinates"
    OUTSIDE_SERVICE_AREA = "outside_service_area"
    INVALID_TIMESTAMP = "invalid_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    OUT_OF_ORDER = "out_of_order"
    IMPOSSIBLE_SPEED = "impossible_speed"
    PROCESSING_FAILED = "processing_failed"


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


# What a ping's optional ``vehicle`` may name. The Literal is the one list: msgspec checks it when decoding a
# Ping, and VEHICLES (rules.parse's check and its detail, the settings' speed-limit parser) is read from it.
Vehicle = Literal["walk", "bike", "scooter", "car"]
VEHICLES: tuple[Vehicle, ...] = get_args(Vehicle)
# Default speed limits (m/s) for ``impossible_speed``, per vehicle and for a ping that names none: the defaults
# of Settings.speed_limits and Settings.default_speed_limit (TRACKER_SPEED_LIMITS, TRACKER_DEFAULT_SPEED_LIMIT).
DEFAULT_SPEED_LIMITS: Mapping[str, float] = MappingProxyType({"walk": 4.0, "bike": 15.0, "scooter": 35.0, "car": 45.0})
UNKNOWN_VEHICLE_SPEED_LIMIT = 45.0

# Bounds of a ping's fields, defined here because the Ping struct below enforces them (rules.py imports them).
# An id (partner_id, order_id) is 1 to ID_MAX characters: it becomes a Redis key and a label on the map.
ID_MAX = 64
# Epoch milliseconds from 1970 up to (not including) 10**13, i.e. before the year 2286: far beyond any real
# fix, and small enough that every consumer (msgpack's int64, a browser's 2**53 integers) holds it exactly.
TS_MS_MAX = 10**13
# No number at or beyond ±2**63 is accepted in any numeric field: lat, lon, heading and ts have far smaller
# ranges of their own, and speed and accuracy, which have none, stay below this.
NUMBER_MAX = 2**63

# The hot path's structs are declared with gc=False: they hold only strings, numbers and bytes, so they can
# never be part of a reference cycle, and the cyclic GC need not track the hundreds of thousands of them
# alive at a time (its full collections would otherwise stall the pipeline for tens of milliseconds).


class Ping(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """A structurally valid ping. ``ts_ms`` is the fix time in epoch milliseconds.

    The annotations double as the validator's fast path: ``msgspec`` decodes a well-formed payload straight
    into this struct, checking types and ranges in C (see rules.parse). It forbids unknown fields so that a
    payload it decodes is one flat object (every field here is a scalar) and needs no depth check; payloads
    with extra fields take a second decoder in rules.py. What annotations can't express (ids of printable
    characters, a blank id, (0, 0)) rules.parse checks after decoding. Constructing it in Python checks nothing.
    """

    partner_id: Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    ts_ms: Annotated[int, msgspec.Meta(ge=0, lt=TS_MS_MAX)] = msgspec.field(name="ts")
    speed: Annotated[float, msgspec.Meta(ge=0, lt=NUMBER_MAX)] | None = None
    heading: Annotated[float, msgspec.Meta(ge=0, le=360)] | None = None
    accuracy: Annotated[float, msgspec.Meta(gt=0, lt=NUMBER_MAX)] | None = None
    vehicle: Vehicle | None = None
    order_id: Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX)] | None = None


class LastFix(msgspec.Struct, frozen=True, gc=False):
    """The courier's last accepted fix: what ordering, duplicate and speed checks compare against."""

    ts_ms: int
    lat: float
    lon: float


class Verdict(msgspec.Struct, frozen=True, gc=False):
    outcome: Outcome
    reason: Reason | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


class Position(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """An accepted position: the value of ``courier-positions`` and of the Redis latest-position hash."""

    id: str
    lat: float
    lon: float
    ts: int
    accepted_at_ms: int
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    vehicle: str | None = None
    order_id: str | None = None

    @classmethod
    def from_ping(cls, ping: Ping, accepted_at_ms: int) -> Position:
        return cls(
            ping.partner_id,
            ping.lat,
            ping.lon,
            ping.ts_ms,
            accepted_at_ms,
            ping.speed,
            ping.heading,
            ping.accuracy,
            ping.vehicle,
            ping.order_id,
        )


def newer_wins(held_ts: int | None, incoming_ts: int) -> bool:
    """Whether a courier's incoming fix replaces the one held: newer wins by event time (``ts``).

    The rule, the same in every place that holds a courier's latest fix (Redis, by apply_batch.lua; the
    gateway's hub, Hub.ingest; the map page, protocol.js ``fixReplaces``): an incoming fix replaces the held
    one only when its ``ts`` is strictly greater. An older fix is ignored, so a late, replayed or redelivered
    fix never moves a marker back; a fix with the *same* ``ts`` is ignored too (the first one applied stays),
    so two fixes stamped alike never flip a marker back and forth. With nothing held, any fix is taken. The
    page still takes the gateway's new status for an equal ``ts``: a status is the gateway's reading of the
    clock, not part of the fix. tests/data/newer_wins.json holds the cases, run against all three.
    """
    return held_ts is None or incoming_ts > held_ts


# -- Kafka records, as plain values: what pure code (rules, dead letters, review entries) needs to see --------

# Kafka record headers: (name, value) pairs; a value may be null.
Headers = tuple[tuple[str, bytes | None], ...]


class Record(msgspec.Struct, frozen=True, gc=False):
    """A consumed Kafka record (tracker.kafka makes them from the client's)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers


class OutRecord(msgspec.Struct, frozen=True, gc=False):
    """A record to produce (tracker.kafka.Producer.send_many)."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None  # None: by key (murmur2), round-robin when the key is None
