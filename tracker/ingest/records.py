"""From a phone's fix to the record the ingest produces. Pure.

The value is our ping (docs/contract.md) with ``partner_id`` set to the courier the request authenticated as;
the key is that courier, so a courier's pings keep their order on one partition; the header
``ingest.protocol`` says which app protocol the ping came in by (the review page shows it beside a dead
letter).

The same request always makes the same bytes: a phone that retries after a 503 sends the same fix again, and
the validator drops an exact repeat as a duplicate (README, "Pings and reject reasons"), so a fix the broker
did take before the 503 lands once on the map. Values the app sent malformed are kept as they came (NaN,
±Infinity, numbers of any size, lone surrogates), so that the validator dead-letters the ping with its
reason instead of the ingest guessing.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgspec

from tracker.constants import H_INGEST_PROTOCOL
from tracker.models import OutRecord

APP_FIELD = "app"  # the app's own fields, kept for the record but never trusted (protocols.py fills it)


class Protocol(enum.Enum):
    """The ways in: a label on metrics and the value of the ``ingest.protocol`` header."""

    OSMAND = "osmand"  # OsmAnd, Traccar Client before 9 (GET query or urlencoded POST)
    TRACCAR_JSON = "traccar_json"  # Traccar Client 9+ (JSON POST to the same URL)
    OWNTRACKS = "owntracks"  # OwnTracks in HTTP mode
    NATIVE = "native"  # our own ping format (/v1/pings): GPSLogger's custom URL, scripts, other backends


_encode = msgspec.json.Encoder().encode


def encode(doc: dict[str, Any]) -> bytes:
    """``doc`` as compact JSON, exactly as the app's values came.

    msgspec writes NaN and ±Infinity as ``null`` and refuses lone surrogates; either would change what the
    validator judges (a NaN ``speed`` would become an absent one). The stdlib writes both as the validator
    reads them (``NaN``; ``\\ud800``), so a ping that holds one, or a ``null`` that may stand for one, takes it.
    """
    try:
        raw = _encode(doc)
    except (UnicodeEncodeError, OverflowError, TypeError, msgspec.EncodeError):
        raw = b"null"  # take the stdlib's path below
    if b"null" not in raw:
        return raw
    return json.dumps(doc, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")


def record(ping: dict[str, Any], courier: str | None, protocol: Protocol, max_bytes: int) -> OutRecord:
    """The record for one fix: ``ping`` with ``partner_id`` set to ``courier`` (None: left as the ping has it,
    only in open mode with no courier named), keyed by the courier.

    A ping over ``max_bytes`` (the validator's payload limit) is sent without its ``app`` object when that
    makes it fit: the app's extras are not worth losing the fix for. One still over the limit goes as it is,
    and the validator dead-letters it as too large.
    """
    doc = dict(ping)
    if courier is not None:
        doc["partner_id"] = courier
    value = encode(doc)
    if len(value) > max_bytes and APP_FIELD in doc:
        del doc[APP_FIELD]
        value = encode(doc)
    key = doc.get("partner_id")
    return OutRecord(
        value,
        key.encode("utf-8", "surrogatepass") if isinstance(key, str) else None,
        ((H_INGEST_PROTOCOL, protocol.value.encode()),),
    )
