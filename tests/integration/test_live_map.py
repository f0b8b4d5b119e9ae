"""The gateway as a real process on the real broker: WebSocket frames over a real socket, and a client too
slow to drain its socket closed with 1013 while a healthy client keeps getting frames."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import msgspec
import pytest
import websockets
from starlette import status as ws_status

from tests.helpers import eventually
from tracker.local.processes import free_port
from tracker.models import OutRecord, Position
from tracker.up import LocalSystem

pytestmark = pytest.mark.integration


@pytest.fixture
async def system(settings, tmp_path):
    system_settings = settings.replace(http_port=free_port(), tick_ms=25, ws_send_timeout_s=1.0)
    with LocalSystem(system_settings, tmp_path, validators=1) as running:
        yield running


async def _read_until_closed(ws) -> None:
    while True:
        await ws.recv()


async def frames_until(ws, predicate, timeout_s=20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if predicate(frame):
            return frame
    raise AssertionError("no matching frame")


async def test_ping_to_frame_on_the_real_stack(system, settings, producer):
    url = system.base_url.replace("http", "ws") + "/ws"
    async with websockets.connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "snapshot"
        now = int(time.time() * 1000)
        body = {"partner_id": "courier-live", "lat": 12.9716, "lon": 77.5946, "ts": now, "vehicle": "bike"}
        await asyncio.gather(
            *await producer.send_many(settings.location_topic, [OutRecord(json.dumps(body).encode(), b"courier-live")])
        )
        delta = await frames_until(
            ws, lambda f: f["type"] == "delta" and any(c["id"] == "courier-live" for c in f["couriers"])
        )
        courier = next(c for c in delta["couriers"] if c["id"] == "courier-live")
        assert (courier["lat"], courier["ts"], courier["vehicle"]) == (12.9716, now, "bike")

        await ws.send(json.dumps({"type": "viewport", "bbox": [77.61, 12.92, 77.64, 12.95]}))
        snapshot = await frames_until(ws, lambda f: f["type"] == "snapshot")
        assert snapshot["couriers"] == []  # courier-live is outside Koramangala

        # Lag only where the broker's end offsets are true: Apache Kafka yes, Tansu no. Once
        # the gateway has read everything, it is 0.
        async with httpx.AsyncClient() as client:

            async def caught_up() -> str | None:
                metrics = (await client.get(system.base_url + "/metrics")).text
                return metrics if not settings.report_lag or "tracker_positions_consumer_lag 0.0" in metrics else None

            metrics = await eventually(caught_up, timeout_s=10, interval_s=0.2, what="a consumer lag of 0")
        assert ("tracker_positions_consumer_lag 0.0" in metrics) == settings.report_lag
        assert ("tracker_positions_consumer_lag" in metrics) == settings.report_lag

        await ws.send("not json")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await _read_until_closed(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == ws_status.WS_1003_UNSUPPORTED_DATA


async def test_slow_client_is_cut_off_and_others_keep_going(system, settings, producer):
    url = system.base_url.replace("http", "ws") + "/ws"
    # A client that never reads: websockets stops reading the socket once its queue (1 frame) is full,
    # and a tiny receive buffer makes the gateway's writes block soon after.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", int(system.base_url.rsplit(":", 1)[1])))
    slow = await websockets.connect(url, sock=sock, max_queue=1, max_size=None)
    healthy = await websockets.connect(url, max_size=None)
    # The healthy client watches a district (the first ten couriers), as a dispatcher does: it must keep
    # getting its frames while the gateway's writes to the slow one block. (Watching all 3,000 at a 25 ms
    # tick, 12 MB/s, a loaded CI machine could make the test's own reader the slow one.)
    await healthy.send(msgspec.json.encode({"type": "viewport", "bbox": [77.59, 12.9499, 77.61, 12.95009]}).decode())
    received = 0
    stop = asyncio.Event()

    async def read_healthy() -> None:
        nonlocal received
        while not stop.is_set():
            await healthy.recv()
            received += 1

    reader = asyncio.create_task(read_healthy())
    encode = msgspec.json.Encoder().encode
    round_number = 0

    async def cut_off_after_another_round() -> bool:
        # 3,000 couriers move every round: ~300 kB per tick for a client that sees everything.
        nonlocal round_number
        now = int(time.time() * 1000)
        records = [
            OutRecord(
                encode(
                    Position(f"c{i}", 12.95 + i * 1e-5, 77.6 + round_number * 1e-6, now, now, 5.0, 0.0, 5.0, "bike")
                ),
                f"c{i}".encode(),
            )
            for i in range(3000)
        ]
        await asyncio.gather(*await producer.send_many(settings.positions_topic, records))
        round_number += 1
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(system.base_url + "/metrics")).text
        return "tracker_ws_slow_disconnects_total 1.0" in metrics

    try:
        await eventually(
            cut_off_after_another_round, timeout_s=60, interval_s=0.05, what="the slow client to be cut off"
        )
        before = received
        await cut_off_after_another_round()  # the couriers go on moving
        # The healthy client gets the move as a frame: at once on a quiet machine, within seconds on a loaded
        # one (the gateway reads 3,000 positions first); a fixed one-second wait failed CI once at 20 > 20.
        await eventually(
            lambda: received > before or reader.done(), timeout_s=15, what="a frame for the healthy client"
        )
        assert not reader.done(), f"the healthy client was cut off too: {reader.exception()!r}"
    finally:
        stop.set()
        reader.cancel()
        await healthy.close()
        slow.transport.abort()
