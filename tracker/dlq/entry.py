"""Rejected-ping review, the pure part: dead-letter records to review entries, their JSON rows, and replay
records.

A review entry's id is ``<dlq partition>:<dlq offset>``, the same string a replay carries in ``replay.of``.

:func:`entry_from_record` is total: the DLQ indexer calls it on whatever the DLQ topic holds (anyone who can
produce to it can put anything there), and an exception would stop the review index for every dead letter
behind it. Every part of an entry is bounded in bytes: the payload is kept whole only when it is small
enough to replay as it is (``max_payload_bytes``: the validator rejects anything bigger anyway), otherwise
as a preview with its size and sha256; header names and values are cut for display; a replay carries the
original headers only up to the dead letters' own headers budget.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import math
from typing import overload

import msgspec

from tracker import constants as c
from tracker import replay_sig, rules
from tracker.models import OutRecord, Reason, Record, Verdict
from tracker.settings import Settings

_DEFAULTS = Settings()
TEXT_MAX = 256  # characters of a header name or value, a key, a topic or a validator id shown for review
REASON_MAX = 64  # a reason code longer than this (or unprintable) was not written by a validator
HEADERS_SHOWN_HEAD, HEADERS_SHOWN_TAIL = 48, 16  # shown when a record has more (the dlq.* ones are last)
INT_DIGITS_MAX = 18  # header numbers (offsets, epoch ms, attempts) fit in an int64 with this many digits
TOO_LARGE = "too large to replay as is; replay an edited payload"


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
    replay_count: int  # of a genuine (signed) replay; 0 for anything else
    key: str | None  # the record key, decoded and cut for display (replacement characters if not UTF-8)
    key_b64: str | None  # the exact key, for a replay (None when there is none or it is too long to keep)
    headers: list[tuple[str, str]]  # the headers for display: names and values decoded and cut
    # The original headers a replay carries (not dlq.* nor replay.*), exact bytes (None: a null value).
    headers_b64: list[tuple[str, str | None]]
    payload_b64: str  # the whole value, or its first max_payload_bytes when payload_truncated
    validator: str | None = None
    attempts: int | None = None
    payload_truncated: bool = False
    payload_size: int | None = None  # the original value's size and sha256 (hex) when payload_truncated
    payload_sha256: str | None = None
    replay_as_is: bool = True  # False when the value or the key kept here is not the original's


class Row(msgspec.Struct, frozen=True):
    """An entry with its current review status (what the index returns)."""

    entry: Entry
    status: str
    status_by: str | None
    status_at: int | None


def row_json(row: Row) -> dict:
    """A row as the API lists it and ``tracker dlq ls --json`` prints it (the detail views add to it)."""
    entry = row.entry
    return {
        "id": entry.id,
        "reason": entry.reason,
        "detail": entry.detail,
        "partner_id": entry.partner_id,
        "rejected_at": entry.rejected_at,
        "status": row.status,
        "status_by": row.status_by,
        "status_at": row.status_at,
        "original": msgspec.to_builtins(entry.original),
        "lat": entry.lat,
        "lon": entry.lon,
        "replay_count": entry.replay_count,
        "payload_truncated": entry.payload_truncated,
        "replay_as_is": entry.replay_as_is,
    }


_encode = msgspec.json.Encoder().encode


def entry_id(partition: int, offset: int) -> str:
    return f"{partition}:{offset}"


def _text(raw: bytes | None, limit: int = TEXT_MAX) -> str | None:
    return None if raw is None else raw[: 4 * limit].decode("utf-8", "replace")[:limit]


def _name(name: str) -> str:
    """A header name for display: cut, and without anything JSON cannot carry (lone surrogates)."""
    return name[:TEXT_MAX].encode("utf-8", "replace").decode("utf-8")


@overload
def _b64(raw: bytes) -> str: ...
@overload
def _b64(raw: bytes | None) -> str | None: ...
def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _int(raw: bytes | None, default: int) -> int:
    """A decimal header value; ``default`` when absent, malformed or too long to be a real one."""
    if raw is None or not 0 < len(raw) <= INT_DIGITS_MAX + 1 or not raw.isascii():
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _printable(text: str | None, limit: int) -> str | None:
    """``text`` when it can be shown and used as an id (printable, not blank, at most ``limit``)."""
    if not isinstance(text, str) or not 0 < len(text) <= limit or not text.isprintable() or not text.strip():
        return None
    return text


def _coordinate(value: object, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    # An int of any size is compared as an int: float() of a 300-digit one raises OverflowError.
    if not -bound <= value <= bound or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return float(value)


def payload_fields(payload: bytes | None, max_bytes: int) -> tuple[str | None, float | None, float | None]:
    """Best-effort partner_id, lat, lon of a payload that may be anything at all."""
    # Bounded (size, depth); may hold NaN, huge ints and lone surrogates, which the checks below refuse.
    doc = rules.decode_json(payload, max_bytes) if payload else None
    if not isinstance(doc, dict):
        return None, None, None
    partner_id = _printable(doc.get("partner_id"), rules.PARTNER_ID_MAX)
    lat, lon = _coordinate(doc.get("lat"), 90), _coordinate(doc.get("lon"), 180)
    if lat is None or lon is None or (lat == 0 and lon == 0):
        lat = lon = None
    return partner_id, lat, lon


def _key_partner(key: bytes | None) -> str | None:
    if key is None or len(key) > 4 * rules.PARTNER_ID_MAX:
        return None
    try:
        return _printable(key.decode("utf-8"), rules.PARTNER_ID_MAX)
    except UnicodeDecodeError:
        return None


def display_headers(headers: tuple | list) -> list[tuple[str, str]]:
    """Every header when there are few; else the first and the last ones around a line saying how many
    are not shown (a dead letter's own dlq.* headers come last)."""

    def shown(pair: tuple) -> tuple[str, str]:
        name, value = pair
        return _name(name), _text(value) or ""

    if len(headers) <= HEADERS_SHOWN_HEAD + HEADERS_SHOWN_TAIL:
        return [shown(pair) for pair in headers]
    hidden = len(headers) - HEADERS_SHOWN_HEAD - HEADERS_SHOWN_TAIL
    return (
        [shown(pair) for pair in headers[:HEADERS_SHOWN_HEAD]]
        + [("…", f"{hidden} more headers not shown")]
        + [shown(pair) for pair in headers[-HEADERS_SHOWN_TAIL:]]
    )


def replay_headers(headers: tuple | list, max_bytes: int) -> list[tuple[str, str | None]]:
    """The headers a replay carries, base64, in order while they fit ``max_bytes`` (as in letter.py)."""
    kept = []
    used = 0
    for name, value in headers:
        if name.startswith((c.DLQ_HEADER_PREFIX, c.REPLAY_HEADER_PREFIX)):
            continue
        try:
            used += len(name.encode("utf-8")) + len(value or b"")
        except UnicodeEncodeError:
            break  # a name no producer could send (a lone surrogate): it and the rest stay behind
        if used > max_bytes:
            break
        kept.append((name, _b64(value)))
    return kept


def _unreadable(why: bytes | None) -> str:
    """The detail of a DLQ record the Kafka client could not read (kafka.unreadable): it has no dlq.* headers."""
    return "" if why is None else f"this DLQ record could not be read: {_text(why, c.DETAIL_MAX_BYTES)}"


def _dead_letter_cut(headers: dict[str, bytes | None], value: bytes) -> tuple[bool, int | None, str | None]:
    """Whether the dead letter says it keeps only part of the original, and the original value's size and
    sha256 when it says so (and they look right)."""
    if headers.get(c.H_TRUNCATED) is None:
        return False, None, None
    size = _int(headers.get(c.H_ORIGINAL_SIZE), -1)
    digest = _text(headers.get(c.H_ORIGINAL_SHA256), 64)
    if digest is not None and (len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest)):
        digest = None
    return True, size if size > len(value) else None, digest


