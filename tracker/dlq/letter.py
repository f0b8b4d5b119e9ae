"""Dead-letter records: the original key, value and headers, plus the ``dlq.*`` provenance headers.

Pure: builds :class:`~tracker.models.OutRecord` values; the validator produces them (its ``_dead_letter``).

A dead letter always fits the broker, whatever the original held: the original was within the broker's
limit, and a dead letter adds headers to it, so the value, the key and the original headers are each
bounded here (``Settings.dlq_value_max_bytes`` / ``dlq_headers_max_bytes``). A cut value or key keeps a
prefix and says so with ``dlq.truncated: true``; a cut value also carries its original size and sha256,
so the reviewer knows what was lost and can match it against the sender's copy.
"""

from __future__ import annotations

import hashlib

from tracker import constants as c
from tracker.models import OutRecord, Reason, Record
from tracker.settings import Settings

# The settings' defaults, so that a caller that does not pass the bounds gets the same ones.
_DEFAULTS = Settings()
TRUE = b"true"


def truncate_detail(detail: str) -> bytes:
    """UTF-8 bytes of ``detail``, cut to the header limit without splitting a character."""
    encoded = detail.encode("utf-8", "replace")
    if len(encoded) <= c.DETAIL_MAX_BYTES:
        return encoded
    return encoded[: c.DETAIL_MAX_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


def header_size(name: str, value: bytes | None) -> int:
    """What a header costs against the headers budget: its name's and its value's bytes."""
    return len(name.encode("utf-8", "surrogatepass")) + (len(value) if value is not None else 0)


def kept_headers(headers: tuple[tuple[str, bytes | None], ...], max_bytes: int) -> tuple[tuple, int]:
    """The original headers a dead letter keeps, and how many it drops.

    Headers an earlier trip through the DLQ added are replaced, not accumulated (they are neither kept nor
    counted). The others are kept in order while their total fits ``max_bytes``; from the first that does
    not fit on, they are dropped. A name the producer could not encode (a lone surrogate) is dropped too.

    A None value (Kafka allows null header values; aiokafka reads them as None) is kept as None: aiokafka's
    record builder writes None as a null header value (length -1), and reads it back as None, so the dead
    letter carries exactly what the original did.
    """
    kept = []
    used = 0
    dropped = 0
    full = False
    for name, value in headers:
        if name.startswith(c.DLQ_HEADER_PREFIX):
            continue
        if not full:
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                dropped += 1
                continue
            size = header_size(name, value)
            if used + size <= max_bytes:
                kept.append((name, value))
                used += size
                continue
            full = True
        dropped += 1
    return tuple(kept), dropped


def dead_letter(
    record: Record,
    reason: Reason,
    detail: str,
    *,
    group: str,
    validator_id: str,
    rejected_at_ms: int,
    attempts: int | None = None,
    value_max_bytes: int = _DEFAULTS.dlq_value_max_bytes,
    headers_max_bytes: int = _DEFAULTS.dlq_headers_max_bytes,
) -> OutRecord:
    kept, dropped = kept_headers(record.headers, headers_max_bytes)
    value, key = record.value, record.key
    value_cut = value is not None and len(value) > value_max_bytes
    # Keys are courier ids (a few dozen bytes); one this long is hostile. Its prefix is kept for the
    # reviewer, and dlq.truncated forbids replaying the record as it is (entry.py).
    key_cut = key is not None and len(key) > value_max_bytes
    added = [
        (c.H_REASON, reason.value.encode()),
        (c.H_DETAIL, truncate_detail(detail)),
        (c.H_ORIGINAL_TOPIC, record.topic.encode("utf-8", "replace")),
        (c.H_ORIGINAL_PARTITION, str(record.partition).encode()),
        (c.H_ORIGINAL_OFFSET, str(record.offset).encode()),
        (c.H_ORIGINAL_TIMESTAMP, str(record.timestamp_ms).encode()),
        (c.H_GROUP, group.encode("utf-8", "replace")),
        (c.H_VALIDATOR, validator_id.encode("utf-8", "replace")),
        (c.H_REJECTED_AT, str(rejected_at_ms).encode()),
    ]
    if attempts is not None:
        added.append((c.H_ATTEMPTS, str(attempts).encode()))
    if value_cut or key_cut:
        added.append((c.H_TRUNCATED, TRUE))
    # A cut implies a value (a key); `is not None` says so to the type checker.
    if value_cut and value is not None:
        added += [
            (c.H_ORIGINAL_SIZE, str(len(value)).encode()),
            (c.H_ORIGINAL_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
        value = value[:value_max_bytes]
    if key_cut and key is not None:
        key = key[:value_max_bytes]
    if dropped:
        added.append((c.H_HEADERS_DROPPED, str(dropped).encode()))
    return OutRecord(value=value, key=key, headers=kept + tuple(added))
