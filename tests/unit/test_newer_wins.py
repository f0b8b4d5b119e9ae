"""Newer wins by event time, one tie rule: the shared cases (tests/data/newer_wins.json) against the rule
itself and against the hub, which holds every courier's latest fix in the gateway. The same file is run
against the Redis script (tests/integration/test_newer_wins_redis.py) and the map page
(frontend/test/newer-wins.test.js)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tracker.hub import Hub
from tracker.models import Position, newer_wins

CASES = json.loads((Path(__file__).resolve().parents[1] / "data" / "newer_wins.json").read_text())["cases"]
NOW = 1_795_000_000_000
HELD_LAT, INCOMING_LAT = 12.90, 12.95


def case_id(case: dict) -> str:
    return f"{case['held']}<-{case['incoming']}:{case['expect']}"


def position(ts: int, lat: float) -> Position:
    return Position("courier-1", lat, 77.59, ts, NOW, 5.0, 90.0, None, "bike")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_rule(case):
    assert newer_wins(case["held"], case["incoming"]) is (case["expect"] == "replace")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_hub_follows_the_rule(case):
    hub = Hub()
    if case["held"] is not None:
        assert hub.ingest(position(case["held"], HELD_LAT), NOW)
        hub.changed.clear()
    incoming = position(case["incoming"], INCOMING_LAT)

    taken = hub.ingest(incoming, NOW)

    replaced = case["expect"] == "replace"
    assert taken is replaced
    assert hub.couriers["courier-1"].position.lat == (INCOMING_LAT if replaced else HELD_LAT)
    assert ("courier-1" in hub.changed) is replaced  # a kept fix is not sent to any client again


def test_the_cases_cover_ties_and_both_directions():
    kinds = {
        (
            case["held"] is None,
            None if case["held"] is None else (case["incoming"] > case["held"]) - (case["incoming"] < case["held"]),
            case["expect"],
        )
        for case in CASES
    }
    assert {(True, None, "replace"), (False, 1, "replace"), (False, 0, "keep"), (False, -1, "keep")} == kinds
