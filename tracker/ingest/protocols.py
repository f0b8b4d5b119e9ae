"""What each phone app posts, turned into our ping's fields. Pure: no I/O, no clock, and it never raises.

Four shapes, one function each:

* :func:`osmand` — the OsmAnd protocol (Traccar's port 5055): a GET query or an urlencoded POST form, as
  sent by Traccar Client for Android before version 9, Traccar Client 10+ (an urlencoded POST form:
  traccar/traccar-client-sdk HttpUploader.kt), OsmAnd's online tracking and GPSLogger's custom URL.
* :func:`traccar_json` — the JSON body Traccar Client 9 posts to the same URL (flutter_background_geolocation's).
  (traccar-client-sdk can also post a JSON *array* of OsmAnd-style objects, ``uploadJson``; Traccar Client
  does not turn it on, and it is not read here.)
* :func:`owntracks` — OwnTracks in HTTP mode: its ``_type: location`` message (any other message is not a fix).
* :func:`native` — our own ping objects (docs/contract.md), one or an array; passed through untouched.

Each protocol's units become ours: ``ts`` epoch milliseconds, ``speed`` m/s, ``heading`` degrees, ``accuracy``
metres. Other fields the app sent that are worth keeping (battery, altitude, hdop, motion, ...) go into the
ping's ``app`` object, which the validator ignores; any other scalar field of an OsmAnd query or an OwnTracks
location goes into ``app.extras`` as it came (at most :data:`APP_EXTRAS_MAX`, as Traccar keeps a request's
unknown parameters as attributes). No ``partner_id``: the service sets it to the courier it authenticated.
Credentials never reach the ping: the device's id and any field whose name looks like a credential
(:func:`_is_credential`: token, password, secret, key, auth, ...) are never copied.

Two rules for what comes in:

* A value the app sent malformed (``lat=abc``, a ``timestamp`` that is neither epoch nor ISO-8601, a speed
  of ``"fast"``) is passed through as it came, so that the validator dead-letters the ping with its reason:
  nothing is dropped or guessed here. Only text that is plainly a decimal number (at most
  :data:`NUMBER_TEXT_MAX` characters, no NaN, no Infinity, no hex) is converted, and a JSON number only when
  it is within ±2**63; anything larger stays what it was and the validator refuses it.
* A negative ``speed``, ``heading`` or ``accuracy``, or an ``accuracy`` of 0, is how phones say "unknown"
  (Android's Location gives 0 for a fix without accuracy; iOS's CoreLocation -1 for an invalid speed or
  course; Traccar's own decoder keeps speed and heading only when >= 0, OsmAndProtocolDecoder.java,
  ``decodeJson``): the field is left out and the fix kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from tracker.models import NUMBER_MAX
from tracker.rules import parse_timestamp

KNOT_MPS = 1852 / 3600  # OsmAnd's speed is in knots (traccar OsmAndProtocolDecoder.java: convertSpeed(.., "kn"))
# Our own OsmAnd parameter for a speed in m/s, which is what the apps whose URL a user writes can send: OsmAnd's
# online tracking fills {5} with Android's Location.getSpeed() (osmandapp/OsmAnd LiveMonitoringHelper.java) and
# GPSLogger's %SPD is the same (mendhak/gpslogger CustomUrlManager.java); neither can send knots. ``speed``
# wins when a request has both.
SPEED_MPS_PARAM = "speed_mps"
KMH_MPS = 1000 / 3600  # OwnTracks' vel is in km/h (owntracks/booklet docs/tech/json.md)
# traccar OsmAndProtocolDecoder.java, "timestamp": an integer below Java's Integer.MAX_VALUE is epoch seconds,
# anything from there on epoch milliseconds (10**9 s is 2001; 2**31 - 1 ms is 25 days into 1970).
SECONDS_BELOW = 2**31 - 1
# Numeric text longer than this is left as text (a phone's number fits in far fewer characters).
NUMBER_TEXT_MAX = 32
# Text of an ISO-8601 time longer than this is left as text.
TIME_TEXT_MAX = 64
# What goes into the ping's "app" object: scalars only, a string (and a name) at most this long, and at most
# this many of an app's free-form extras (Traccar Client's location.extras; the fields of an OsmAnd query or an
# OwnTracks location that are not read here), so that a fix never outgrows the validator's payload limit
# because of what the app added to it.
APP_TEXT_MAX = 64
APP_EXTRAS_MAX = 16
# Never kept as an extra: the device's identity (it is the ping's partner_id) and names that look like a
# credential (OsmAnd's own server takes accessToken; a URL may carry a password or an API key).
_IDENTITY_NAMES = frozenset({"id", "deviceid", "device_id", "partner_id", "user", "username"})
_CREDENTIAL_NAME = re.compile(r"token|pass|secret|auth|key|cred|cookie|session", re.IGNORECASE)

# A decimal number as phones write it: ASCII digits (Python's float() would also take Arabic-Indic digits,
# underscores, surrounding spaces, "nan" and "infinity"; none of those is a number on the wire).
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,3})?")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")
# An ISO-8601 time whose "+hh:mm" offset lost its "+" to form decoding ("+" means a space in a query string):
# "2025-06-15T19:15:12+05:30" sent unescaped arrives as "2025-06-15T19:15:12 05:30".
_LOST_PLUS = re.compile(r"(T[0-9:.,]+) ([0-9]{2}:?[0-9]{2})\Z")


class Fix(msgspec.Struct, frozen=True):
    """One fix from a phone: the device id the request names (None when the protocol has none in the body,
    as OwnTracks, whose courier is the HTTP Basic user or ``X-Limit-U``) and the ping's fields, without
    ``partner_id``."""

    device_id: str | None
    ping: dict[str, Any]


# -- values --------------------------------------------------------------------------------------------------


def _decimal(text: str) -> float | None:
    """``text`` as a finite float when it is plainly a decimal number, else None."""
    if len(text) > NUMBER_TEXT_MAX or not _DECIMAL.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _number_from_text(text: object, scale: float = 1.0) -> object:
    """A query parameter as a number (times ``scale``), or as it came when it is not plainly one."""
    if not isinstance(text, str):
        return text
    number = _decimal(text)
    return text if number is None else number * scale


def _json_number(value: object) -> float | None:
    """A JSON number within ±2**63 as a float (not a boolean, not NaN/Infinity), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return float(value) if -NUMBER_MAX < value < NUMBER_MAX else None
    return value if math.isfinite(value) and -NUMBER_MAX < value < NUMBER_MAX else None


