"""History's pure rules (tracker/history/plan.py): what a batch appends, and what a window reads back.

``Model`` does what apply_batch.lua does with the appends (tests/integration/test_history.py runs the real
script), so a batch can be written and read back here without Redis."""

from __future__ import annotations

import base64
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.history import plan
from tracker.history.plan import OLDER, Retention

HOUR = 3_600_000
MINUTE = 60_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % HOUR  # an hour's start
DAY_RETENTION = Retention(history_ms=86_400_000, full_ms=HOUR, step_ms=30_000)


class Model:
    """Redis as apply_batch.lua leaves it: key -> bytes, key -> expiry, hour -> fleet set."""

    def __init__(self) -> None:
        self.full: dict[str, bytes] = {}
        self.step: dict[str, bytes] = {}
        self.expiry: dict[str, int] = {}
        self.fleet: dict[str, set[str]] = {}

    def apply(self, writes: plan.Writes) -> None:
        blobs = iter(writes.blobs)
        for suffix, expire_at in writes.full:
            self._append(self.full, "f", suffix, next(blobs), expire_at)
        for suffix, expire_at, partner_id, hour, low, high in writes.step:
            blob = next(blobs)
            offsets = [offset for offset, _, _ in struct.iter_unpack("<iii", self.step.get(suffix, b""))]
            if low >= 0 and any(low <= offset < high for offset in offsets):
                continue
            if self._append(self.step, "s", suffix, blob, expire_at):
                self.fleet.setdefault(hour, set()).add(partner_id)

    def _append(self, tier: dict[str, bytes], mark: str, suffix: str, blob: bytes, expire_at: int) -> bool:
        created = suffix not in tier
        tier[suffix] = tier.get(suffix, b"") + blob
        if created:
            self.expiry[mark + suffix] = expire_at
        return created

    def expire(self, now_ms: int) -> None:
        for tier, mark in ((self.full, "f"), (self.step, "s")):
            for suffix in [s for s in tier if self.expiry[mark + s] <= now_ms]:
                del tier[suffix]

    def read(self, partner_id: str, from_ms: int, to_ms: int) -> plan.Window:
        minutes, hours = plan.window_buckets(from_ms, to_ms)
        full = [self.full.get(plan.suffix(minute, partner_id)) for minute in minutes]
        step = [self.step.get(plan.suffix(hour, partner_id)) for hour in hours]
        return plan.read_window(from_ms, to_ms, minutes, full, hours, step)


def in_order(partner_id: str, fixes: list[tuple[int, float, float]], before: int | None = None):
    """``fixes`` as the validator hands them over: each with the time of the one before."""
    previous = before
    for ts, lat, lon in fixes:
        yield partner_id, ts, lat, lon, previous
        previous = ts


