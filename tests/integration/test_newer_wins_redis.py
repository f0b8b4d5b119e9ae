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
    # Two slices of one partition, one after the other: the held fixes, then the incoming ones.
    assert await store.apply("newer-wins", [Slice(0, -2, 0, 0, held, [], {})]) == [1]
    assert await store.apply("newer-wins", [Slice(0, -2, 1, 1, incoming, [], {})]) == [1]

    fixes = await store.last_fixes(list(couriers))
    positions = await store.positions_json(list(couriers))
    geo = await store.redis.geopos(store.key_geo, *couriers)
    for (partner_id, case), last, position, (_, geo_lat) in zip(
        couriers.items(), fixes.values(), positions, geo, strict=True
    ):
        replaced = case["expect"] == "replace"
        expected_ts = case["incoming"] if replaced else case["held"]
        expected_lat = INCOMING_LAT if replaced else HELD_LAT
        assert last is not None and (last.ts_ms, last.lat) == (expected_ts, expected_lat), (partner_id, case)
        assert json.loads(position)["lat"] == expected_lat, (partner_id, case)
        assert geo_lat == pytest.approx(expected_lat, abs=1e-5), (partner_id, case)