def _scaled(value: object, scale: float) -> object:
    """A JSON number times ``scale``, or the value as it came when it is not a number we can scale."""
    number = _json_number(value)
    return value if number is None else number * scale


def _put_measure(ping: dict[str, Any], name: str, value: object, *, zero_unknown: bool = False) -> None:
    """Set a measured field (speed, heading, accuracy) unless the phone said "unknown": absent or null, a
    negative number, or 0 where 0 means unknown (accuracy). Anything else, numbers or not, goes in as is."""
    if value is None or isinstance(value, bool):
        if value is not None:
            ping[name] = value  # a boolean is malformed: the validator says so
        return
    if isinstance(value, int | float) and (value < 0 or (zero_unknown and value == 0)):
        return
    ping[name] = value


def _app_value(value: object) -> object:
    """A value worth keeping in ``app``: a bounded scalar, else None (left out)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= APP_TEXT_MAX else None
    if isinstance(value, int | float):
        return value if _json_number(value) is not None else None
    return None


def _put_app(app: dict[str, Any], name: str, value: object) -> None:
    kept = _app_value(value)
    if kept is not None:
        app[name] = kept


def _is_credential(name: str) -> bool:
    """Whether a field named ``name`` may hold who the device is or a secret: never copied into the ping."""
    return name.lower() in _IDENTITY_NAMES or _CREDENTIAL_NAME.search(name) is not None


def _put_extras(
    app: dict[str, Any], fields: Mapping[Any, object], read: frozenset[str], convert: Callable[[object], object]
) -> None:
    """The scalar fields the parser did not ``read`` (and no credential), each ``convert``-ed, into
    ``app["extras"]``: at most :data:`APP_EXTRAS_MAX`, names and texts at most :data:`APP_TEXT_MAX` long."""
    kept: dict[str, Any] = {}
    for name, value in fields.items():
        if len(kept) == APP_EXTRAS_MAX:
            break
        if isinstance(name, str) and name not in read and len(name) <= APP_TEXT_MAX and not _is_credential(name):
            _put_app(kept, name, convert(value))
    if kept:
        app["extras"] = kept


def _query_value(text: object) -> object:
    """An unknown query parameter as Traccar keeps it: a plain decimal as a number, true/false as a boolean,
    anything else as text."""
    if not isinstance(text, str):
        return text
    number = _decimal(text)
    if number is not None:
        return number
    lowered = text.lower()
    return lowered == "true" if lowered in ("true", "false") else text


def _as_is(value: object) -> object:
    return value


def _flag(text: str) -> bool | str:
    """A query parameter's boolean ("true"/"1", "false"/"0"), or the text when it is neither."""
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    return text


