"""Validation rules: pure functions on plain data. No I/O, no asyncio; the clock is passed in.

A ping goes through two stages:

1. :func:`parse` — bytes to a :class:`~tracker.models.Ping`, or a rejection for the payload, the courier id,
   the coordinates, the timestamp or an optional field (codes ``malformed_payload``, ``missing_partner_id``,
   ``invalid_coordinates``, ``invalid_timestamp``).
2. :func:`judge` — the ping against the service area, the clock and the courier's last accepted fix
   (``outside_service_area``, duplicate, ``stale_timestamp``, ``future_timestamp``, ``out_of_order``,
   ``impossible_speed``).

The duplicate test comes before the clock tests on purpose: an exact repeat of the last accepted ping is
a redelivery or a phone retry, and it must be dropped and counted however late it arrives, never
dead-lettered as stale.

Every function here is total: for any bytes (or None) it returns a Ping or a Verdict and never raises, so one
hostile record can't stop a validator. Hence the bounds on what a decoder may build (:func:`decode_json`:
size, nesting depth) and on what an accepted ping may hold (ids of printable characters, numbers within
±2**63, ts in a sane range), so that nothing accepted fails later in Redis, msgpack, JSON or a browser; and
every ``detail`` is short and valid UTF-8 whatever the payload held (:func:`show`).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import UTC, datetime
from typing import TypeGuard, cast

import msgspec

from tracker.geo import ServiceArea, haversine_m
from tracker.models import ID_MAX, NUMBER_MAX, TS_MS_MAX, VEHICLES, LastFix, Outcome, Ping, Reason, Verdict
from tracker.settings import Settings

PARTNER_ID_MAX = ID_MAX  # the name the simulator's fault injector imports

# A ping is one flat object; 32 levels leave room for any reasonable extra field. Both JSON decoders recurse
# once per level and would otherwise stop only at Python's recursion limit (RecursionError, ~1,000 levels,
# which fit in 4 KiB), and anything that walks the decoded value later (a repr, an encoder) would too.
MAX_JSON_DEPTH = 32
# Values quoted in a detail are cut to this many characters.
SHOW_MAX = 64


class Limits(msgspec.Struct, frozen=True):
    """The thresholds the rules need, taken from :class:`Settings` once."""

    max_age_ms: int
    max_skew_ms: int
    max_payload_bytes: int
    speed_limits: dict[str, float]
    default_speed_limit: float
    accuracy_allowance_cap_m: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_age_ms=round(settings.max_age_s * 1000),
            max_skew_ms=round(settings.max_skew_s * 1000),
            max_payload_bytes=settings.max_payload_bytes,
            speed_limits=dict(settings.speed_limits),
            default_speed_limit=settings.default_speed_limit,
            accuracy_allowance_cap_m=settings.accuracy_allowance_cap_m,
        )


def reject(reason: Reason, detail: str) -> Verdict:
    return Verdict(Outcome.REJECTED, reason, detail)


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass in Python, but `true` is not a coordinate.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def show(value: object) -> str:
    """``value`` (anything a JSON decoder returns) for a detail: at most about SHOW_MAX characters, and
    printable ASCII escapes for anything unprintable, so that a detail is always valid UTF-8 (a lone
    surrogate from a ``"\\ud800"`` escape would make ``detail.encode()`` raise)."""
    if isinstance(value, (dict, list)):
        return f"{'an object' if isinstance(value, dict) else 'an array'} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and not -(10**20) < value < 10**20:
        # Never str() a huge int: it is slow, and over 4,300 digits it raises ValueError.
        return f"{'a negative' if value < 0 else 'an'} integer of more than 20 digits"
    # repr escapes every unprintable character, surrogates included, as ASCII.
    text = repr(value[:SHOW_MAX] if isinstance(value, str) else value)
    if len(text) > SHOW_MAX + 2:
        text = text[:SHOW_MAX] + "…"
    if isinstance(value, str) and len(value) > SHOW_MAX:
        text += f" (cut, {len(value)} characters)"
    return text


def _first_unprintable(text: str) -> str:
    index, char = next((i, c) for i, c in enumerate(text) if not c.isprintable())
    return f"U+{ord(char):04X} at position {index}"


# A JSON string, or an unterminated one up to the end of the input. The possessive quantifiers and the
# end-of-input alternative keep it linear on any bytes (no backtracking, no retry from every later quote).
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [0] * 256
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


def _too_deep(raw: bytes) -> bool:
    """Whether ``raw`` opens more than MAX_JSON_DEPTH arrays/objects at once, outside strings.

    An upper bound on what a decoder would reach: it reads strings and brackets exactly so up to its first
    error, and whatever follows that error it never reads. Two ``count`` calls settle almost every payload;
    only one with more than MAX_JSON_DEPTH brackets anywhere is scanned.
    """
    if raw.count(b"{") + raw.count(b"[") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def _parse_int(text: str) -> int | float:
    # The stdlib refuses integers of over 4,300 digits (ValueError); read one as ±inf, as it reads 1e999,
    # so that the field it is in gets the field's verdict.
    try:
        return int(text)
    except ValueError:
        return float(text)


def decode_json(raw: bytes, max_bytes: int) -> object | Verdict:
    """Untrusted bytes to a JSON value, within bounds, or a ``malformed_payload`` Verdict saying why not.

    Never raises. Refuses more than ``max_bytes`` bytes, nesting deeper than MAX_JSON_DEPTH, bytes that are
    not UTF-8 and text that is not JSON (the Verdict's ``detail`` says which; it is short and valid UTF-8).
    Accepts what the stdlib accepts beyond strict JSON, so that callers can judge it precisely: the
    literals ``NaN``, ``Infinity`` and ``-Infinity`` (read as floats), numbers too large for a float (read as
    ±inf), and ``\\ud800``-style escapes of lone surrogates. So a caller that keeps, shows or re-encodes the
    value must expect: non-finite floats, integers of any size up to the byte limit (``str()`` of one over
    4,300 digits raises; :func:`show` doesn't), and strings that are not valid Unicode (``.encode()``,
    ``msgspec.json.encode`` and Redis raise on them; check ``str.isprintable()`` or use :func:`show`).
    """
    if len(raw) > max_bytes:
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is {len(raw)} bytes, over the {max_bytes}-byte limit")
    if _too_deep(raw):
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):
        pass
    # Slow path, only for payloads msgspec refuses: tell "not UTF-8" from "not JSON", and read the
    # non-standard NaN/Infinity literals some GPS stacks emit, so that they are judged as coordinates.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        return json.loads(text, parse_int=_parse_int)
    except (ValueError, RecursionError) as exc:  # RecursionError: only if called from very deep down
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is not JSON: {str(exc)[:200]}")


def _partner_id(doc: dict) -> str | Verdict:
    if "partner_id" not in doc:
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is absent")
    partner_id = doc["partner_id"]
    if partner_id is None:
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is null")
    if not isinstance(partner_id, str):
        return reject(Reason.MISSING_PARTNER_ID, f"partner_id must be a string, got {_type_of(partner_id)}")
    if not partner_id.strip():
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is blank")
    if len(partner_id) > ID_MAX:
        return reject(
            Reason.MISSING_PARTNER_ID, f"partner_id is {len(partner_id)} characters, over the {ID_MAX}-character limit"
        )
    # It becomes a Redis key and a label on the map: no control, format, private-use, unassigned or separator
    # characters, and no lone surrogates (which can't even be encoded as UTF-8).
    if not partner_id.isprintable():
        return reject(
            Reason.MISSING_PARTNER_ID, f"partner_id has {_first_unprintable(partner_id)}, not a printable character"
        )
    return partner_id


def _order_id(doc: dict) -> str | Verdict | None:
    order_id = doc.get("order_id")
    if order_id is None:
        return None
    if not isinstance(order_id, str):
        return reject(Reason.MALFORMED_PAYLOAD, f"order_id must be a string, got {_type_of(order_id)}")
    if not 1 <= len(order_id) <= ID_MAX:
        return reject(Reason.MALFORMED_PAYLOAD, f"order_id is {len(order_id)} characters, outside 1–{ID_MAX}")
    if not order_id.isprintable():
        return reject(
            Reason.MALFORMED_PAYLOAD, f"order_id has {_first_unprintable(order_id)}, not a printable character"
        )
    return order_id


def _type_of(value: object) -> str:
    return type(value).__name__


def _as_float(name: str, value: object) -> float | str:
    """A JSON number as the fast path's decoder reads it into a float field, or why it is not one."""
    if not _is_number(value):
        return f"{name} must be a number, got {_type_of(value)} {show(value)}"
    if isinstance(value, int):
        # Before any arithmetic: float() of a 300-digit integer raises OverflowError.
        if not -NUMBER_MAX <= value <= NUMBER_MAX:
            return f"{name} is {show(value)}, beyond ±2**{NUMBER_MAX.bit_length() - 1}"
        return float(value)
    return value


def check_coordinates(lat: object, lon: object) -> Verdict | None:
    """None when (lat, lon) are usable WGS84 degrees."""
    for name, value, bound in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if value is None:
            return reject(Reason.INVALID_COORDINATES, f"{name} is absent or null")
        number = _as_float(name, value)
        if isinstance(number, str):
            return reject(Reason.INVALID_COORDINATES, number)
        if not math.isfinite(number):
            return reject(Reason.INVALID_COORDINATES, f"{name} is {number}")
        if not -bound <= number <= bound:
            return reject(Reason.INVALID_COORDINATES, f"{name} {show(value)} is outside ±{bound:g}")
    if lat == 0 and lon == 0:
        return reject(Reason.INVALID_COORDINATES, "coordinates are exactly (0, 0), a GPS fix that never happened")
    return None


_TS_RANGE = (
    f"epoch milliseconds from 0 to before {TS_MS_MAX:.0e}, "
    f"the year {datetime.fromtimestamp(TS_MS_MAX / 1000, UTC).year}"
)


def parse_timestamp(value: object) -> int | str:
    """Epoch milliseconds in [0, TS_MS_MAX), or a message saying why ``value`` is not a timestamp."""
    if value is None:
        return "ts is absent or null"
    if isinstance(value, bool):
        return "ts must be epoch milliseconds or ISO-8601, got a boolean"
    if isinstance(value, int):
        ts_ms = value
    elif isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            return f"ts {value!r} is not a whole number of milliseconds"
        ts_ms = int(value)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"ts {show(value)} is not epoch milliseconds or ISO-8601"
        if parsed.tzinfo is None:
            return f"ts {show(value)} has no UTC offset"
        try:
            ts_ms = round(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):  # an offset pushing year 1 or 9999 past datetime's range
            return f"ts is out of range: {show(value)}"
    else:
        return f"ts must be epoch milliseconds or ISO-8601, got {_type_of(value)}"
    if not 0 <= ts_ms < TS_MS_MAX:
        return f"ts is out of range: {show(value)} ({_TS_RANGE})"
    return ts_ms


def _optional_number(
    doc: dict, name: str, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> float | Verdict | None:
    value = doc.get(name)
    if value is None:
        return None
    number = _as_float(name, value)
    if isinstance(number, str):
        return reject(Reason.MALFORMED_PAYLOAD, number)
    if not math.isfinite(number):
        return reject(Reason.MALFORMED_PAYLOAD, f"{name} must be a finite number, got {number}")
    # Compared as a float, as the fast path's decoder does, so that both paths agree at the bounds.
    if number < low or number > high or (low_open and number == low) or (high_open and number == high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        return reject(Reason.MALFORMED_PAYLOAD, f"{name} {show(value)} is outside {interval}")
    return number


class _PingWithExtras(Ping, frozen=True, forbid_unknown_fields=False):  # frozen as Ping is (inherited anyway)
    """A ping with unknown fields, which the decoder skips however deeply they nest."""


_decode_ping = msgspec.json.Decoder(Ping).decode
_decode_ping_with_extras = msgspec.json.Decoder(_PingWithExtras).decode


def _decode_with_extras(raw: bytes, refusal: msgspec.ValidationError) -> Ping | None:
    """The payload as a Ping when its only fault for :class:`Ping` was unknown fields, else None."""
    # Should msgspec reword this message, such payloads merely take the slow path.
    if not str(refusal).startswith("Object contains unknown field"):
        return None
    try:
        ping = _decode_ping_with_extras(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):
        return None
    # The decoder skips unknown fields without looking into them: not at how deep they nest (the bracket
    # count bounds that from above; when it could be over, the slow path measures it), nor at whether their
    # strings are UTF-8 (found by the property tests).
    if raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH:
        return None
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return Ping(*msgspec.structs.astuple(ping))


def parse(raw: bytes | None, limits: Limits) -> Ping | Verdict:
    """Bytes of one ``location-updates`` value to a :class:`Ping`, or the rejection that says why not.

    Fast path: decode straight into :class:`Ping`, whose annotations check types and ranges in C; it allows
    no unknown fields, so what it decodes is one flat object and needs no depth check. A payload with
    unknown fields is decoded again allowing them (and its brackets counted). Anything refused, and what
    annotations can't express (an id with unprintable characters, a blank id, (0, 0), checked here at C
    speed), takes the slow path, which gives the precise reason. Both paths agree on every payload
    (property-tested).
    """
    if raw is None:
        return reject(Reason.MALFORMED_PAYLOAD, "record has no value (tombstone)")
    if len(raw) <= limits.max_payload_bytes:
        ping: Ping | None
        try:
            ping = _decode_ping(raw)
        except msgspec.ValidationError as refusal:
            ping = _decode_with_extras(raw, refusal)
        except (msgspec.DecodeError, ValueError, RecursionError):  # ValueError: not UTF-8
            ping = None
        if (
            ping is not None
            and ping.partner_id.isprintable()
            and ping.partner_id.strip()
            and (ping.lat != 0 or ping.lon != 0)
            and (ping.order_id is None or ping.order_id.isprintable())
        ):
            return ping
    return parse_slowly(raw, limits)


def parse_slowly(raw: bytes, limits: Limits) -> Ping | Verdict:
    """Field by field, in the order of the reject codes (docs/contract.md), so that the reason is the right one."""
    doc = decode_json(raw, limits.max_payload_bytes)
    if isinstance(doc, Verdict):
        return doc
    if not isinstance(doc, dict):
        return reject(Reason.MALFORMED_PAYLOAD, f"payload must be a JSON object, got {_type_of(doc)}")
    partner_id = _partner_id(doc)
    if isinstance(partner_id, Verdict):
        return partner_id
    lat, lon = doc.get("lat"), doc.get("lon")
    bad_coordinates = check_coordinates(lat, lon)
    if bad_coordinates is not None:
        return bad_coordinates
    ts_ms = parse_timestamp(doc.get("ts"))
    if isinstance(ts_ms, str):
        return reject(Reason.INVALID_TIMESTAMP, ts_ms)
    speed = _optional_number(doc, "speed", 0.0, NUMBER_MAX, high_open=True)
    if isinstance(speed, Verdict):
        return speed
    heading = _optional_number(doc, "heading", 0.0, 360.0)
    if isinstance(heading, Verdict):
        return heading
    accuracy = _optional_number(doc, "accuracy", 0.0, NUMBER_MAX, low_open=True, high_open=True)
    if isinstance(accuracy, Verdict):
        return accuracy
    vehicle = doc.get("vehicle")
    if vehicle is not None and not (isinstance(vehicle, str) and vehicle in VEHICLES):
        return reject(Reason.MALFORMED_PAYLOAD, f"vehicle must be one of {', '.join(VEHICLES)}, got {show(vehicle)}")
    order_id = _order_id(doc)
    if isinstance(order_id, Verdict):
        return order_id
    # check_coordinates passed: both are numbers.
    return Ping(
        partner_id, float(cast(float, lat)), float(cast(float, lon)), ts_ms, speed, heading, accuracy, vehicle, order_id
    )


def _seconds(ms: int) -> str:
    """Integer milliseconds as seconds with three decimals, in integer arithmetic: float division of an
    integer beyond ~1e308 raises OverflowError."""
    whole, fraction = divmod(abs(ms), 1000)
    return f"{'-' if ms < 0 else ''}{whole}.{fraction:03d}" if whole < 10**20 else "over 10**20"


def check_clock(ts_ms: int, now_ms: int, limits: Limits) -> Verdict | None:
    age_ms = now_ms - ts_ms
    if age_ms > limits.max_age_ms:
        hint = " (ts looks like seconds, expected milliseconds)" if 0 < ts_ms < 100_000_000_000 else ""
        return reject(
            Reason.STALE_TIMESTAMP,
            f"ts is {_seconds(age_ms)} s old, over the {limits.max_age_ms / 1000:g} s limit{hint}",
        )
    if -age_ms > limits.max_skew_ms:
        return _ahead(-age_ms, limits)
    return None


def _ahead(ahead_ms: int, limits: Limits) -> Verdict:
    return reject(
        Reason.FUTURE_TIMESTAMP,
        f"ts is {_seconds(ahead_ms)} s ahead of the validator clock, over the {limits.max_skew_ms / 1000:g} s limit",
    )


def check_movement(ping: Ping, last: LastFix, limits: Limits) -> Verdict | None:
    """Ordering and plausible speed against the last accepted fix of the same courier."""
    if ping.ts_ms < last.ts_ms:
        return reject(
            Reason.OUT_OF_ORDER,
            f"ts {ping.ts_ms} is {_seconds(last.ts_ms - ping.ts_ms)} s older than the last accepted "
            f"fix at {last.ts_ms}",
        )
    distance_m = haversine_m(last.lat, last.lon, ping.lat, ping.lon)
    # A fix is only as good as its reported accuracy; forgive that much (capped) displacement.
    allowance_m = min(ping.accuracy or 0.0, limits.accuracy_allowance_cap_m)
    moved_m = max(0.0, distance_m - allowance_m)
    elapsed_s = (ping.ts_ms - last.ts_ms) / 1000
    limit = limits.speed_limits.get(ping.vehicle or "", limits.default_speed_limit)
    if moved_m > limit * elapsed_s:
        speed = "infinite" if elapsed_s == 0 else f"{moved_m / elapsed_s:.1f} m/s"
        return reject(
            Reason.IMPOSSIBLE_SPEED,
            f"moved {distance_m:.0f} m in {elapsed_s:.3f} s ({speed}; allowance {allowance_m:.0f} m), "
            f"over the {limit:g} m/s limit for {ping.vehicle or 'unknown vehicle'}",
        )
    return None


def is_duplicate(ping: Ping, last: LastFix | None) -> bool:
    return last is not None and ping.ts_ms == last.ts_ms and ping.lat == last.lat and ping.lon == last.lon


ACCEPTED = Verdict(Outcome.ACCEPTED)
DUPLICATE = Verdict(Outcome.DUPLICATE, None, "exact repeat of the last accepted ping")
HISTORY_ONLY = Verdict(Outcome.ACCEPTED, None, "replayed fix older than the courier's latest: history only")


def judge(ping: Ping, last: LastFix | None, now_ms: int, limits: Limits, area: ServiceArea) -> Verdict:
    """The verdict on a parsed ping, given the courier's last accepted fix (None for a new courier)."""
    if not area.contains(ping.lat, ping.lon):
        return reject(Reason.OUTSIDE_SERVICE_AREA, f"({ping.lat}, {ping.lon}) is outside the service area")
    if is_duplicate(ping, last):
        return DUPLICATE
    verdict = check_clock(ping.ts_ms, now_ms, limits)
    if verdict is None and last is not None:
        verdict = check_movement(ping, last, limits)
    return ACCEPTED if verdict is None else verdict


def judge_replay(ping: Ping, last: LastFix | None, now_ms: int, limits: Limits, area: ServiceArea) -> Verdict:
    """The verdict on a ping an operator replayed from the dead-letter queue.

    Identity and coordinates were checked by :func:`parse`, the area and duplicates are checked here as
    for any ping, and a fix cannot come from the future. Age is no reason to refuse a replay (it is old by
    nature): a fix older than the courier's latest goes into history only (:data:`HISTORY_ONLY`) and never
    moves the live marker back; a newer one must still be physically reachable from the latest.
    """
    if not area.contains(ping.lat, ping.lon):
        return reject(Reason.OUTSIDE_SERVICE_AREA, f"({ping.lat}, {ping.lon}) is outside the service area")
    if is_duplicate(ping, last):
        return DUPLICATE
    if ping.ts_ms - now_ms > limits.max_skew_ms:
        return _ahead(ping.ts_ms - now_ms, limits)
    if last is None:
        return ACCEPTED
    if ping.ts_ms < last.ts_ms:
        return HISTORY_ONLY
    return check_movement(ping, last, limits) or ACCEPTED


def evaluate(
    raw: bytes | None, last_fixes: dict[str, LastFix], now_ms: int, limits: Limits, area: ServiceArea
) -> tuple[Verdict, Ping | None]:
    """Parse and judge one payload against ``last_fixes`` (partner_id -> last accepted fix; not modified)."""
    parsed = parse(raw, limits)
    if isinstance(parsed, Verdict):
        return parsed, None
    return judge(parsed, last_fixes.get(parsed.partner_id), now_ms, limits, area), parsed


class StatefulChecker:
    """Rules plus in-memory per-courier state: ``tracker validate --dry-run`` and table tests."""

    def __init__(self, settings: Settings, area: ServiceArea) -> None:
        self.limits = Limits.from_settings(settings)
        self.area = area
        self.last_fixes: dict[str, LastFix] = {}

    def check(self, raw: bytes | None, now_ms: int) -> Verdict:
        verdict, ping = evaluate(raw, self.last_fixes, now_ms, self.limits, self.area)
        if verdict.accepted and ping is not None:  # an accepted verdict always comes with its ping
            self.last_fixes[ping.partner_id] = LastFix(ping.ts_ms, ping.lat, ping.lon)
        return verdict
