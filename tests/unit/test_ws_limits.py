"""What one WebSocket client can cost the gateway: at most one snapshot per tick however often it changes its
view, a pending snapshot no burst of pings or stats can push out, a message allowance, a cap per address, and
a client that stops reading cut off without slowing the others. The hub, the writer and the pure limits,
without sockets (tests/integration/test_ws_limits.py and test_live_map.py have the sockets)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import pytest
from starlette import status as ws_status

from tracker import protocol, ws
from tracker.gateway import Gateway
from tracker.hub import PONG_FRAME, PONGS_OWED_MAX, Client, Hub
from tracker.models import Position
from tracker.settings import Settings

NOW = 1_795_000_000_000
NORTH = (77.5, 12.95, 77.7, 13.0)
SOUTH = (77.5, 12.9, 77.7, 12.95)


def position(courier_id: str, lat: float, ts: int = NOW, lon: float = 77.6) -> Position:
    return Position(courier_id, lat, lon, ts, ts, 5.0, 90.0, None, "bike")


def frames(client: Client) -> list[dict]:
    """What the client's writer would send now (it clears the wake-up first, as ws._write does)."""
    client.wake.clear()
    out = []
    while (frame := client.next_frame()) is not None:
        out.append(json.loads(frame))
    return out


def ids(frame: dict) -> list[str]:
    return sorted(c["id"] for c in frame["couriers"])


def world() -> Hub:
    hub = Hub()
    hub.ingest(position("north", 12.97), NOW)
    hub.ingest(position("south", 12.92), NOW)
    hub.tick()
    return hub


# -- snapshots: at most one per tick, of the last view, never behind a delta ------------------------------


def test_the_first_snapshot_is_of_the_view_the_client_sends_first_and_of_everything_at_the_next_tick_if_none():
    hub = world()
    client = hub.connect()
    assert not client.wake.is_set()  # no snapshot of everything before the client could say what it looks at
    hub.set_viewport(client, NORTH)  # what a page sends on open
    assert client.wake.is_set()
    [snapshot] = frames(client)
    assert (snapshot["type"], ids(snapshot)) == ("snapshot", ["north"])
    silent = hub.connect()
    hub.tick()
    assert silent.wake.is_set()  # a client that says nothing gets everything at the next tick
    [snapshot] = frames(silent)
    assert (snapshot["type"], sorted(ids(snapshot))) == ("snapshot", ["north", "south"])


def test_300_view_changes_within_a_tick_cost_one_snapshot_of_the_last_view():
    hub = world()
    client = hub.connect()
    assert [f["type"] for f in frames(client)] == ["snapshot"]
    for i in range(300):
        hub.set_viewport(client, NORTH if i % 2 else SOUTH)
        hub.set_follow(client, None)
        assert frames(client) == []  # one snapshot this tick already
    hub.set_viewport(client, NORTH)
    assert not client.wake.is_set() or frames(client) == []
    hub.tick()
    assert client.wake.is_set()  # the tick wakes the writer for it
    [snapshot] = frames(client)
    assert (snapshot["type"], ids(snapshot)) == ("snapshot", ["north"])
    hub.set_viewport(client, SOUTH)
    assert frames(client) == []
    hub.tick()
    assert [(f["type"], ids(f)) for f in frames(client)] == [("snapshot", ["south"])]


def test_no_delta_goes_out_before_the_snapshot_that_supersedes_it_and_visibility_holds_after():
    hub = world()
    client = hub.connect()
    frames(client)
    hub.set_viewport(client, NORTH)  # waits for the next tick
    hub.ingest(position("north", 12.98, NOW + 1), NOW)
    hub.ingest(position("south", 12.96, NOW + 1), NOW)  # drives into the north box
    hub.tick()
    [snapshot] = frames(client)
    assert snapshot["type"] == "snapshot"
    assert ids(snapshot) == ["north", "south"]
    assert {c["id"]: c["lat"] for c in snapshot["couriers"]} == {"north": 12.98, "south": 12.96}
    assert frames(client) == []  # nothing this tick that the snapshot did not carry
    hub.ingest(position("south", 12.92, NOW + 2), NOW)  # and out again
    hub.tick()
    [delta] = frames(client)
    assert (delta["type"], delta["couriers"], delta["removed"]) == ("delta", [], ["south"])


