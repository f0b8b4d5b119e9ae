"""The simulator and the validator agree: every generated ping gets exactly the verdict it was made for.

This is the contract test between the two halves of the data path: a good ping must be accepted (so the map
is not missing couriers), an exact resend must be a duplicate, and every fault must be rejected with the
code in its ``sim.expect`` header (so the DLQ review page shows what the simulator meant to break).
"""

from __future__ import annotations

from collections import Counter

import pytest

from simulator.config import SimConfig
from simulator.faults import DUPLICATE, FaultKind
from simulator.stream import iter_pings
from tracker import rules
from tracker.geo import load_service_area
from tracker.settings import Settings

NOW_MS = 1_750_000_000_000


def verdict_code(verdict) -> str:
    return verdict.reason.value if verdict.outcome.value == "rejected" else verdict.outcome.value


@pytest.mark.parametrize(
    ("config", "settings"),
    [
        (SimConfig(couriers=300, count=8_000, seed=1, burst=True, bad_rate=0.1), Settings()),
        (
            SimConfig(
                couriers=150, count=6_000, seed=2, burst=True, bad_rate=0.3, duplicate_rate=0.05, interval_s=0.02
            ),
            Settings(),
        ),
        (SimConfig(couriers=60, count=6_000, seed=3, burst=True, bad_rate=0.2, interval_s=15.0), Settings()),
        (SimConfig(couriers=100, duration_s=60, seed=4, bad_rate=0.2), Settings()),
        (
            SimConfig(couriers=200, count=6_000, seed=5, burst=True, bad_rate=0.2),
            Settings(
                max_age_s=600,
                max_skew_s=400,
                max_payload_bytes=1024,
                speed_limits={"walk": 3.0, "bike": 10.0, "scooter": 20.0, "car": 25.0},
            ),
        ),
    ],
    ids=["defaults", "short-interval", "long-interval", "real-time", "custom-thresholds"],
)
def test_every_ping_gets_the_verdict_it_was_made_for(config, settings):
    checker = rules.StatefulChecker(settings, load_service_area(settings.service_area_file))
    mismatches, verdicts = [], Counter[str]()
    for ping in iter_pings(config, NOW_MS, settings=settings):
        verdict = checker.check(ping.value, ping.emitted_at_ms)
        got, wanted = verdict_code(verdict), ping.expect or "accepted"
        verdicts[got] += 1
        if got != wanted:
            mismatches.append((wanted, got, verdict.detail, ping.value[:300]))
    assert mismatches[:5] == []
    assert sum(verdicts.values()) >= 5_000
    assert set(verdicts) == {"accepted", DUPLICATE, *(kind.value for kind in FaultKind)}
