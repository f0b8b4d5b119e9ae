"""The WebSocket protocol: what clients may send, and how the server says no. Pure.

Client -> server (JSON objects with ``type``)::

    {"type": "viewport", "bbox": [west, south, east, north]}   only couriers in this box (null: all)
    {"type": "follow", "partner_id": "courier-0001"}           always include this courier (null: stop)
    {"type": "ping"}                                           server answers {"type": "pong"}

Server -> client: ``snapshot`` on connect and after a view change (at most one per tick), ``delta`` every
tick, ``stats`` every second, ``pong`` (see README "WebSocket protocol"). Invalid JSON closes the socket with
1003, a well-formed message we do not understand with 1008, a frame over the size limit with 1009.

Limits per client (settings ``ws_messages_per_s``, ``ws_messages_burst``, ``ws_max_per_address``,
``max_clients``): a client sending faster than its :class:`TokenBucket` allows is closed with 1008
(:func:`too_many_messages`); a connection beyond the gateway's or its address's cap is closed with 1013 (try
again later: the cap frees up when others leave), with :data:`TOO_MANY_CLIENTS` or
:data:`TOO_MANY_FROM_ADDRESS` as the reason.
"""

from __future__ import annotations

import math

import msgspec
from starlette import status as ws_status

from tracker.models import ID_MAX

MAX_CLIENT_FRAME_BYTES = 4096


class Viewport(msgspec.Struct, frozen=True):
    bbox: tuple[float, float, float, float] | None  # west, south, east, north


class Follow(msgspec.Struct, frozen=True):
    partner_id: str | None


class Ping(msgspec.Struct, frozen=True):
    pass


class Refusal(msgspec.Struct, frozen=True):
    """Close the socket with ``code``; ``reason`` goes into the close frame (≤ 123 bytes)."""

    code: int
    reason: str


ClientMessage = Viewport | Follow | Ping | Refusal


def _refuse(code: int, reason: str) -> Refusal:
    return Refusal(code, reason.encode()[:123].decode("utf-8", "ignore"))


TOO_MANY_CLIENTS = _refuse(ws_status.WS_1013_TRY_AGAIN_LATER, "too many clients")
TOO_MANY_FROM_ADDRESS = _refuse(ws_status.WS_1013_TRY_AGAIN_LATER, "too many connections from this address")


def too_many_messages(per_s: float, burst: int) -> Refusal:
    return _refuse(
        ws_status.WS_1008_POLICY_VIOLATION, f"too many messages: at most {per_s:g} per second, bursts of {burst}"
    )


class TokenBucket:
    """A client's message allowance: ``burst`` at once, refilled at ``per_s`` a second. Pure: the caller
    passes the time (``time.monotonic()`` in the gateway), so a test drives the clock."""

    def __init__(self, per_s: float, burst: int, now: float) -> None:
        self.per_s = per_s
        self.burst = burst
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        """Spend one message at ``now``; False when the allowance is used up (the message is over the limit)."""
        if now > self.at:
            self.tokens = min(float(self.burst), self.tokens + (now - self.at) * self.per_s)
            self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def parse_bbox(value: object) -> tuple[float, float, float, float] | str:
    """A (west, south, east, north) box, or what is wrong with ``value``."""
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        return "bbox must be [west, south, east, north]"
    # A 400-digit integer is an int: bound it before math.isfinite, which would raise OverflowError on it.
    if not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e300 and math.isfinite(v) for v in value
    ):
        return "bbox must hold four finite numbers"
    west, south, east, north = (float(v) for v in value)
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        return "bbox needs -180 <= west <= east <= 180 and -90 <= south <= north <= 90"
    return west, south, east, north


def parse_client_frame(text: str | None, data: bytes | None = None) -> ClientMessage:
    if text is None:
        return _refuse(ws_status.WS_1003_UNSUPPORTED_DATA, "binary frames are not supported; send JSON text")
    if len(text) > MAX_CLIENT_FRAME_BYTES:
        return _refuse(ws_status.WS_1009_MESSAGE_TOO_BIG, f"frames are limited to {MAX_CLIENT_FRAME_BYTES} bytes")
    try:
        doc = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # msgspec recurses once per level: ~1,000 fit in 4 KiB
        return _refuse(ws_status.WS_1003_UNSUPPORTED_DATA, "invalid JSON")
    if not isinstance(doc, dict):
        return _refuse(ws_status.WS_1008_POLICY_VIOLATION, "a message must be a JSON object")
    kind = doc.get("type")
    if kind == "viewport":
        if "bbox" not in doc:
            return _refuse(ws_status.WS_1008_POLICY_VIOLATION, "viewport needs bbox")
        if doc["bbox"] is None:
            return Viewport(None)
        bbox = parse_bbox(doc["bbox"])
        return _refuse(ws_status.WS_1008_POLICY_VIOLATION, bbox) if isinstance(bbox, str) else Viewport(bbox)
    if kind == "follow":
        partner_id = doc.get("partner_id")
        if partner_id is not None and (not isinstance(partner_id, str) or not 0 < len(partner_id) <= ID_MAX):
            return _refuse(
                ws_status.WS_1008_POLICY_VIOLATION, f"follow needs partner_id: a string of 1-{ID_MAX} chars or null"
            )
        return Follow(partner_id)
    if kind == "ping":
        return Ping()
    return _refuse(ws_status.WS_1008_POLICY_VIOLATION, f"unknown message type {str(kind)[:40]!r}")