def test_an_expiry_while_a_snapshot_is_pending_is_not_a_frame_before_it():
    hub = world()
    client = hub.connect()
    frames(client)
    hub.set_viewport(client, None)
    assert hub.expire(NOW + 1) == ["north", "south"]
    hub.tick()
    assert [(f["type"], f["couriers"]) for f in frames(client)] == [("snapshot", [])]


# -- the pending snapshot has its own slot; pongs are bounded, stats coalesce ---------------------------


def test_a_burst_of_50_pings_and_stats_cannot_evict_a_pending_snapshot_or_grow_memory():
    hub = world()
    client = hub.connect()
    frames(client)
    hub.set_viewport(client, SOUTH)  # due at the next tick
    for i in range(50):
        hub.pong(client)
        hub.broadcast(json.dumps({"type": "stats", "n": i}))
    assert client.pongs_owed == PONGS_OWED_MAX and client.stats is not None
    sent = frames(client)  # what goes out before the tick: pongs and the latest stats, nothing else
    assert sent == [json.loads(PONG_FRAME)] * PONGS_OWED_MAX + [{"type": "stats", "n": 49}]
    for _ in range(50):
        hub.pong(client)
    hub.tick()
    after = frames(client)
    assert after[0]["type"] == "snapshot" and ids(after[0]) == ["south"]
    assert [f["type"] for f in after[1:]] == ["pong"] * PONGS_OWED_MAX


def test_the_snapshot_goes_before_pongs_stats_and_deltas():
    hub = world()
    client = hub.connect()
    hub.pong(client)
    hub.broadcast('{"type":"stats"}')
    hub.ingest(position("north", 12.98, NOW + 1), NOW)
    assert [f["type"] for f in frames(client)] == ["snapshot", "pong", "stats"]
    hub.tick()
    hub.pong(client)
    assert [f["type"] for f in frames(client)] == ["pong", "delta"]


# -- the message allowance ----------------------------------------------------------------------------


def test_the_token_bucket_allows_a_burst_then_the_rate():
    bucket = protocol.TokenBucket(per_s=4.0, burst=100, now=1000.0)  # times in quarters: exact in binary
    assert all(bucket.take(1000.0) for _ in range(100))
    assert not bucket.take(1000.0)
    assert not bucket.take(1000.125)
    assert bucket.take(1000.25)  # 1/4 s later: one more
    assert not bucket.take(1000.25)
    assert [bucket.take(1000.25 + i / 4) for i in range(1, 41)] == [True] * 40  # 4 a second, for 10 s
    assert not bucket.take(1010.25)
    assert sum(bucket.take(5000.0) for _ in range(150)) == 100  # idle for an hour: still only the burst


def test_the_token_bucket_mints_nothing_when_the_clock_goes_back():
    bucket = protocol.TokenBucket(per_s=1.0, burst=2, now=10.0)
    assert bucket.take(10.0) and bucket.take(10.0)
    assert not bucket.take(5.0)
    assert not bucket.take(10.5)
    assert bucket.take(11.0)


def test_the_refusals_name_the_limit_within_a_close_frame():
    messages = protocol.too_many_messages(20.0, 100)
    assert (messages.code, messages.reason) == (
        ws_status.WS_1008_POLICY_VIOLATION,
        "too many messages: at most 20 per second, bursts of 100",
    )
    assert protocol.TOO_MANY_FROM_ADDRESS.code == protocol.TOO_MANY_CLIENTS.code == ws_status.WS_1013_TRY_AGAIN_LATER
    assert "address" in protocol.TOO_MANY_FROM_ADDRESS.reason
    assert len(protocol.too_many_messages(0.123456789, 10**30).reason.encode()) <= 123


