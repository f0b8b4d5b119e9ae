"""A slice of `make fuzz` in the suite: 3,000 good and hostile payloads through a running gateway and two
validators (child processes, as `tracker up` runs them), every one accounted for and nothing stopped."""

from __future__ import annotations

import pytest

from fuzz.live import fuzz_live
from tracker.local.processes import free_port
from tracker.up import LocalSystem

pytestmark = pytest.mark.integration

PAYLOADS = 3000


async def test_every_fuzz_payload_gets_a_verdict_and_nothing_stops(settings, tmp_path):
    system = LocalSystem(settings.replace(http_port=free_port()), tmp_path, validators=2)
    system.start()
    try:
        report = await fuzz_live(
            system.settings, system, payloads=PAYLOADS, seed=20261127, stall_s=20.0, say=lambda line: None
        )
    finally:
        system.stop()
    assert report.failures == [], report.summary()
    # The slice is a fuzz, not a formality: every kind went in, and each verdict is well represented.
    assert report.by_kind.keys() >= {"deep_nesting", "huge_number", "huge_value", "raw_header_name", "tombstone"}
    assert report.accounted == PAYLOADS
    for verdict in ("accepted", "rejected", "duplicates"):
        assert report.counters[verdict] > PAYLOADS // 50, report.summary()
