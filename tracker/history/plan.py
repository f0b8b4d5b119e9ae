"""History's pure rules: how a fix is packed, which keys it goes to and when they expire, and how a window is
read back out of them. No I/O: the validator hands :func:`plan`'s writes to ``apply_batch.lua`` with the rest of
its batch, and the HTTP routes read the keys :func:`window_buckets` names through the store.

A point is 12 bytes, little-endian: the fix's time as milliseconds after its bucket's start (int32), then
latitude and longitude in micro-degrees (int32 each, rounded: 0.11 m at the equator). A bucket's key says its
start, so the point carries no date. Two tiers (the module docstring of :mod:`tracker.history` says why):

- *full*: every fix, in one key per courier and minute, kept ``history_full_s`` after its minute ends;
- *step*: one fix per ``history_step_s`` slot (the first the validator applies), in one key per courier and
  hour, kept ``history_s`` after its hour ends; each hour also has a set of the couriers with a step key
  (the fleet's index for playback).

Reading a window takes each minute from the full tier when its key is still there and from the step tier
otherwise, so the answer is exactly the fixes history keeps: all of them where the full tier reaches, one per
slot before.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec
import numpy as np

POINT = struct.Struct("<iii")
POINT_BYTES = POINT.size
FULL_BUCKET_MS = 60_000
STEP_BUCKET_MS = 3_600_000
MICRO = 1_000_000
# Fleet playback reads at most this window (the step tier of every courier in it: 2.4 M points for 20,000
# couriers at the default 30 s step; bench/history.py measures it).
FLEET_WINDOW_MAX_MS = 3_600_000
# ``prev_ts`` of a replayed fix older than the courier's latest ("history only"): its arrival says nothing
# about its step slot, so the script looks whether that slot already holds a fix.
OLDER = -1


class Retention(msgspec.Struct, frozen=True):
    """What history keeps, from the settings, in milliseconds (``history_ms`` 0: nothing)."""

    history_ms: int
    full_ms: int
    step_ms: int

    @classmethod
    def from_settings(cls, settings) -> Retention:
        return cls(settings.history_s * 1000, settings.history_full_s * 1000, settings.history_step_s * 1000)

    @property
    def enabled(self) -> bool:
        return self.history_ms > 0

    def full_expiry(self, minute: int) -> int:
        """When the full-tier key of the minute starting at ``minute`` expires (epoch ms)."""
        return minute + FULL_BUCKET_MS + min(self.full_ms, self.history_ms)

    def step_expiry(self, hour: int) -> int:
        return hour + STEP_BUCKET_MS + self.history_ms


def suffix(bucket: int, partner_id: str) -> str:
    """A bucket key after its tier's prefix: the bucket's start first, so no partner id can make two collide."""
    return f"{bucket}:{partner_id}"


def micro(degrees: float) -> int:
    return round(degrees * MICRO)


class Writes(NamedTuple):
    """What one slice appends to history, for the script (Slice.hist, Slice.hist_step): ``full`` entries are
    (key suffix, expiry), ``step`` entries (key suffix, expiry, partner id, hour, slot start, slot end; a slot
    start of -1: no check), and ``blobs`` the packed points of each, the full entries' first, in order (binary,
    passed beside the slice: Redis's cmsgpack reads no bin type)."""

    full: list[tuple[str, int]]
    step: list[tuple[str, int, str, str, int, int]]
    blobs: list[bytes]