def test_every_fix_of_a_minute_goes_to_one_append_and_the_first_of_each_slot_to_the_step_tier():
    fixes = [(T0 + 1_000 * i, 12.9 + i / 1e5, 77.6) for i in range(0, 70, 5)]  # every 5 s for 70 s
    writes = plan.plan(in_order("c1", fixes), T0 + 70_000, DAY_RETENTION)
    assert writes.full == [(f"{T0}:c1", T0 + MINUTE + HOUR), (f"{T0 + MINUTE}:c1", T0 + 2 * MINUTE + HOUR)]
    assert writes.step == [(f"{T0}:c1", T0 + HOUR + 86_400_000, "c1", str(T0), -1, -1)]
    full_blobs, [step_blob] = writes.blobs[:2], writes.blobs[2:]
    assert [len(blob) // plan.POINT_BYTES for blob in full_blobs] == [12, 2]
    # slots of 30 s: the fixes at 0, 30 and 60 s open theirs
    assert [offset for offset, _, _ in struct.iter_unpack("<iii", step_blob)] == [0, 30_000, 60_000]


def test_a_slot_already_opened_before_the_batch_gets_no_second_step_point():
    writes = plan.plan(in_order("c1", [(T0 + 31_000, 12.9, 77.6)], before=T0 + 30_500), T0 + 40_000, DAY_RETENTION)
    assert (len(writes.full), writes.step) == (1, [])


def test_a_replayed_older_fix_is_sent_with_its_slot_for_the_script_to_check():
    fix = ("c1", T0 + 95_000, 12.9, 77.6, OLDER)
    writes = plan.plan([fix], T0 + 200_000, DAY_RETENTION)
    assert [(entry[4], entry[5]) for entry in writes.step] == [(90_000, 120_000)]


def test_fixes_past_a_tier_s_retention_are_not_written_to_it():
    now = T0 + 3 * HOUR
    old = [("c1", T0 + 5_000, 12.9, 77.6, None)]  # full tier gone after ~1 h, step tier kept a day
    writes = plan.plan(old, now, DAY_RETENTION)
    assert (writes.full, len(writes.step)) == ([], 1)
    assert plan.plan(old, T0 + 26 * HOUR, DAY_RETENTION) == plan.Writes([], [], [])
    assert plan.plan(old, T0, Retention(history_ms=0, full_ms=HOUR, step_ms=30_000)) == plan.Writes([], [], [])


def test_points_keep_micro_degrees_on_both_sides_of_zero():
    model = Model()
    fixes = [(T0 + 1_000, -33.868_820_4, -151.209_295_6), (T0 + 2_000, 12.971_6, 77.594_6)]
    model.apply(plan.plan(in_order("c1", fixes), T0 + 3_000, DAY_RETENTION))
    assert model.read("c1", T0, T0 + 3_000).points == [
        [T0 + 1_000, -33.86882, -151.209296],
        [T0 + 2_000, 12.9716, 77.5946],
    ]


def test_a_window_is_exact_inclusive_and_oldest_first_across_batches_and_minutes():
    model = Model()
    fixes = [(T0 + 7_000 * i, 12.9 + i / 1e4, 77.6 - i / 1e4) for i in range(40)]  # 7 s apart, 4.5 minutes
    for start in range(0, 40, 6):  # batches of six, as a validator would apply them
        before = fixes[start - 1][0] if start else None
        model.apply(plan.plan(in_order("c1", fixes[start : start + 6], before), T0 + 300_000, DAY_RETENTION))
    window = model.read("c1", T0 + 7_000 * 3, T0 + 7_000 * 30)
    assert window.points == [[ts, round(lat, 6), round(lon, 6)] for ts, lat, lon in fixes[3:31]]
    assert window.downsampled_before is None
    assert model.read("other", T0, T0 + HOUR).points == []


def test_once_the_full_tier_expires_a_window_has_the_first_fix_of_each_slot():
    model = Model()
    fixes = [(T0 + 10_000 * i, 12.9, 77.6 + i / 1e4) for i in range(60)]  # 10 min, one fix every 10 s
    model.apply(plan.plan(in_order("c1", fixes), T0 + 600_000, DAY_RETENTION))
    now = T0 + 5 * MINUTE + HOUR + 1  # the first five minutes' full keys have expired
    model.expire(now)
    window = model.read("c1", T0, T0 + 600_000)
    old = [fix for fix in fixes if fix[0] < T0 + 5 * MINUTE and fix[0] % 30_000 == 0]
    recent = [fix for fix in fixes if fix[0] >= T0 + 5 * MINUTE]
    assert window.points == [[ts, lat, round(lon, 6)] for ts, lat, lon in old + recent]
    assert window.downsampled_before == T0 + 5 * MINUTE


def test_a_replayed_older_fix_fills_an_empty_slot_only():
    model = Model()
    model.apply(
        plan.plan(in_order("c1", [(T0 + 1_000, 12.9, 77.6), (T0 + 95_000, 12.91, 77.6)]), T0 + 1, DAY_RETENTION)
    )
    replays = [("c1", T0 + 40_000, 12.95, 77.6, OLDER), ("c1", T0 + 5_000, 12.96, 77.6, OLDER)]
    model.apply(plan.plan(replays, T0 + 100_000, DAY_RETENTION))
    step = model.step[plan.suffix(T0, "c1")]
    assert [offset for offset, _, _ in struct.iter_unpack("<iii", step)] == [1_000, 95_000, 40_000]
    # the full tier has all four, in time order
    assert [p[0] for p in model.read("c1", T0, T0 + HOUR).points] == [T0 + 1_000, T0 + 5_000, T0 + 40_000, T0 + 95_000]


def test_equal_times_keep_their_applied_order_and_exact_repeats_show_once():
    minute = T0
    blob = b"".join(struct.pack("<iii", *p) for p in [(5, 2, 2), (5, 1, 1), (5, 2, 2), (3, 9, 9)])
    window = plan.read_window(T0, T0 + MINUTE, [minute], [blob], [T0], [None])
    assert window.points == [[T0 + 3, 9e-6, 9e-6], [T0 + 5, 2e-6, 2e-6], [T0 + 5, 1e-6, 1e-6], [T0 + 5, 2e-6, 2e-6]]
    repeated = struct.pack("<iii", 5, 2, 2) * 2
    assert len(plan.read_window(T0, T0 + MINUTE, [minute], [repeated], [T0], [None]).points) == 1


def test_a_torn_tail_is_ignored_not_raised_on():
    assert plan.unpack(struct.pack("<iii", 1, 2, 3) + b"\x01\x02", T0) == [(T0 + 1, 2, 3)]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=1, max_value=50_000), min_size=1, max_size=70),  # < 1 h: none expires
    batch=st.integers(min_value=1, max_value=9),
    start=st.integers(min_value=0, max_value=2 * HOUR),
    edges=st.tuples(st.integers(min_value=0, max_value=3 * HOUR), st.integers(min_value=0, max_value=3 * HOUR)),
)
def test_any_window_reads_back_exactly_the_fixes_written_in_it(gaps, batch, start, edges):
    times, ts = [], T0 + start
    for gap in gaps:
        ts += gap
        times.append(ts)
    fixes = [(t, 12.9 + (t % 997) / 1e6, 77.6) for t in times]
    model = Model()
    for first in range(0, len(fixes), batch):
        before = fixes[first - 1][0] if first else None
        model.apply(plan.plan(in_order("c", fixes[first : first + batch], before), times[-1], DAY_RETENTION))
    low, high = sorted(T0 + edge for edge in edges)
    assert [p[0] for p in model.read("c", low, high).points] == [t for t in times if low <= t <= high]


