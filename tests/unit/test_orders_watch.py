"""The tracking fan-out (tracker/orders/watch.py through the hub): one frame per order per newer fix, the same
string for every socket watching it; only the watched courier; state changes, delivered and revocation."""

from __future__ import annotations

import json

import pytest

from tracker.hub import Hub
from tracker.models import Position
from tracker.orders.link import Link
from tracker.orders.state import OrderState

NOW = 1_800_000_000_000
DROPOFF = (12.9716, 77.5946)


def fix(partner_id: str, ts: int, lat: float = 12.95) -> Position:
    return Position(partner_id, lat, 77.60, ts, ts, 6.0, 90.0, None, "bike")


def link(order_id: str, partner_id: str, pickup=None) -> Link:
    return Link(order_id, partner_id, DROPOFF, pickup, NOW // 1000 + 3600)


def drain(watcher) -> list[dict]:
    frames = []
    while (frame := watcher.next_frame()) is not None:
        frames.append(json.loads(frame))
    return frames


def test_one_frame_per_order_shared_by_its_sockets_and_only_its_courier():
    hub = Hub()
    hub.ingest(fix("a", NOW), NOW)
    hub.ingest(fix("b", NOW), NOW)
    first = hub.track(link("o1", "a"), OrderState.PICKED_UP, "x", [], NOW)
    second = hub.track(link("o1", "a"), OrderState.PICKED_UP, "y", [], NOW)
    other = hub.track(link("o2", "a"), OrderState.PICKED_UP, "z", [], NOW)
    assert [f["type"] for f in drain(first)] == ["order", "courier"]
    drain(second), drain(other)
    hub.ingest(fix("b", NOW + 1000, 12.96), NOW)  # another courier moves: nothing for these sockets
    hub.tick()
    assert first.next_frame() is None and hub.tracking.frames_made == 0
    hub.ingest(fix("a", NOW + 1000, 12.951), NOW)
    hub.tick()
    assert first.frame is second.frame and first.frame is not None  # encoded once, the same string
    assert other.frame is not None and other.frame is not first.frame  # another order: its own frame
    assert hub.tracking.frames_made == 2
    assert drain(first)[0]["lat"] == 12.951
    hub.tick()  # no newer fix: nothing
    assert first.next_frame() is None and hub.tracking.frames_made == 2
    assert hub.connections_from("x") == 1
    hub.untrack(first)
    assert hub.connections_from("x") == 0 and "o1" in hub.tracking.by_order  # "y" still watches it


def test_state_changes_then_delivered_closes_and_revoked_closes_without_data():
    hub = Hub()
    hub.ingest(fix("a", NOW), NOW)
    watcher = hub.track(link("o1", "a"), OrderState.PICKED_UP, "x", [], NOW)
    revoked = hub.track(link("o2", "a"), OrderState.PICKED_UP, "x", [], NOW)
    drain(watcher), drain(revoked)
    hub.tracking.refresh("o1", b"arriving 5", False, NOW / 1000)
    # The new state, then the courier as it shows: no need to wait for its next fix.
    assert [(f["type"], f.get("state"), f.get("lat")) for f in drain(watcher)] == [
        ("order", "arriving", None),
        ("courier", None, 12.95),
    ]
    hub.tracking.refresh("o1", b"arriving 5", False, NOW / 1000)  # the same: nothing
    assert watcher.next_frame() is None
    hub.ingest(fix("a", NOW + 1000, 12.951), NOW)
    hub.tick()
    hub.tracking.refresh("o1", b"delivered 9", False, NOW / 1000)
    hub.tracking.refresh("o2", b"picked_up 1", True, NOW / 1000)
    frames = drain(watcher)
    assert frames[-1] == {**frames[-1], "type": "order", "state": "delivered"}
    assert all(f["type"] == "order" for f in frames)  # the pending courier frame is dropped
    assert watcher.closing == (1000, "delivered")
    assert revoked.next_frame() is None and revoked.closing == (1008, "tracking link revoked")
    hub.ingest(fix("a", NOW + 2000, 12.952), NOW)
    hub.tick()
    assert watcher.next_frame() is None and hub.tracking.by_partner == {}


def test_coarse_before_pickup_and_expired_links_close():
    hub = Hub()
    hub.tracking.coarsen_m = 200
    hub.ingest(fix("a", NOW), NOW)
    watcher = hub.track(link("o1", "a", pickup=(12.94, 77.60)), OrderState.TO_PICKUP, "x", [], NOW)
    courier = drain(watcher)[1]
    assert courier["coarse"] is True and courier["heading"] is None and courier["lat"] != 12.95
    hub.tracking.refresh("o1", b"to_pickup 1", False, NOW / 1000 + 3600)
    assert watcher.closing == (1008, "tracking link expired")


def test_the_running_speed_is_the_recent_speed_of_the_same_fixes():
    import random

    from tracker.orders.state import recent_speed
    from tracker.orders.watch import Followed

    rng = random.Random(16)
    fixes = []
    ts, lat, lon = NOW, 12.95, 77.60
    for _ in range(300):
        ts += rng.choice((300, 1000, 1000, 2000, 9000, 40_000))  # now and then a gap past the minute's window
        lat, lon = lat + rng.uniform(-1e-4, 1e-4), lon + rng.uniform(-1e-4, 1e-4)
        fixes.append((ts, lat, lon))
    followed = Followed("a", fixes[:3])
    for n in range(3, len(fixes)):
        followed.take(Position("a", fixes[n][1], fixes[n][2], fixes[n][0], 0))
        expected = recent_speed(fixes[: n + 1])
        got = followed.speed()
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got == pytest.approx(expected, rel=1e-6)


def test_picked_up_sends_the_exact_position_at_once_not_at_the_next_fix():
    hub = Hub()
    hub.tracking.coarsen_m = 200
    hub.ingest(fix("a", NOW, 12.95012), NOW)
    watcher = hub.track(link("o1", "a", pickup=(12.95, 77.60)), OrderState.TO_PICKUP, "x", [], NOW)
    [order, coarse] = drain(watcher)
    assert order["state"] == "to_pickup" and coarse["coarse"] is True and coarse["lat"] != 12.95012
    hub.tracking.refresh("o1", b"picked_up 5", False, NOW / 1000)
    [order, exact] = drain(watcher)
    assert order["state"] == "picked_up"
    assert (exact["coarse"], exact["lat"], exact["heading"]) == (False, 12.95012, 90.0)
    assert exact["distance_m"] > 2_000  # measured to the drop-off now, not to the pickup next door