def entry_from_record(
    record: Record,
    *,
    replay_secret: str | None,
    payload_max_bytes: int,
    headers_max_bytes: int = _DEFAULTS.dlq_headers_max_bytes,
) -> Entry:
    """The review entry of one DLQ record, whatever it holds; never raises."""
    try:
        entry = _entry(record, replay_secret, payload_max_bytes, headers_max_bytes)
        _encode(entry)  # the index stores it as JSON: anything that cannot be must not get this far
        return entry
    except Exception as exc:  # noqa: BLE001 - a bug here must not stop the index: the minimal entry shows the bytes
        return minimal_entry(record, payload_max_bytes, exc)


def _entry(record: Record, replay_secret: str | None, payload_max_bytes: int, headers_max_bytes: int) -> Entry:
    headers = dict(record.headers)
    value = record.value or b""
    dead_letter_cut, original_size, original_sha256 = _dead_letter_cut(headers, value)
    partner_id, lat, lon = payload_fields(record.value, payload_max_bytes)
    if partner_id is None:
        partner_id = _key_partner(record.key)
    too_long = len(value) > payload_max_bytes
    payload_truncated = too_long or original_size is not None
    payload_size: int | None
    payload_sha256: str | None
    if payload_truncated:
        payload_size = original_size if original_size is not None else len(value)
        payload_sha256 = original_sha256 if original_size is not None else hashlib.sha256(value).hexdigest()
    else:
        payload_size = payload_sha256 = None
    key_kept = record.key is None or len(record.key) <= payload_max_bytes
    kept_headers = replay_headers(record.headers, headers_max_bytes)
    attempts = headers.get(c.H_ATTEMPTS)
    return Entry(
        id=entry_id(record.partition, record.offset),
        reason=_printable(_text(headers.get(c.H_REASON), REASON_MAX + 1), REASON_MAX) or "unknown",
        detail=_text(headers.get(c.H_DETAIL), c.DETAIL_MAX_BYTES) or _unreadable(headers.get(c.H_UNREADABLE)),
        partner_id=partner_id,
        rejected_at=_int(headers.get(c.H_REJECTED_AT), record.timestamp_ms),
        original=Original(
            _text(headers.get(c.H_ORIGINAL_TOPIC)) or "",
            _int(headers.get(c.H_ORIGINAL_PARTITION), -1),
            _int(headers.get(c.H_ORIGINAL_OFFSET), -1),
            _int(headers.get(c.H_ORIGINAL_TIMESTAMP), 0),
        ),
        lat=lat,
        lon=lon,
        replay_count=replay_sig.verified_count(record.headers, record.value, replay_secret) or 0,
        key=_text(record.key),
        key_b64=_b64(record.key) if key_kept else None,
        headers=display_headers(record.headers),
        headers_b64=kept_headers,
        payload_b64=_b64(value[:payload_max_bytes]),
        validator=_text(headers.get(c.H_VALIDATOR)),
        attempts=_int(attempts, 0) if attempts is not None else None,
        payload_truncated=payload_truncated,
        payload_size=payload_size,
        payload_sha256=payload_sha256,
        # A replay as is must send what the courier sent: not a prefix, and with its own key. (Headers that
        # did not fit are only lost context, not a different ping.)
        replay_as_is=not (payload_truncated or dead_letter_cut or not key_kept),
    )


