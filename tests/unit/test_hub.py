"""The hub forgets couriers silent for longer than the TTL, and every client hears about it; the gateway's
positions reader feeds it only what it can show, whatever a record holds."""

from __future__ import annotations

import json

from tracker.gateway import Gateway
from tracker.hub import Hub
from tracker.models import Position, Record
from tracker.settings import Settings

NOW = 1_795_000_000_000
HOUR = 3_600_000


def position(courier_id: str, ts: int, lat: float = 12.97, lon: float = 77.59) -> Position:
    return Position(courier_id, lat, lon, ts, ts, 5.0, 90.0, None, "bike")


def frames(client) -> list[dict]:
    """What the client's writer would send now (it clears the wake-up first, as ws._write does)."""
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
    hub.set_viewport(boxed, (77.5, 12.9, 77.7, 13.0))  # both couriers are inside
    elsewhere = hub.connect()
    hub.set_viewport(elsewhere, (77.61, 12.92, 77.64, 12.95))  # only "recent"
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


# -- the gateway's positions reader feeds the hub and survives any record ---------------------------------


def record(value: bytes | None, offset: int) -> Record:
    return Record("courier-positions", 3, offset, NOW, b"k", value, ())


GOOD = json.dumps({"id": "good", "lat": 12.97, "lon": 77.59, "ts": NOW, "accepted_at_ms": NOW}).encode()
POISON = {
    "no value": None,
    "not JSON": b"\x00\x01garbage",
    "not UTF-8": b'{"id":"\xed\xa0\x80","lat":1,"lon":2,"ts":1,"accepted_at_ms":1}',
    "a lone surrogate id": b'{"id":"\\ud800","lat":12.9,"lon":77.5,"ts":1,"accepted_at_ms":1}',
    "NaN": b'{"id":"n","lat":NaN,"lon":77.5,"ts":1,"accepted_at_ms":1}',
    "a huge ts": b'{"id":"h","lat":12.9,"lon":77.5,"ts":' + b"9" * 400 + b',"accepted_at_ms":1}',
    "a huge accepted_at_ms": b'{"id":"h","lat":12.9,"lon":77.5,"ts":1,"accepted_at_ms":' + b"9" * 400 + b"}",
    "a huge lat": b'{"id":"h","lat":1' + b"0" * 400 + b',"lon":77.5,"ts":1,"accepted_at_ms":1}',
    "lat out of range": b'{"id":"h","lat":95,"lon":77.5,"ts":1,"accepted_at_ms":1}',
    "a wrong type": b'{"id":"w","lat":"12.9","lon":77.5,"ts":1,"accepted_at_ms":1}',
    "an empty id": b'{"id":"","lat":12.9,"lon":77.5,"ts":1,"accepted_at_ms":1}',
    "an array": b"[1, 2, 3]",
    "null": b"null",
}


def metrics_text(gateway: Gateway) -> str:
    return gateway.metrics.render({}, gateway.hub.counts()).decode()


def test_the_positions_reader_skips_every_poison_record_counts_it_logs_where_and_goes_on(caplog):
    gateway = Gateway(Settings(), consume=False)
    for offset, value in enumerate(POISON.values()):
        assert gateway.apply_position(record(value, offset), NOW) is False, value
    assert gateway.apply_position(record(GOOD, 99), NOW) is True
    assert list(gateway.hub.couriers) == ["good"]
    assert f"tracker_bad_position_records_total {len(POISON)}.0" in metrics_text(gateway)
    skipped = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(skipped) == len(POISON)
    assert all(
        message.startswith(f"skipping position record courier-positions/3@{offset}: ")
        for offset, message in enumerate(skipped)
    )
    assert "no value" in skipped[0] and "out of range" in skipped[8]


def test_a_record_that_breaks_the_hub_is_skipped_and_logged_with_its_traceback(caplog, monkeypatch):
    gateway = Gateway(Settings(), consume=False)

    def broken(position, now=None):
        raise OverflowError("a future bug")

    monkeypatch.setattr(gateway.hub, "ingest", broken)
    assert gateway.apply_position(record(GOOD, 7), NOW) is False
    assert "tracker_bad_position_records_total 1.0" in metrics_text(gateway)
    [logged] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "courier-positions/3@7" in logged.getMessage() and logged.exc_info is not None
