"""Domain records: what a ping is once parsed, and what the validator decided about it."""

from __future__ import annotations

import enum

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


class Ping(msgspec.Struct, frozen=True):
    """A structurally valid ping. ``ts_ms`` is the fix time in epoch milliseconds."""

    partner_id: str
    lat: float
    lon: float
    ts_ms: int
    speed: float | None = None
    heading: float | None = None
    accuracy: float | None = None
    vehicle: str | None = None
    order_id: str | None = None


class LastFix(msgspec.Struct, frozen=True):
    """The courier's last accepted fix: what ordering, duplicate and speed checks compare against."""

    ts_ms: int
    lat: float
    lon: float


class Verdict(msgspec.Struct, frozen=True):
    outcome: Outcome
    reason: Reason | None = None
    detail: str = ""
    ping: Ping | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


class Position(msgspec.Struct, frozen=True, omit_defaults=True):
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