def minimal_entry(record: Record, payload_max_bytes: int, error: BaseException) -> Entry:
    """What the index keeps of a record whose entry could not be built: where it is and its raw bytes."""
    value = bytes(record.value) if isinstance(record.value, (bytes, bytearray)) else b""
    reason = None
    try:
        for name, header_value in record.headers:
            if name == c.H_REASON:
                reason = _printable(_text(header_value, REASON_MAX + 1), REASON_MAX)
    except Exception:  # noqa: BLE001 - headers that are not even (name, bytes) pairs: the reason stays unknown
        reason = None
    return Entry(
        id=entry_id(record.partition, record.offset),
        reason=reason or "unknown",
        detail=f"this dead letter could not be read fully ({type(error).__name__}); its raw bytes are shown",
        partner_id=None,
        rejected_at=record.timestamp_ms,
        original=Original("", -1, -1, 0),
        lat=None,
        lon=None,
        replay_count=0,
        key=None,
        key_b64=None,
        headers=[],
        headers_b64=[],
        payload_b64=_b64(value[:payload_max_bytes]),
        payload_truncated=len(value) > payload_max_bytes,
        payload_size=len(value),
        payload_sha256=hashlib.sha256(value).hexdigest(),
        replay_as_is=False,
    )


def payload_of(entry: Entry) -> bytes:
    """The payload kept for review: the whole value, or its preview when ``entry.payload_truncated``."""
    return base64.b64decode(entry.payload_b64)


class ReplayRefused(Exception):
    """A replay that must not happen; the message says why (HTTP 422, CLI exit 1)."""


class PayloadRejected(ReplayRefused):
    """An edited payload the validator would reject; ``reason`` is its reject code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"the edited payload would be rejected: {reason}: {detail}")
        self.reason = reason
        self.detail = detail


def checked_payload(text: str | bytes, limits: rules.Limits) -> tuple[bytes, str]:
    """An operator's corrected payload, checked by the validator's own parser before anything is produced.
    Returns (the bytes to replay, its partner_id); raises :class:`PayloadRejected`."""
    if isinstance(text, str):
        try:
            text = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise PayloadRejected(
                Reason.MALFORMED_PAYLOAD.value, f"payload is not UTF-8: a lone surrogate at character {exc.start}"
            ) from None
    parsed = rules.parse(text, limits)
    if isinstance(parsed, Verdict):
        assert parsed.reason is not None  # parse() returns a Verdict only to reject, with the reason
        raise PayloadRejected(parsed.reason.value, parsed.detail or "")
    return text, parsed.partner_id


def replay_record(
    entry: Entry, *, cap: int, secret: str, payload: bytes | None = None, partner_id: str | None = None
) -> OutRecord:
    """The record to send back to ``location-updates``: original key (or the edited partner_id), original
    headers without any ``dlq.*`` or earlier ``replay.*`` ones, plus signed ``replay.of``, ``replay.count``
    and ``replay.sig`` (tracker/replay_sig.py)."""
    if payload is None and not entry.replay_as_is:
        raise ReplayRefused(TOO_LARGE)
    count = entry.replay_count + 1
    if count > cap:
        raise ReplayRefused(f"this ping was already replayed {entry.replay_count} times; the cap is {cap}")
    kept = tuple(
        (name, None if value is None else base64.b64decode(value))
        for name, value in entry.headers_b64
        if not name.startswith((c.DLQ_HEADER_PREFIX, c.REPLAY_HEADER_PREFIX))
    )
    key: bytes | None
    if partner_id is not None:
        key = partner_id.encode()
    else:
        key = base64.b64decode(entry.key_b64) if entry.key_b64 is not None else None
    value = payload if payload is not None else payload_of(entry)
    return OutRecord(value=value, key=key, headers=kept + replay_sig.replay_headers(secret, entry.id, count, value))
