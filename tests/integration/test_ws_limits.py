"""What one WebSocket client can cost the gateway, over real sockets: a burst of view changes gets at most one
snapshot per tick and leaves other clients' frames alone; a client over the message rate is closed with 1008;
an address over its connection cap is closed with 1013, and other addresses are not.

The hub is fed in-process (``consume=False``); Redis and the broker are the session's real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid

import pytest
import uvicorn
import websockets
from starlette import status as ws_status
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tests.helpers import eventually, eventually_sync
from tracker import protocol
from tracker.gateway import create_app
from tracker.hub import Hub
from tracker.models import Position

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

COURIERS = 300
NORTH = [77.5, 12.95, 77.7, 13.0]  # west, south, east, north: half the couriers
SOUTH = [77.5, 12.9, 77.7, 12.95]  # the other half
LOCAL = "http://localhost"  # a Host the gateway answers by default
WS = "ws://localhost/ws"


def now_ms() -> int:
    return int(time.time() * 1000)


def ids(frame: dict) -> set[str]:
    return {c["id"] for c in frame["couriers"]}


async def feed(hub: Hub, stop: asyncio.Event) -> None:
    """Every courier moves every 50 ms (faster than the tick): each tick has a delta for everyone."""
    step = 0
    while not stop.is_set():
        ts = now_ms()
        for i in range(COURIERS):
            lat = 12.91 + 0.08 * i / COURIERS  # spread over both boxes
            hub.ingest(Position(f"c{i:03}", lat, 77.6 + step * 1e-6, ts, ts, 5.0, 90.0, None, "bike"))
        step += 1
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def served(settings):
    """The gateway app on a real uvicorn server on a free loopback port, in this event loop."""
    app = create_app(settings, consume=False)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_max_size=64 * 1024))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or serving.done(), timeout_s=30, what="uvicorn to start")
        assert not serving.done(), serving
        yield app, f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def test_a_burst_of_300_viewports_gets_one_snapshot_per_tick_and_another_client_keeps_its_pace(infra):
    settings = infra.replace(namespace=f"wsl{uuid.uuid4().hex[:8]}.", tick_ms=200, ws_messages_burst=1000)
    tick_s = settings.tick_ms / 1000
    async with served(settings) as (app, url):
        hub: Hub = app.state.gateway.hub
        stop = asyncio.Event()
        feeder = asyncio.create_task(feed(hub, stop))
        observed: list[float] = []  # when the other client received each frame
        observer: asyncio.Task | None = None

        async def observe(ws) -> None:
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "delta":
                    observed.append(time.monotonic())

        try:
            async with websockets.connect(url, max_size=None) as other, websockets.connect(url, max_size=None) as ws:
                assert json.loads(await other.recv())["type"] == "snapshot"
                assert json.loads(await ws.recv())["type"] == "snapshot"
                observer = asyncio.create_task(observe(other))
                await asyncio.sleep(4 * tick_s)  # the observer's pace before the burst
                before = len(observed)
                ticks_at_burst, burst_at = hub.ticks, time.monotonic()
                for i in range(300):  # alternating, ending on NORTH
                    await ws.send(json.dumps({"type": "viewport", "bbox": NORTH if i % 2 else SOUTH}))
                await ws.send('{"type": "ping"}')  # its pong: the gateway has read the whole burst
                kinds: list[str] = []  # what the sender received after the burst
                snapshots: list[dict] = []
                ticks = 0  # from the burst to the arrival of its last snapshot

                async def receive() -> None:
                    nonlocal ticks
                    frame = json.loads(await ws.recv())
                    kinds.append(frame["type"])
                    if frame["type"] == "snapshot":
                        snapshots.append(frame)
                        ticks = hub.ticks - ticks_at_burst

                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        while "pong" not in kinds:
                            await receive()
                    async with asyncio.timeout(3 * tick_s):  # a snapshot still due comes at the next tick
                        while True:
                            await receive()
                window_ticks = hub.ticks - ticks_at_burst
                window_s = time.monotonic() - burst_at
                during = [at for at in observed if at >= burst_at]
        finally:
            stop.set()
            await feeder
            if observer is not None:
                observer.cancel()

    assert "pong" in kinds
    assert ids(snapshots[-1]) == north_ids(hub)  # the last view's
    assert len(snapshots) <= ticks + 1, f"{len(snapshots)} snapshots in {ticks} ticks"
    # The other client got a frame about every tick throughout (as before the burst), never a long gap.
    assert before >= 2
    assert len(during) >= window_ticks - 2, f"{len(during)} frames in {window_ticks} ticks"
    gaps = [b - a for a, b in zip([burst_at, *during], [*during, burst_at + window_s], strict=True)]
    assert max(gaps) < 3 * tick_s, f"the other client waited {max(gaps):.2f} s for a frame"


def north_ids(hub: Hub) -> set[str]:
    west, south, east, north = NORTH
    return {
        courier_id
        for courier_id, courier in hub.couriers.items()
        if west <= courier.position.lon <= east and south <= courier.position.lat <= north
    }


# -- the message rate and the per-address cap, through Starlette's TestClient ---------------------------


def _closed(ws) -> WebSocketDisconnect:
    """How the server closed ``ws``, reading (and dropping) whatever it sent before."""
    while True:
        try:
            ws.receive_text()
        except WebSocketDisconnect as closed:
            return closed


def _limit_closes(client: TestClient, limit: str) -> str:
    metrics = client.get("/metrics").text
    return next(
        line for line in metrics.splitlines() if line.startswith(f'tracker_ws_limit_closes_total{{limit="{limit}"}}')
    )


def test_a_client_over_the_message_rate_is_closed_with_1008_and_the_reason(infra):
    settings = infra.replace(namespace=f"wsl{uuid.uuid4().hex[:8]}.", ws_messages_per_s=0.1, ws_messages_burst=5)
    with TestClient(create_app(settings, consume=False), base_url=LOCAL) as client:
        with client.websocket_connect(WS) as ws:
            assert json.loads(ws.receive_text())["type"] == "snapshot"
            for _ in range(6):
                ws.send_text('{"type": "ping"}')
            closed = _closed(ws)
        assert (closed.code, closed.reason) == (
            ws_status.WS_1008_POLICY_VIOLATION,
            "too many messages: at most 0.1 per second, bursts of 5",
        )
        assert _limit_closes(client, "messages").endswith(" 1.0")
        with client.websocket_connect(WS) as ws:  # another client (and this one, reconnecting) is served
            assert json.loads(ws.receive_text())["type"] == "snapshot"


@pytest.mark.parametrize("behind_proxy", [True, False], ids=["behind-a-trusted-proxy", "direct"])
def test_the_connection_cap_per_address_refuses_the_next_one_with_1013_and_serves_other_addresses(infra, behind_proxy):
    settings = infra.replace(
        namespace=f"wsl{uuid.uuid4().hex[:8]}.",
        ws_max_per_address=2,
        trusted_proxies="127.0.0.1/32" if behind_proxy else None,
    )
    app = create_app(settings, consume=False)
    hub: Hub = app.state.gateway.hub

    def connect(client: TestClient, forwarded_for: str):
        return client.websocket_connect(WS, headers={"x-forwarded-for": forwarded_for})

    with TestClient(app, base_url=LOCAL, client=("127.0.0.1", 50000)) as proxy, contextlib.ExitStack() as held:
        first = held.enter_context(connect(proxy, "203.0.113.7"))
        held.enter_context(connect(proxy, "203.0.113.7"))
        assert json.loads(first.receive_text())["type"] == "snapshot"
        with connect(proxy, "203.0.113.7") as third:
            closed = _closed(third)
        assert (closed.code, closed.reason) == (
            ws_status.WS_1013_TRY_AGAIN_LATER,
            protocol.TOO_MANY_FROM_ADDRESS.reason,
        )
        assert _limit_closes(proxy, "per_address").endswith(" 1.0")
        # Behind a trusted proxy each client it names has its own slots; directly, X-Forwarded-For is not
        # believed and the peer is the address.
        with connect(proxy, "198.51.100.1") as elsewhere:
            if behind_proxy:
                assert json.loads(elsewhere.receive_text())["type"] == "snapshot"
            else:
                assert _closed(elsewhere).code == ws_status.WS_1013_TRY_AGAIN_LATER
        first.close()
        eventually_sync(lambda: len(hub.clients) == 1, timeout_s=10, interval_s=0.02, what="the slot to be free")
        with connect(proxy, "203.0.113.7") as again:
            assert json.loads(again.receive_text())["type"] == "snapshot"