def _iso_ms(text: str) -> int | str:
    """An ISO-8601 time with an offset as epoch ms, or ``text`` as it came (the validator says what is wrong:
    no offset, not a time, out of range)."""
    if len(text) > TIME_TEXT_MAX:
        return text
    parsed = parse_timestamp(_LOST_PLUS.sub(r"\1+\2", text))
    return parsed if isinstance(parsed, int) else text


def _epoch_or_iso_ms(text: str) -> int | str:
    """OsmAnd's ``timestamp``: epoch seconds or milliseconds (Traccar's boundary, :data:`SECONDS_BELOW`;
    fractions allowed), or ISO-8601 with an offset; anything else as it came."""
    if _INTEGER.fullmatch(text):
        whole = int(text)
        return whole * 1000 if whole < SECONDS_BELOW else whole
    number = _decimal(text)
    if number is not None:
        if abs(number) < SECONDS_BELOW:
            return round(number * 1000)
        return round(number) if abs(number) < NUMBER_MAX else text
    return _iso_ms(text)


def _seconds_to_ms(value: object) -> object:
    """OwnTracks' ``tst`` (epoch seconds, a JSON number) as epoch ms, or as it came when it is not one."""
    number = _json_number(value)
    if number is None or abs(number) >= NUMBER_MAX / 1000:
        return value
    return value * 1000 if isinstance(value, int) else round(number * 1000)


# -- OsmAnd (query string or form) ------------------------------------------------------------------------------

# Parameters copied into "app", and how each is read (traccar OsmAndProtocolDecoder.java, decodeQuery; the
# old Traccar Client for Android sent id, timestamp, lat, lon, speed, bearing, altitude, accuracy, batt, and
# charge, mock and alarm when they applied).
_OSMAND_APP_NUMBERS = ("altitude", "hdop", "batt")
_OSMAND_APP_FLAGS = ("mock", "charge", "valid")
_OSMAND_APP_TEXTS = ("alarm", "driverUniqueId")
# Every parameter osmand() reads; the others (not credentials) go into app.extras.
_OSMAND_READ = frozenset(
    {
        *("id", "deviceid", "lat", "lon", "location", "timestamp", "speed", SPEED_MPS_PARAM, "bearing", "heading"),
        *("accuracy", "vehicle", "order_id", *_OSMAND_APP_NUMBERS, *_OSMAND_APP_FLAGS, *_OSMAND_APP_TEXTS),
    }
)


