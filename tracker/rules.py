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
"""

from __future__ import annotations

import json
import math
from datetime import datetime

import msgspec

from tracker.geo import ServiceArea, haversine_m
from tracker.models import LastFix, Outcome, Ping, Reason, Verdict
from tracker.settings import VEHICLES, Settings

PARTNER_ID_MAX = 64


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


def _is_number(value: object) -> bool:
    # bool is an int subclass in Python, but `true` is not a coordinate.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decode(raw: bytes, max_payload_bytes: int) -> object | Verdict:
    if len(raw) > max_payload_bytes:
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is {len(raw)} bytes, over the {max_payload_bytes}-byte limit")
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    # Slow path, only for payloads msgspec refuses: tell "not UTF-8" from "not JSON", and read the
    # non-standard NaN/Infinity literals some GPS stacks emit, so that they are judged as coordinates.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        return reject(Reason.MALFORMED_PAYLOAD, f"payload is not JSON: {exc}")


def _partner_id(doc: dict) -> str | Verdict:
    if "partner_id" not in doc:
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is absent")
    partner_id = doc["partner_id"]
    if partner_id is None:
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is null")
    if not isinstance(partner_id, str):
        return reject(Reason.MISSING_PARTNER_ID, f"partner_id must be a string, got {type(partner_id).__name__}")
    if not partner_id.strip():
        return reject(Reason.MISSING_PARTNER_ID, "partner_id is blank")
    if len(partner_id) > PARTNER_ID_MAX:
        return reject(Reason.MISSING_PARTNER_ID,
                      f"partner_id is {len(partner_id)} characters, over the {PARTNER_ID_MAX}-character limit")
    return partner_id


def check_coordinates(lat: object, lon: object) -> Verdict | None:
    """None when (lat, lon) are usable WGS84 degrees."""
    for name, value, bound in (("lat", lat, 90.0), ("lon", lon, 180.0)):
        if value is None:
            return reject(Reason.INVALID_COORDINATES, f"{name} is absent or null")
        if not _is_number(value):
            return reject(Reason.INVALID_COORDINATES, f"{name} must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            return reject(Reason.INVALID_COORDINATES, f"{name} is {value}")
        if not -bound <= value <= bound:
            return reject(Reason.INVALID_COORDINATES, f"{name} {value} is outside ±{bound:g}")
    if lat == 0 and lon == 0:
        return reject(Reason.INVALID_COORDINATES, "coordinates are exactly (0, 0), a GPS fix that never happened")
    return None


def parse_timestamp(value: object) -> int | str:
    """Epoch milliseconds, or a message saying why ``value`` is not a timestamp."""
    if value is None:
        return "ts is absent or null"
    if isinstance(value, bool):
        return "ts must be epoch milliseconds or ISO-8601, got a boolean"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return f"ts {value!r} is not a whole number of milliseconds"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return f"ts {value[:64]!r} is not epoch milliseconds or ISO-8601"
        if parsed.tzinfo is None:
            return f"ts {value[:64]!r} has no UTC offset"
        return round(parsed.timestamp() * 1000)
    return f"ts must be epoch milliseconds or ISO-8601, got {type(value).__name__}"


def _optional_number(doc: dict, name: str, low: float, high: float, low_open: bool = False) -> float | None | Verdict:
    value = doc.get(name)
    if value is None:
        return None
    if not _is_number(value) or not math.isfinite(value):
        return reject(Reason.MALFORMED_PAYLOAD, f"{name} must be a finite number, got {value!r}")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        return reject(Reason.MALFORMED_PAYLOAD, f"{name} {value} is outside {bracket}{low:g}, {high:g}]")
    return float(value)


_decode_ping = msgspec.json.Decoder(Ping).decode


def parse(raw: bytes | None, limits: Limits) -> Ping | Verdict:
    """Bytes of one ``location-updates`` value to a :class:`Ping`, or the rejection that says why not.

    Fast path: decode straight into :class:`Ping`, whose annotations check types and ranges in C. Anything
    it refuses (or two cases annotations can't express: a blank id, (0, 0)) takes the slow path, which
    gives the precise reason; both paths agree on every payload the fast one accepts (tested).
    """
    if raw is None:
        return reject(Reason.MALFORMED_PAYLOAD, "record has no value (tombstone)")
    if len(raw) <= limits.max_payload_bytes:
        try:
            ping = _decode_ping(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
        else:
            if ping.partner_id.strip() and (ping.lat != 0 or ping.lon != 0):
                return ping
    return parse_slowly(raw, limits)


def parse_slowly(raw: bytes, limits: Limits) -> Ping | Verdict:
    """Field by field, in the order of DESIGN.md's reject table, so that the reason is the right one."""
    doc = _decode(raw, limits.max_payload_bytes)
    if isinstance(doc, Verdict):
        return doc
    if not isinstance(doc, dict):
        return reject(Reason.MALFORMED_PAYLOAD, f"payload must be a JSON object, got {type(doc).__name__}")
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
    speed = _optional_number(doc, "speed", 0.0, math.inf)
    if isinstance(speed, Verdict):
        return speed
    heading = _optional_number(doc, "heading", 0.0, 360.0)
    if isinstance(heading, Verdict):
        return heading
    accuracy = _optional_number(doc, "accuracy", 0.0, math.inf, low_open=True)
    if isinstance(accuracy, Verdict):
        return accuracy
    vehicle = doc.get("vehicle")
    if vehicle is not None and vehicle not in VEHICLES:
        return reject(Reason.MALFORMED_PAYLOAD, f"vehicle must be one of {', '.join(VEHICLES)}, got {vehicle!r}"[:200])
    order_id = doc.get("order_id")
    if order_id is not None and not isinstance(order_id, str):
        return reject(Reason.MALFORMED_PAYLOAD, f"order_id must be a string, got {type(order_id).__name__}")
    return Ping(partner_id, float(lat), float(lon), ts_ms, speed, heading, accuracy, vehicle, order_id)


def check_clock(ts_ms: int, now_ms: int, limits: Limits) -> Verdict | None:
    age_ms = now_ms - ts_ms
    if age_ms > limits.max_age_ms:
        hint = " (ts looks like seconds, expected milliseconds)" if 0 < ts_ms < 100_000_000_000 else ""
        return reject(Reason.STALE_TIMESTAMP,
                      f"ts is {age_ms / 1000:.3f} s old, over the {limits.max_age_ms / 1000:g} s limit{hint}")
    if -age_ms > limits.max_skew_ms:
        return reject(Reason.FUTURE_TIMESTAMP,
                      f"ts is {-age_ms / 1000:.3f} s ahead of the validator clock, over the "
                      f"{limits.max_skew_ms / 1000:g} s limit")
    return None


def check_movement(ping: Ping, last: LastFix, limits: Limits) -> Verdict | None:
    """Ordering and plausible speed against the last accepted fix of the same courier."""
    if ping.ts_ms < last.ts_ms:
        return reject(Reason.OUT_OF_ORDER,
                      f"ts {ping.ts_ms} is {(last.ts_ms - ping.ts_ms) / 1000:.3f} s older than the last accepted "
                      f"fix at {last.ts_ms}")
    distance_m = haversine_m(last.lat, last.lon, ping.lat, ping.lon)
    # A fix is only as good as its reported accuracy; forgive that much (capped) displacement.
    allowance_m = min(ping.accuracy or 0.0, limits.accuracy_allowance_cap_m)
    moved_m = max(0.0, distance_m - allowance_m)
    elapsed_s = (ping.ts_ms - last.ts_ms) / 1000
    limit = limits.speed_limits.get(ping.vehicle or "", limits.default_speed_limit)
    if moved_m > limit * elapsed_s:
        speed = "infinite" if elapsed_s == 0 else f"{moved_m / elapsed_s:.1f} m/s"
        return reject(Reason.IMPOSSIBLE_SPEED,
                      f"moved {distance_m:.0f} m in {elapsed_s:.3f} s ({speed}; allowance {allowance_m:.0f} m), "
                      f"over the {limit:g} m/s limit for {ping.vehicle or 'unknown vehicle'}")
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
        return check_clock(ping.ts_ms, now_ms, limits)
    if last is None:
        return ACCEPTED
    if ping.ts_ms < last.ts_ms:
        return HISTORY_ONLY
    return check_movement(ping, last, limits) or ACCEPTED


def evaluate(raw: bytes | None, last_fixes: dict[str, LastFix], now_ms: int, limits: Limits,
             area: ServiceArea) -> tuple[Verdict, Ping | None]:
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
        if verdict.accepted:
            self.last_fixes[ping.partner_id] = LastFix(ping.ts_ms, ping.lat, ping.lon)
        return verdict