# -- the per-address count ----------------------------------------------------------------------------


def test_the_hub_counts_connections_per_address_and_forgets_an_address_with_none():
    hub = Hub()
    first, second = hub.connect("203.0.113.7"), hub.connect("203.0.113.7")
    other = hub.connect("198.51.100.1")
    assert (hub.connections_from("203.0.113.7"), hub.connections_from("198.51.100.1")) == (2, 1)
    assert hub.connections_from("192.0.2.1") == 0
    hub.disconnect(first)
    hub.disconnect(first)  # twice: still one fewer, not two
    assert hub.connections_from("203.0.113.7") == 1
    hub.disconnect(second)
    hub.disconnect(other)
    assert not hub.per_address and not hub.clients  # a thousand addresses gone leave nothing behind


@pytest.mark.parametrize("pending", [True, False])
def test_a_client_that_leaves_is_not_woken_for_its_snapshot(pending):
    hub = world()
    client = hub.connect()
    frames(client)
    if pending:
        hub.set_viewport(client, NORTH)
        frames(client)
    hub.disconnect(client)
    assert not hub.snapshot_waiting


# -- a client that stops reading: cut off, without slowing the others -----------------------------------


class FakeSocket:
    """What ws._write needs of a Starlette WebSocket: ``send_text`` (which never returns for a client that does
    not read: its socket buffer is full) and ``close``."""

    def __init__(self, reads: bool) -> None:
        self.reads = reads
        self.sent: list[float] = []  # when each delta went out
        self.closed: tuple[int, str] | None = None

    async def send_text(self, text: str) -> None:
        if not self.reads:
            await asyncio.Event().wait()  # the transport's buffer never drains
        if text.startswith('{"type":"delta"'):
            self.sent.append(time.monotonic())

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)


async def test_a_client_that_stops_reading_is_cut_off_and_the_others_keep_every_tick():
    tick_s = 0.02
    gateway = Gateway(Settings(ws_send_timeout_s=0.3), consume=False)
    hub = gateway.hub
    for i in range(200):
        hub.ingest(position(f"c{i}", 12.9 + i * 1e-4), NOW)
    hub.tick()
    sockets = [FakeSocket(reads=i != 3) for i in range(20)]
    clients = [hub.connect() for _ in sockets]
    for client in clients[::2]:
        hub.set_viewport(client, SOUTH)  # half of them filtered, half see everything
    writers = []
    for sock, client in zip(sockets, clients, strict=True):  # as ws.endpoint starts each client's writer
        client.writer = asyncio.create_task(ws._write(sock, client, gateway))  # type: ignore[arg-type]
        writers.append(client.writer)
    started = time.monotonic()
    ticks = []
    for step in range(40):  # 0.8 s: every courier moves every tick
        for i in range(200):
            hub.ingest(position(f"c{i}", 12.9 + i * 1e-4 + step * 1e-6, NOW + step + 1), NOW)
        ticks.append(time.monotonic())
        hub.tick()  # and the send timeout, as Gateway._tick does
        ws.cut_off_stalled(hub.clients, gateway.settings.ws_send_timeout_s, time.monotonic())
        await asyncio.sleep(tick_s)
    slow = sockets[3]
    assert writers[3].done() and slow.closed == (ws_status.WS_1013_TRY_AGAIN_LATER, "client too slow; reconnect")
    assert "tracker_ws_slow_disconnects_total 1.0" in gateway.metrics.render({}, hub.counts()).decode()
    for index, sock in enumerate(sockets):
        if index == 3:
            continue
        assert not writers[index].done()
        assert len(sock.sent) >= len(ticks) - 1, (index, len(sock.sent))  # a delta every tick, blocked or not
        gaps = [b - a for a, b in itertools.pairwise([started, *sock.sent])]
        assert max(gaps) < 5 * tick_s, (index, max(gaps))  # never held up by the one that stopped reading
    for writer in writers:
        writer.cancel()
    await asyncio.gather(*writers, return_exceptions=True)