def osmand(params: Mapping[str, str]) -> Fix:
    """A GET query or urlencoded POST form of the OsmAnd protocol, as a :class:`Fix`.

    ``id`` or ``deviceid`` names the device; ``lat`` and ``lon``, or ``location=lat,lon``; ``timestamp``
    as epoch seconds, epoch ms or ISO-8601; ``speed`` in knots (or our ``speed_mps``); ``bearing`` or
    ``heading``; ``accuracy``.
    Our own ``vehicle`` and ``order_id`` are taken too. Any other parameter goes into ``app.extras`` (a
    plain decimal as a number, true/false as a boolean), unless its name looks like a credential: a token
    among them must not reach the topic.
    """
    ping: dict[str, Any] = {}
    app: dict[str, Any] = {}
    device_id = params.get("id", params.get("deviceid"))
    lat, lon = params.get("lat"), params.get("lon")
    location = params.get("location")
    if lat is None and lon is None and location is not None:
        lat, comma, rest = location.partition(",")
        lon = rest if comma else None
    if lat is not None:
        ping["lat"] = _number_from_text(lat)
    if lon is not None:
        ping["lon"] = _number_from_text(lon)
    timestamp = params.get("timestamp")
    if timestamp is not None:
        ping["ts"] = _epoch_or_iso_ms(timestamp)
    if "speed" in params or SPEED_MPS_PARAM not in params:
        _put_measure(ping, "speed", _number_from_text(params.get("speed"), KNOT_MPS))
    else:
        _put_measure(ping, "speed", _number_from_text(params[SPEED_MPS_PARAM]))
    _put_measure(ping, "heading", _number_from_text(params.get("heading", params.get("bearing"))))
    _put_measure(ping, "accuracy", _number_from_text(params.get("accuracy")), zero_unknown=True)
    for name in ("vehicle", "order_id"):
        if name in params:
            ping[name] = params[name]
    for name in _OSMAND_APP_NUMBERS:
        if name in params:
            _put_app(app, name, _number_from_text(params[name]))
    for name in _OSMAND_APP_FLAGS:
        if name in params:
            _put_app(app, name, _flag(params[name]))
    for name in _OSMAND_APP_TEXTS:
        if name in params:
            _put_app(app, name, params[name])
    _put_extras(app, params, _OSMAND_READ, _query_value)
    if app:
        ping["app"] = app
    return Fix(device_id if isinstance(device_id, str) else None, ping)


# -- Traccar Client 9 (JSON) ------------------------------------------------------------------------------------


def traccar_json(doc: object) -> Fix:
    """The body Traccar Client 9 posts: ``{"location": {...}, "device_id": "..."}``.

    Its shape is flutter_background_geolocation's location template as Traccar Client sets it
    (traccar-client lib/preferences.dart, ``_locationTemplate``; the ``device_id`` comes from its
    ``http.params``): ``timestamp`` ISO-8601 in UTC, ``coords`` with ``latitude``, ``longitude``,
    ``accuracy``, ``speed`` (m/s), ``heading``, ``altitude``; ``is_moving``, ``odometer``, ``event``,
    ``battery`` (``level`` 0-1, ``is_charging``), ``activity.type``, ``extras``; iOS adds ``mock``.
    A body that is not that shape gives a fix without coordinates, which the validator dead-letters.
    """
    if not isinstance(doc, dict):
        return Fix(None, {})
    device_id = doc.get("device_id")
    device_id = device_id if isinstance(device_id, str) else None
    location = doc.get("location")
    if not isinstance(location, dict):
        return Fix(device_id, {})
    ping: dict[str, Any] = {}
    app: dict[str, Any] = {}
    coords = location.get("coords")
    if isinstance(coords, dict):
        for ours, theirs in (("lat", "latitude"), ("lon", "longitude")):
            if coords.get(theirs) is not None:
                ping[ours] = coords[theirs]
        _put_measure(ping, "speed", coords.get("speed"))
        _put_measure(ping, "heading", coords.get("heading"))
        _put_measure(ping, "accuracy", coords.get("accuracy"), zero_unknown=True)
        _put_app(app, "altitude", coords.get("altitude"))
    timestamp = location.get("timestamp")
    if timestamp is not None:
        ping["ts"] = _iso_ms(timestamp) if isinstance(timestamp, str) else timestamp
    for name in ("is_moving", "odometer", "event", "mock", "alarm"):
        _put_app(app, name, location.get(name))
    battery = location.get("battery")
    if isinstance(battery, dict):
        level = _json_number(battery.get("level"))
        if level is not None and 0 <= level <= 1:  # -1: unknown
            app["batt"] = round(level * 100)
        if isinstance(battery.get("is_charging"), bool):
            app["charge"] = battery["is_charging"]
    activity = location.get("activity")
    if isinstance(activity, dict):
        _put_app(app, "activity", activity.get("type"))
    extras = location.get("extras")
    if isinstance(extras, dict) and extras:
        kept: dict[str, Any] = {}
        for name, value in extras.items():
            if len(kept) == APP_EXTRAS_MAX:
                break
            if isinstance(name, str) and len(name) <= APP_TEXT_MAX:
                _put_app(kept, name, value)
        if kept:
            app["extras"] = kept
    if app:
        ping["app"] = app
    return Fix(device_id, ping)