def test_fleet_tracks_are_each_courier_s_points_oldest_first_within_the_window_packed():
    def blob(*points):
        return b"".join(struct.pack("<iii", *p) for p in points)

    hours = [T0, T0 + HOUR]
    step = [
        [blob((HOUR - 30_000, 1_000_000, 2_000_000)), blob((0, 3_000_000, 4_000_000), (60_000, 5, 6))],  # a
        [None, None],  # b: nothing
        [blob((90_000, 7, 8), (30_000, 9, -10)), None],  # c: a replay appended out of order
    ]
    tracks = plan.fleet_tracks(T0, T0 + HOUR + 30_000, ["a", "b", "c"], hours, step)
    unpacked = {
        track.id: [tuple(p) for p in struct.iter_unpack("<iii", base64.b64decode(track.points))] for track in tracks
    }
    # times are milliseconds after the window's start
    assert unpacked == {
        "a": [(HOUR - 30_000, 1_000_000, 2_000_000), (HOUR, 3_000_000, 4_000_000)],
        "c": [(30_000, 9, -10), (90_000, 7, 8)],
    }
    assert plan.fleet_tracks(T0, T0 + 1, ["a"], [T0], [[None]]) == []


NOW = T0 + 10 * HOUR


@pytest.mark.parametrize(
    ("raw_from", "raw_to", "expected"),
    [
        (None, None, (NOW - HOUR, NOW)),
        ("", "", (NOW - HOUR, NOW)),
        (str(NOW - 5_000), None, (NOW - 5_000, NOW)),
        (None, str(NOW - HOUR), (NOW - 2 * HOUR, NOW - HOUR)),
        ("0", "10", (0, 10)),
        ("5", "5", (5, 5)),
        ("6", "5", plan.FROM_AFTER_TO),
        ("-1", "5", plan.BAD_TIME),
        ("1e3", "5", plan.BAD_TIME),
        ("1_000", "5", plan.BAD_TIME),
        (" 7", "9", plan.BAD_TIME),
        ("٣", "9", plan.BAD_TIME),
        ("1" * 16, None, plan.BAD_TIME),
        ("0", str(2 * HOUR + 1), plan.too_long(2 * HOUR)),
    ],
)
def test_a_window_is_parsed_or_refused_in_fixed_words(raw_from, raw_to, expected):
    assert plan.parse_window(raw_from, raw_to, NOW, 2 * HOUR) == expected


def test_the_default_window_is_never_longer_than_allowed():
    assert plan.parse_window(None, None, NOW, 60_000) == (NOW - 60_000, NOW)
    assert plan.parse_window(None, "1000", NOW, HOUR) == (0, 1000)
