"""Newer wins by event time in Redis: the shared cases (tests/data/newer_wins.json) against apply_batch.lua,
applied through Store.apply on the real Redis (the hub and the page run the same file: see
tests/unit/test_newer_wins.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker.store import Slice

pytestmark = pytest.mark.integration

CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "newer_wins.json").read_text())["cases"]
LON, HELD_LAT, INCOMING_LAT = 77.59, 12.90, 12.95


def fix(partner_id: str, ts: int, lat: float) -> tuple[str, int, float, float, str]:
    encoded = json.dumps({"id": partner_id, "lat": lat, "lon": LON, "ts": ts, "accepted_at_ms": ts})
    return (partner_id, ts, lat, LON, encoded)


async def test_the_redis_script_follows_the_rule(store):
    couriers = {f"case-{index}": case for index, case in enumerate(CASES)}
    held = [
        fix(partner_id, case["held"], HELD_LAT) for partner_id, case in couriers.items() if case["held"] is not None
    ]
    incoming = [fix(partner_id, case["incoming"], INCOMING_LAT) for partner_id, case in couriers.items()]
    # Two slices per partition (each courier in its own, as the validator writes it), one after the other: the
    # held fixes, then the incoming ones.
    for fixes in (held, incoming):
        parts: dict[int, list] = {}
        for item in fixes:
            parts.setdefault(store.partition_of(item[0]), []).append(item)
        slices = [Slice(p, -2, 0, 0, items, [], {}) for p, items in parts.items()]
        assert await store.apply("newer-wins", slices) == [1] * len(slices)

    fixes = await store.last_fixes(list(couriers))
    positions = await store.positions_json(list(couriers))
    geo = [(await store.redis.geopos(store.courier_keys(c).geo, c))[0] for c in couriers]
    for (partner_id, case), last, position, (_, geo_lat) in zip(
        couriers.items(), fixes.values(), positions, geo, strict=True
    ):
        replaced = case["expect"] == "replace"
        expected_ts = case["incoming"] if replaced else case["held"]
        expected_lat = INCOMING_LAT if replaced else HELD_LAT
        assert last is not None and (last.ts_ms, last.lat) == (expected_ts, expected_lat), (partner_id, case)
        assert json.loads(position)["lat"] == expected_lat, (partner_id, case)
        assert geo_lat == pytest.approx(expected_lat, abs=1e-5), (partner_id, case)