def plan(fixes: Iterable[tuple[str, int, float, float, int | None]], now_ms: int, retention: Retention) -> Writes:
    """The appends for ``fixes`` (partner id, ts, lat, lon, prev_ts), in the order the validator applied them.

    ``prev_ts`` is the time of the courier's fix before this one (None: none known), or :data:`OLDER`. An
    in-order fix goes to the step tier when it is the first of its slot (its slot is later than the previous
    fix's); an older one is sent with its slot's bounds, and the script appends it only if that slot is empty.
    Fixes whose key would already have expired are left out. Appends to one key are joined into one.
    """
    if not retention.enabled:
        return Writes([], [], [])
    step_ms = retention.step_ms
    full_keep = min(retention.full_ms, retention.history_ms) + FULL_BUCKET_MS
    step_keep = retention.history_ms + STEP_BUCKET_MS
    # A bucket is written only while its key would live: its start after these (cheaper than an expiry per fix).
    full_after = now_ms - full_keep
    step_after = now_ms - step_keep
    pack, scale = POINT.pack, MICRO
    # The hot part of the validator's slice (~3 us a fix on the 2-core bench machine): keys are the suffixes,
    # values (expiry, packed points), and a courier's second point in one slice is the rare case.
    full: dict[str, tuple[int, bytes]] = {}
    step: dict[str, tuple[int, bytes, str, int]] = {}
    checked: list[tuple[str, int, bytes, str, int, int]] = []
    for partner_id, ts, lat, lon, prev_ts in fixes:
        lat_e6, lon_e6 = round(lat * scale), round(lon * scale)
        minute = ts - ts % FULL_BUCKET_MS
        if minute > full_after:
            key = suffix(minute, partner_id)
            held = full.get(key)
            point = pack(ts - minute, lat_e6, lon_e6)
            full[key] = (minute + full_keep, point) if held is None else (held[0], held[1] + point)
        if prev_ts is not None and prev_ts != OLDER and ts // step_ms <= prev_ts // step_ms:
            continue  # most fixes: the courier's earlier fix opened this slot
        hour = ts - ts % STEP_BUCKET_MS
        if hour <= step_after:
            continue
        key = suffix(hour, partner_id)
        point = pack(ts - hour, lat_e6, lon_e6)
        if prev_ts == OLDER:
            slot = ts - ts % step_ms - hour
            checked.append((key, hour + step_keep, point, partner_id, hour, slot))
        elif (stepped := step.get(key)) is None:
            step[key] = (hour + step_keep, point, partner_id, hour)
        else:
            step[key] = (stepped[0], stepped[1] + point, partner_id, hour)
    writes = Writes([], [], [])
    full_entries, step_entries, blobs = writes
    for key, (expiry, packed) in full.items():
        full_entries.append((key, expiry))
        blobs.append(packed)
    for key, (expiry, packed, partner_id, hour) in step.items():
        step_entries.append((key, expiry, partner_id, str(hour), -1, -1))
        blobs.append(packed)
    for key, expiry, point, partner_id, hour, slot in checked:
        step_entries.append((key, expiry, partner_id, str(hour), slot, slot + step_ms))
        blobs.append(point)
    return writes


# -- reading -------------------------------------------------------------------------------------------------


def window_buckets(from_ms: int, to_ms: int) -> tuple[list[int], list[int]]:
    """The starts of the minutes (full tier) and hours (step tier) that ``from_ms``..``to_ms`` touches."""
    minutes = list(range(from_ms - from_ms % FULL_BUCKET_MS, to_ms + 1, FULL_BUCKET_MS))
    hours = list(range(from_ms - from_ms % STEP_BUCKET_MS, to_ms + 1, STEP_BUCKET_MS))
    return minutes, hours


def unpack(blob: bytes, base: int) -> list[tuple[int, int, int]]:
    """``(ts, lat_e6, lon_e6)`` of each point of a bucket starting at ``base`` (a short tail, which no write
    makes, is ignored rather than raised on)."""
    usable = len(blob) - len(blob) % POINT_BYTES
    return [(base + offset, lat, lon) for offset, lat, lon in POINT.iter_unpack(blob[:usable])]


class Window(NamedTuple):
    points: list[list]  # [ts, lat, lon], oldest first
    downsampled_before: int | None  # the end of the last minute answered from the step tier (None: none was)


def read_window(
    from_ms: int,
    to_ms: int,
    minutes: Sequence[int],
    full: Sequence[bytes | None],
    hours: Sequence[int],
    step: Sequence[bytes | None],
) -> Window:
    """The fixes with ``from_ms <= ts <= to_ms``, oldest first, out of the buckets :func:`window_buckets`
    named and their stored values (None: no key). Each minute comes from its full-tier key when there is one,
    else from the step tier; equal times keep the order they were applied in; exact repeats are dropped."""
    points: list[tuple[int, int, int]] = []
    held = set()
    for minute, blob in zip(minutes, full, strict=True):
        if blob is not None:
            held.add(minute)
            points.extend(unpack(blob, minute))
    downsampled_before = None
    for hour, blob in zip(hours, step, strict=True):
        for point in unpack(blob, hour) if blob else ():
            minute = point[0] - point[0] % FULL_BUCKET_MS
            if minute not in held and from_ms <= point[0] <= to_ms:
                points.append(point)
                downsampled_before = max(downsampled_before or 0, minute + FULL_BUCKET_MS)
    inside = sorted((point for point in points if from_ms <= point[0] <= to_ms), key=lambda point: point[0])
    kept: list[list] = []
    previous = None
    for point in inside:
        if point != previous:
            kept.append([point[0], point[1] / MICRO, point[2] / MICRO])
        previous = point
    return Window(kept, downsampled_before)


