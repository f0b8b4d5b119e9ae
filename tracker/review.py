"""Rejected-ping review, the pure part: dead-letter records to review entries, and replay records.

A review entry's id is ``<dlq partition>:<dlq offset>``, the same string a replay carries in ``replay.of``.
"""

from __future__ import annotations

import base64
import enum
import json
import math

import msgspec

from tracker import constants as c
from tracker.kafka import OutRecord, Record

REPLAY_CAP_DEFAULT = 3


class Status(enum.Enum):
    NEW = "new"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


class Original(msgspec.Struct, frozen=True):
    topic: str
    partition: int
    offset: int
    timestamp: int


class Entry(msgspec.Struct, frozen=True):
    """What the review index keeps about one dead letter (immutable part; status lives beside it)."""

    id: str
    reason: str
    detail: str
    partner_id: str | None
    rejected_at: int
    original: Original
    lat: float | None
    lon: float | None
    replay_count: int
    key: str | None  # the record key, decoded for display (replacement characters if not UTF-8)
    key_b64: str | None
    headers: list[tuple[str, str]]  # every header, values decoded for display
    headers_b64: list[tuple[str, str]]  # every header, exact bytes (to rebuild a replay)
    payload_b64: str
    validator: str | None = None
    attempts: int | None = None


def entry_id(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _coordinate(value: object, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and -bound <= value <= bound else None


def payload_fields(payload: bytes | None) -> tuple[str | None, float | None, float | None]:
    """Best-effort partner_id, lat, lon of a payload that may be anything at all."""
    try:
        doc = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, None, None
    if not isinstance(doc, dict):
        return None, None, None
    partner_id = doc.get("partner_id")
    lat, lon = _coordinate(doc.get("lat"), 90), _coordinate(doc.get("lon"), 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None
    return (partner_id if isinstance(partner_id, str) and partner_id.strip() else None), lat, lon


def entry_from_record(record: Record) -> Entry:
    headers = {name: value for name, value in record.headers}

    def header(name: str) -> str | None:
        return _text(headers.get(name))

    partner_id, lat, lon = payload_fields(record.value)
    if partner_id is None and record.key:
        partner_id = _text(record.key)
    attempts = header(c.H_ATTEMPTS)
    return Entry(
        id=entry_id(record.partition, record.offset),
        reason=header(c.H_REASON) or "unknown",
        detail=header(c.H_DETAIL) or "",
        partner_id=partner_id[:64] if partner_id else None,
        rejected_at=_int(header(c.H_REJECTED_AT), record.timestamp_ms),
        original=Original(header(c.H_ORIGINAL_TOPIC) or "", _int(header(c.H_ORIGINAL_PARTITION), -1),
                          _int(header(c.H_ORIGINAL_OFFSET), -1), _int(header(c.H_ORIGINAL_TIMESTAMP), 0)),
        lat=lat,
        lon=lon,
        replay_count=_int(header(c.H_REPLAY_COUNT), 0),
        key=_text(record.key),
        key_b64=_b64(record.key),
        headers=[(name, _text(value) or "") for name, value in record.headers],
        headers_b64=[(name, _b64(value) or "") for name, value in record.headers],
        payload_b64=_b64(record.value or b""),
        validator=header(c.H_VALIDATOR),
        attempts=_int(attempts, 0) if attempts is not None else None,
    )


def payload_of(entry: Entry) -> bytes:
    return base64.b64decode(entry.payload_b64)


class ReplayRefused(Exception):
    """A replay that must not happen; the message says why (HTTP 422, CLI exit 1)."""


def edited_payload(text: str | bytes) -> tuple[bytes, str | None]:
    """An operator's corrected payload: must be a JSON object. Returns (bytes, its partner_id if a string)."""
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplayRefused(f"the edited payload is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ReplayRefused("the edited payload must be a JSON object")
    partner_id = doc.get("partner_id")
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(), (
        partner_id if isinstance(partner_id, str) and partner_id else None)


def replay_record(entry: Entry, *, cap: int, payload: bytes | None = None, partner_id: str | None = None) -> OutRecord:
    """The record to send back to ``location-updates``: original key (or the edited partner_id), original
    headers without any ``dlq.*`` or earlier ``replay.*`` ones, plus ``replay.of`` and ``replay.count``."""
    count = entry.replay_count + 1
    if count > cap:
        raise ReplayRefused(f"this ping was already replayed {entry.replay_count} times; the cap is {cap}")
    kept = tuple((name, base64.b64decode(value)) for name, value in entry.headers_b64
                 if not name.startswith(c.DLQ_HEADER_PREFIX) and not name.startswith("replay."))
    if partner_id is not None:
        key = partner_id.encode()
    else:
        key = base64.b64decode(entry.key_b64) if entry.key_b64 is not None else None
    headers = kept + ((c.H_REPLAY_OF, entry.id.encode()), (c.H_REPLAY_COUNT, str(count).encode()))
    return OutRecord(value=payload if payload is not None else payload_of(entry), key=key, headers=headers)
