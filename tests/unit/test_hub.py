"""The hub forgets couriers silent for longer than the TTL, and every client hears about it."""

from __future__ import annotations

import json

from tracker.hub import Hub
from tracker.models import Position

NOW = 1_795_000_000_000
HOUR = 3_600_000


def position(courier_id: str, ts: int, lat: float = 12.97, lon: float = 77.59) -> Position:
    return Position(courier_id, lat, lon, ts, ts, 5.0, 90.0, None, "bike")


def frames(client) -> list[dict]:
    """What the client's writer would send now (it clears the wake-up first, as gateway._write does)."""
    client.wake.clear()
    out = []
    while (frame := client.next_frame()) is not None:
        out.append(json.loads(frame))
    return out


def test_expired_couriers_leave_the_hub_the_counts_and_every_clients_view():
    hub = Hub()
    hub.ingest(position("silent", NOW - 25 * HOUR), NOW)
    hub.ingest(position("recent", NOW - 1000, lat=12.93, lon=77.62), NOW)
    everything = hub.connect()
    boxed = hub.connect()
    boxed.bbox = (77.5, 12.9, 77.7, 13.0)  # both couriers are inside
    boxed.reset_view()
    elsewhere = hub.connect()
    elsewhere.bbox = (77.61, 12.92, 77.64, 12.95)  # only "recent"
    elsewhere.reset_view()
    hub.tick()
    for client in (everything, boxed, elsewhere):
        frames(client)
    assert hub.counts() == {"online": 1, "idle": 0, "stale": 0, "offline": 1}

    assert hub.expire(NOW - 24 * HOUR) == ["silent"]
    assert list(hub.couriers) == ["recent"]
    assert hub.counts() == {"online": 1, "idle": 0, "stale": 0, "offline": 0}
    assert everything.wake.is_set()
    [delta] = frames(everything)
    assert (delta["type"], delta["couriers"], delta["removed"]) == ("delta", [], ["silent"])
    assert frames(boxed)[0]["removed"] == ["silent"]
    assert frames(elsewhere) == []  # it never showed "silent"
    assert json.loads(hub.snapshot_frame(hub.connect()))["couriers"][0]["id"] == "recent"
    assert hub.expire(NOW - 24 * HOUR) == []


def test_a_courier_expiring_between_a_tick_and_the_send_is_not_in_the_frame():
    hub = Hub()
    client = hub.connect()
    frames(client)
    hub.ingest(position("old", NOW - 25 * HOUR), NOW)
    hub.ingest(position("new", NOW - 1000), NOW)
    hub.tick()  # both changed: the client is due the shared frame naming both
    hub.expire(NOW - 24 * HOUR)
    [delta] = frames(client)
    assert [c["id"] for c in delta["couriers"]] == ["new"]
    assert delta["removed"] == ["old"]
    other = hub.connect()
    frames(other)
    hub.ingest(position("new", NOW), NOW)
    hub.tick()
    assert [c["id"] for c in json.loads(hub.shared_frame())["couriers"]] == ["new"]


def test_a_courier_that_expired_before_any_tick_is_never_sent_as_a_courier():
    hub = Hub()
    client = hub.connect()
    frames(client)
    hub.ingest(position("old", NOW - 25 * HOUR), NOW)
    hub.expire(NOW - 24 * HOUR)
    assert hub.tick() == 0
    assert [(frame["couriers"], frame["removed"]) for frame in frames(client)] == [([], ["old"])]