# -- OwnTracks (HTTP mode) --------------------------------------------------------------------------------------

# owntracks/booklet docs/tech/json.md, "_type=location": the fields kept in "app", with our name for each.
_OWNTRACKS_APP = (
    ("alt", "altitude"),
    ("batt", "batt"),
    ("bs", "bs"),
    ("tid", "tid"),
    ("t", "trigger"),
    ("created_at", "created_at"),
    ("conn", "conn"),
    ("vac", "vac"),
)
# Every field owntracks() reads; the other scalars (not credentials) go into app.extras as they came.
_OWNTRACKS_READ = frozenset(
    ("_type", "lat", "lon", "tst", "vel", "cog", "acc", *(theirs for theirs, _ in _OWNTRACKS_APP))
)


def owntracks(doc: object) -> Fix | None:
    """An OwnTracks ``location`` message as a :class:`Fix`; None for anything else the app posts
    (``transition``, ``waypoint``, ``lwt``, ``card``, ``status``, ``encrypted``, ...: answered 200 ``[]``).

    ``lat``, ``lon``; ``tst`` epoch seconds; ``acc`` metres; ``vel`` km/h; ``cog`` degrees. The app leaves
    out ``acc``, ``alt``, ``cog``, ``vac`` and ``vel`` when they are 0. The courier is the HTTP Basic user
    or ``X-Limit-U``: there is no device id in the body. Other scalar fields (``topic``, ``m``, ``SSID``,
    ...) go into ``app.extras``; arrays and objects (``inregions``, ...) are left out.
    """
    if not isinstance(doc, dict) or doc.get("_type") != "location":
        return None
    ping: dict[str, Any] = {}
    app: dict[str, Any] = {}
    for name in ("lat", "lon"):
        if doc.get(name) is not None:
            ping[name] = doc[name]
    if doc.get("tst") is not None:
        ping["ts"] = _seconds_to_ms(doc["tst"])
    _put_measure(ping, "speed", _scaled(doc.get("vel"), KMH_MPS))
    _put_measure(ping, "heading", doc.get("cog"))
    _put_measure(ping, "accuracy", doc.get("acc"), zero_unknown=True)
    for theirs, ours in _OWNTRACKS_APP:
        _put_app(app, ours, doc.get(theirs))
    _put_extras(app, doc, _OWNTRACKS_READ, _as_is)
    if app:
        ping["app"] = app
    return Fix(None, ping)


# -- native ----------------------------------------------------------------------------------------------------

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a number")


def native(doc: object, max_count: int) -> list[dict[str, Any]] | str:
    """Our own pings (docs/contract.md): one object, or an array of at most ``max_count`` objects, returned
    untouched; or a string saying why the body is refused."""
    if isinstance(doc, dict):
        return [doc]
    if not isinstance(doc, list):
        return f"the body must be a ping object or an array of ping objects, got {_json_type(doc)}"
    if len(doc) > max_count:
        return f"at most {max_count:,} pings per request, got {len(doc):,}"
    for index, item in enumerate(doc):
        if not isinstance(item, dict):
            return f"item {index} of the array is {_json_type(item)}, not a ping object"
    return doc
