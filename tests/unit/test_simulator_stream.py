"""The ping stream: reproducible, on schedule, with the requested shares of faults and duplicates."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from simulator.config import SimConfig, fault_shares
from simulator.faults import DUPLICATE, FaultKind
from simulator.stream import iter_pings
from tracker.constants import H_SIM_EXPECT
from tracker.geo import haversine_m

NOW_MS = 1_750_000_000_000


def stream(**config) -> list:
    return list(iter_pings(SimConfig(**{"couriers": 100, "count": 5_000, "seed": 11, "burst": True, **config}), NOW_MS))


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not():
    first, again, other = stream(bad_rate=0.2), stream(bad_rate=0.2), stream(bad_rate=0.2, seed=12)
    assert [(p.key, p.value, p.headers, p.emitted_at_ms) for p in first] == [
        (p.key, p.value, p.headers, p.emitted_at_ms) for p in again
    ]
    assert [p.value for p in first] != [p.value for p in other]


def test_burst_event_time_ends_now_and_spans_rounds_of_the_interval():
    pings = stream(couriers=100, count=3_000, interval_s=0.5, duplicate_rate=0.0, bad_rate=0.0)
    assert len(pings) == 3_000
    emitted = [p.emitted_at_ms for p in pings]
    assert emitted == sorted(emitted)
    assert NOW_MS - 15_000 <= emitted[0] < NOW_MS - 14_500  # 30 rounds x 0.5 s back, plus the phase
    assert NOW_MS - 1_000 <= emitted[-1] <= NOW_MS
    assert all(json.loads(p.value)["ts"] == p.emitted_at_ms for p in pings)


def test_real_time_starts_now_and_stops_after_the_duration():
    pings = list(iter_pings(SimConfig(couriers=50, duration_s=10, interval_s=1.0, seed=1), NOW_MS))
    assert NOW_MS <= min(p.emitted_at_ms for p in pings) < NOW_MS + 1_000
    assert max(p.emitted_at_ms for p in pings) < NOW_MS + 10_000
    assert 450 <= len(pings) <= 560  # 50 couriers, ~10 pings each, ±10 % interval jitter, 1 % duplicates


def test_every_ping_is_keyed_by_its_courier_and_only_injected_pings_carry_an_expectation():
    for ping in stream(bad_rate=0.3):
        assert ping.key == ping.partner_id.encode()
        if ping.expect is None:
            assert ping.headers == ()
            assert json.loads(ping.value)["partner_id"] == ping.partner_id
        else:
            assert ping.headers == ((H_SIM_EXPECT, ping.expect.encode()),)


def test_requested_bad_and_duplicate_shares_are_met():
    pings = stream(couriers=300, count=20_000, bad_rate=0.05, duplicate_rate=0.01)
    expect = Counter(p.expect for p in pings)
    bad = sum(n for code, n in expect.items() if code not in (None, DUPLICATE))
    assert 0.045 <= bad / len(pings) <= 0.055
    assert 0.008 <= expect[DUPLICATE] / len(pings) <= 0.012


def test_every_kind_appears_in_about_equal_shares():
    pings = stream(couriers=300, count=10_000, bad_rate=0.1)
    expect = Counter(p.expect for p in pings)
    per_kind = 10_000 * 0.1 / len(FaultKind)
    for kind in FaultKind:
        assert 0.6 * per_kind <= expect[kind.value] <= 1.4 * per_kind, (kind, expect)


def test_fault_overrides_fix_one_kind_and_zero_turns_everything_off():
    only_stale = Counter(
        p.expect for p in stream(bad_rate=0.0, duplicate_rate=0.0, fault_rates={FaultKind.STALE_TIMESTAMP: 0.2})
    )
    assert set(only_stale) == {None, FaultKind.STALE_TIMESTAMP.value}
    assert 0.17 <= only_stale[FaultKind.STALE_TIMESTAMP.value] / 5_000 <= 0.23
    assert {p.expect for p in stream(bad_rate=0.0, duplicate_rate=0.0)} == {None}


@pytest.mark.parametrize(
    ("bad_rate", "overrides", "expected"),
    [
        (0.09, {}, dict.fromkeys(FaultKind, 0.01)),
        (
            0.0,
            {FaultKind.OUT_OF_ORDER: 0.2},
            {kind: 0.2 if kind is FaultKind.OUT_OF_ORDER else 0.0 for kind in FaultKind},
        ),
        (
            0.18,
            {FaultKind.OUT_OF_ORDER: 0.1},
            {kind: 0.1 if kind is FaultKind.OUT_OF_ORDER else 0.01 for kind in FaultKind},
        ),
        (
            0.05,
            {FaultKind.IMPOSSIBLE_SPEED: 0.0},
            {kind: 0.0 if kind is FaultKind.IMPOSSIBLE_SPEED else 0.05 / 8 for kind in FaultKind},
        ),
    ],
)
def test_fault_shares_split_what_the_overrides_leave_evenly(bad_rate, overrides, expected):
    shares = fault_shares(SimConfig(bad_rate=bad_rate, fault_rates=overrides))
    assert shares == pytest.approx(expected)


def test_a_duplicate_is_the_byte_for_byte_resend_of_the_good_ping_just_before_it():
    pings = stream(duplicate_rate=0.05)
    duplicates = 0
    for before, ping in itertools.pairwise(pings):
        if ping.expect == DUPLICATE:
            duplicates += 1
            assert before.expect is None and before.key == ping.key and before.value == ping.value
    assert duplicates > 150


def test_clock_and_movement_faults_are_relative_to_the_couriers_last_good_ping():
    last_good = {}
    seen = Counter[str]()
    for ping in stream(
        couriers=100,
        count=20_000,
        bad_rate=0.0,
        duplicate_rate=0.0,
        fault_rates={FaultKind.OUT_OF_ORDER: 0.05, FaultKind.IMPOSSIBLE_SPEED: 0.05},
    ):
        doc = json.loads(ping.value)
        if ping.expect is None:
            last_good[ping.partner_id] = doc
            continue
        last = last_good[ping.partner_id]  # both kinds only ever follow a good ping of the courier
        seen[ping.expect] += 1
        if ping.expect == FaultKind.OUT_OF_ORDER.value:
            assert last["ts"] - 30_000 <= doc["ts"] <= last["ts"] - 5_000
        else:
            assert doc["ts"] == ping.emitted_at_ms > last["ts"]
            assert haversine_m(last["lat"], last["lon"], doc["lat"], doc["lon"]) >= 5_000
    # Owed faults of the first round (no good ping yet) are paid later: the shares still hold.
    assert 0.045 * 20_000 <= seen[FaultKind.OUT_OF_ORDER.value] <= 0.055 * 20_000
    assert 0.045 * 20_000 <= seen[FaultKind.IMPOSSIBLE_SPEED.value] <= 0.055 * 20_000


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SimConfig(couriers=0), "--couriers must be at least 1"),
        (SimConfig(interval_s=0), "--interval must be at least 0.001"),
        (SimConfig(duration_s=-1), "--duration must be positive"),
        (SimConfig(count=0), "--count must be at least 1"),
        (SimConfig(rate=0), "--rate must be positive"),
        (SimConfig(bad_rate=1.5), "--bad-rate must be between 0 and 1"),
        (SimConfig(duplicate_rate=-0.1), "--duplicate-rate must be between 0 and 1"),
        (SimConfig(fault_rates={FaultKind.OUT_OF_ORDER: 2}), "--fault out_of_order must be between 0 and 1"),
        (SimConfig(bad_rate=0.5, duplicate_rate=0.3), "plus twice the duplicate rate"),
        (SimConfig(burst=True), "--burst needs --count or --duration"),
    ],
)
def test_config_problems_are_one_line_errors_naming_the_flag(config, message):
    with pytest.raises(ValueError, match=message):
        config.checked()