class Track(msgspec.Struct, frozen=True):
    """One courier's fixes in a fleet window, oldest first, packed: base64 of little-endian int32 triples
    (milliseconds after the window's ``from``, latitude and longitude in micro-degrees). Packed because a fleet
    hour is millions of points: as JSON numbers they cost the gateway ~0.3 µs each to build and encode, and
    the page as much to parse (bench/history.py); packed, the gateway's work is per courier."""

    id: str
    points: str


def fleet_tracks(
    from_ms: int, to_ms: int, partner_ids: Sequence[str], hours: Sequence[int], step: Sequence[Sequence[bytes | None]]
) -> list[Track]:
    """Every courier's step-tier fixes in ``from_ms``..``to_ms`` (couriers with none left out).

    ``step[i][j]`` is courier ``partner_ids[i]``'s key for hour ``hours[j]``. Vectorised over all couriers at
    once (numpy); windows longer than int32 milliseconds (24 days) are not asked for (FLEET_WINDOW_MAX_MS)."""
    blobs: list[bytes] = []
    bases: list[int] = []
    owners: list[int] = []
    for index, values in enumerate(step):
        for hour, blob in zip(hours, values, strict=True):
            if blob:
                usable = len(blob) - len(blob) % POINT_BYTES
                blobs.append(blob[:usable])
                bases.append(hour)
                owners.append(index)
    if not blobs:
        return []
    counts = np.fromiter((len(blob) // POINT_BYTES for blob in blobs), dtype=np.int64, count=len(blobs))
    table = np.frombuffer(b"".join(blobs), dtype="<i4").reshape(-1, 3)
    times = np.repeat(np.asarray(bases, dtype=np.int64), counts) + table[:, 0]
    courier = np.repeat(np.asarray(owners, dtype=np.int64), counts)
    inside = (times >= from_ms) & (times <= to_ms)
    times, courier, table = times[inside], courier[inside], table[inside]
    order = np.lexsort((times, courier))  # by courier, then by time; equal times keep their stored order
    courier = courier[order]
    packed = np.empty((len(order), 3), dtype="<i4")
    packed[:, 0] = times[order] - from_ms
    packed[:, 1:] = table[order, 1:]
    starts = np.flatnonzero(np.r_[True, courier[1:] != courier[:-1]]) if len(courier) else np.array([], np.int64)
    ends = np.r_[starts[1:], len(courier)]
    return [
        Track(partner_ids[int(courier[start])], base64.b64encode(packed[start:end].tobytes()).decode())
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


# -- the window a request asks for ---------------------------------------------------------------------------

MS_DIGITS = 15  # Redis and JavaScript read times as doubles: keep them exact
BAD_TIME = f"from and to must be epoch milliseconds (at most {MS_DIGITS} digits)"
FROM_AFTER_TO = "from must not be after to"
DEFAULT_WINDOW_MS = 3_600_000


def _ms(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    # Checked before int(), which reads "1_000", " 7" and Arabic-Indic digits.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MS_DIGITS):
        raise ValueError(BAD_TIME)
    return int(raw)


def too_long(max_ms: int) -> str:
    return f"from and to must be at most {max_ms // 1000} s apart"


def parse_window(raw_from: str | None, raw_to: str | None, now_ms: int, max_ms: int) -> tuple[int, int] | str:
    """``from``/``to`` query values (epoch ms; ``to`` defaults to now, ``from`` to an hour before ``to``) as a
    window, or the fixed one-line message a 400 carries."""
    try:
        from_ms, to_ms = _ms(raw_from), _ms(raw_to)
    except ValueError:
        return BAD_TIME
    if to_ms is None:
        to_ms = now_ms
    if from_ms is None:
        from_ms = max(0, to_ms - min(DEFAULT_WINDOW_MS, max_ms))
    if from_ms > to_ms:
        return FROM_AFTER_TO
    if to_ms - from_ms > max_ms:
        return too_long(max_ms)
    return from_ms, to_ms
