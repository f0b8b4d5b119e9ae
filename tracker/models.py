"""Domain records: what a ping is once parsed, and what the validator decided about it."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import msgspec


class Reason(enum.Enum):
    """Stable reject codes (header ``dlq.reason``); see DESIGN.md."""

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


# The hot path's structs are declared with gc=False: they hold only strings, numbers and bytes, so they can
# never be part of a reference cycle, and the cyclic GC need not track the hundreds of thousands of them
# alive at a time (its full collections would otherwise stall the pipeline for tens of milliseconds).


class Ping(msgspec.Struct, frozen=True, gc=False):
    """A structurally valid ping. ``ts_ms`` is the fix time in epoch milliseconds.

    The annotations double as the validator's fast path: ``msgspec`` decodes a well-formed payload straight
    into this struct, checking types and ranges in C (see rules.parse). Constructing it in Python does not
    check them.
    """

    partner_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    ts_ms: int = msgspec.field(name="ts")
    speed: Annotated[float, msgspec.Meta(ge=0)] | None = None
    heading: Annotated[float, msgspec.Meta(ge=0, le=360)] | None = None
    accuracy: Annotated[float, msgspec.Meta(gt=0)] | None = None
    vehicle: Literal["walk", "bike", "scooter", "car"] | None = None
    order_id: str | None = None


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
        return cls(ping.partner_id, ping.lat, ping.lon, ping.ts_ms, accepted_at_ms, ping.speed, ping.heading,
                   ping.accuracy, ping.vehicle, ping.order_id)
