"""What a courier's phone app sends to `tracker ingest`, for one of the simulator's pings. Pure: no I/O.

One encoder per protocol (tracker/ingest/protocols.py reads each back, and a unit test proves the round trip):

* ``osmand`` — a GET to ``/?id=...&lat=...`` as Traccar Client for Android (before 9) and OsmAnd send it;
  the token, if any, is the ``token`` query parameter, as in the server URL a courier types into the app.
* ``owntracks`` — a POST of OwnTracks' ``location`` message to ``/owntracks``, with HTTP Basic (user = the
  courier, password = the token) and ``X-Limit-U``, as the app sends them in HTTP mode.
* ``native`` — a POST of our own pings (docs/contract.md) to ``/v1/pings``: the simulator's bytes as they
  are, one ping or a JSON array of one courier's pings; the token as ``Authorization: Bearer``.

Units follow each protocol: OsmAnd's speed is in knots and its timestamp here is epoch ms (Traccar reads an
integer from 2**31 on as ms), OwnTracks' ``vel`` is km/h and ``tst`` epoch seconds. The simulator keeps the
millisecond of its timestamps (its couriers may ping more than once a second), so its ``tst`` carries a
fraction and its ``acc``/``vel``/``cog`` are not rounded to whole numbers as the app's are. OwnTracks has no
field for ``vehicle`` or ``order_id``: those are lost on that protocol, as they would be from the real app.
A value that is not a number (a fault's timestamp "yesterday") is sent as text, as it came.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

import msgspec

from tracker.ingest.auth import LIMIT_USER_HEADER, TOKEN_PARAM
from tracker.ingest.protocols import KMH_MPS, KNOT_MPS
from tracker.rules import parse_timestamp


class PhoneProtocol(enum.Enum):
    OSMAND = "osmand"
    OWNTRACKS = "owntracks"
    NATIVE = "native"


# The paths of the ingest's routes (tracker/ingest/app.py).
PATHS = {PhoneProtocol.OSMAND: "/", PhoneProtocol.OWNTRACKS: "/owntracks", PhoneProtocol.NATIVE: "/v1/pings"}
OWNTRACKS_DEVICE = "phone"  # X-Limit-D: the app's device name (OwnTracks "Identification")
JSON = "application/json"


class PhoneRequest(msgspec.Struct, frozen=True):
    """One HTTP request, ready to send (``target`` is the path and query, appended to the ingest's URL)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None


def _text(value: object) -> str:
    """A value as a query parameter: numbers as Python writes them (shortest round trip), booleans as Java
    does, text as it is, anything else as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value)


def _scaled(value: object, divisor: float) -> object:
    """A number in our unit as a number in the protocol's (divided by the protocol's unit in ours); anything
    that is not a number as it came."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return value / divisor


def osmand_query(fields: Mapping[str, object], device_id: str, token: str | None = None) -> str:
    """The query string of an OsmAnd request for one ping's ``fields`` (our ping's names and units)."""
    params: list[tuple[str, str]] = [("id", device_id)]
    for theirs, ours, divisor in (
        ("timestamp", "ts", 1.0),
        ("lat", "lat", 1.0),
        ("lon", "lon", 1.0),
        ("speed", "speed", KNOT_MPS),
        ("bearing", "heading", 1.0),
        ("accuracy", "accuracy", 1.0),
        ("vehicle", "vehicle", 1.0),
        ("order_id", "order_id", 1.0),
    ):
        value = fields.get(ours)
        if value is not None:
            params.append((theirs, _text(value if divisor == 1.0 else _scaled(value, divisor))))
    if token is not None:
        params.append((TOKEN_PARAM, token))
    return urlencode(params)


def _epoch_seconds(ts: object) -> object:
    """Our ``ts`` (epoch ms, or ISO-8601 with an offset) as OwnTracks' ``tst``: epoch seconds, whole when the
    ms are; anything else as it came."""
    if isinstance(ts, bool) or not isinstance(ts, int | str):
        return ts
    ts_ms = parse_timestamp(ts)
    if not isinstance(ts_ms, int):
        return ts
    return ts_ms // 1000 if ts_ms % 1000 == 0 else ts_ms / 1000


def owntracks_message(fields: Mapping[str, object], device_id: str) -> dict[str, object]:
    """OwnTracks' ``location`` message for one ping's ``fields`` (the app leaves out what it does not know)."""
    doc: dict[str, object] = {"_type": "location", "tid": device_id[-2:]}
    for theirs, ours in (("lat", "lat"), ("lon", "lon"), ("acc", "accuracy"), ("cog", "heading")):
        if fields.get(ours) is not None:
            doc[theirs] = fields[ours]
    if fields.get("ts") is not None:
        doc["tst"] = _epoch_seconds(fields["ts"])
    if fields.get("speed") is not None:
        doc["vel"] = _scaled(fields["speed"], KMH_MPS)
    return doc


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def request_for(
    protocol: PhoneProtocol, device_id: str, values: Sequence[bytes], token: str | None = None
) -> PhoneRequest:
    """The request that carries ``values`` (ping JSON bytes, all of courier ``device_id``) by ``protocol``.
    OsmAnd and OwnTracks carry one fix per request; native carries them all (one ping: the bytes as they are)."""
    if protocol is PhoneProtocol.NATIVE:
        body = values[0] if len(values) == 1 else b"[" + b",".join(values) + b"]"
        headers = [("content-type", JSON)]
        if token is not None:
            headers.append(("authorization", f"Bearer {token}"))
        return PhoneRequest("POST", PATHS[protocol], tuple(headers), body)
    if len(values) != 1:
        raise ValueError(f"{protocol.value} carries one fix per request, got {len(values)}")
    fields = json.loads(values[0])
    if not isinstance(fields, dict):
        raise ValueError(f"{protocol.value} carries a ping object, got {type(fields).__name__}")
    if protocol is PhoneProtocol.OSMAND:
        return PhoneRequest("GET", f"{PATHS[protocol]}?{osmand_query(fields, device_id, token)}", (), None)
    headers = [("content-type", JSON), (LIMIT_USER_HEADER, device_id), ("x-limit-d", OWNTRACKS_DEVICE)]
    if token is not None:
        headers.append(("authorization", _basic(device_id, token)))
    body = json.dumps(owntracks_message(fields, device_id), separators=(",", ":")).encode()
    return PhoneRequest("POST", PATHS[protocol], tuple(headers), body)
