"""Dead-letter records: the original key, value and headers, plus the ``dlq.*`` provenance headers.

Pure: builds :class:`~tracker.kafka.OutRecord` values; the validator produces them.
"""

from __future__ import annotations

from tracker import constants as c
from tracker.kafka import OutRecord, Record
from tracker.models import Reason


def truncate_detail(detail: str) -> bytes:
    """UTF-8 bytes of ``detail``, cut to the header limit without splitting a character."""
    encoded = detail.encode("utf-8")
    if len(encoded) <= c.DETAIL_MAX_BYTES:
        return encoded
    return encoded[: c.DETAIL_MAX_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."


def dead_letter(record: Record, reason: Reason, detail: str, *, group: str, validator_id: str,
                rejected_at_ms: int, attempts: int | None = None) -> OutRecord:
    # Headers a previous trip through the DLQ added are replaced, not accumulated.
    kept = tuple((name, value) for name, value in record.headers if not name.startswith(c.DLQ_HEADER_PREFIX))
    added = [
        (c.H_REASON, reason.value.encode()),
        (c.H_DETAIL, truncate_detail(detail)),
        (c.H_ORIGINAL_TOPIC, record.topic.encode()),
        (c.H_ORIGINAL_PARTITION, str(record.partition).encode()),
        (c.H_ORIGINAL_OFFSET, str(record.offset).encode()),
        (c.H_ORIGINAL_TIMESTAMP, str(record.timestamp_ms).encode()),
        (c.H_GROUP, group.encode()),
        (c.H_VALIDATOR, validator_id.encode()),
        (c.H_REJECTED_AT, str(rejected_at_ms).encode()),
    ]
    if attempts is not None:
        added.append((c.H_ATTEMPTS, str(attempts).encode()))
    return OutRecord(value=record.value, key=record.key, headers=kept + tuple(added))
