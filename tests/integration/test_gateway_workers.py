"""``tracker gateway --workers 2`` on the real broker and Redis: one relay reads ``courier-positions`` for both
workers, and every map client, whichever worker it lands on, gets every courier. The relay killed with SIGKILL
is restarted by the supervisor; the workers reconnect and reload from Redis, so a position that reached Redis
while the relay was down is on every map, and positions produced after it flow again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
import websockets

from tests.helpers import eventually
from tracker.local.processes import free_port
from tracker.models import OutRecord, Position
from tracker.relay import RelayConsumer, serve
from tracker.store import Slice
from tracker.supervision import child_env, popen, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

CLIENTS = 12  # spread over the two workers by SO_REUSEPORT: all on one has odds of 2 ** -11


def _children(pid: int) -> list[tuple[int, str]]:
    """The supervisor's children: (pid, command line)."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        out.append((int(child), cmdline))
    return out


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def _position(courier_id: str, lat: float, ts: int) -> Position:
    return Position(courier_id, lat, 77.5946, ts, ts, 4.0, None, None, "bike")


async def _until_seen(clients: list, courier_id: str, lat: float, timeout_s: float = 30.0) -> None:
    """Every client gets ``courier_id`` at ``lat`` (in a delta or a snapshot)."""

    async def one(ws) -> None:
        while True:
            frame = json.loads(await ws.recv())
            for courier in frame.get("couriers", []):
                if courier["id"] == courier_id and courier["lat"] == lat:
                    return

    await asyncio.wait_for(asyncio.gather(*(one(ws) for ws in clients)), timeout_s)


async def test_two_workers_share_one_relay_and_survive_its_sigkill(settings, producer, store, tmp_path):
    port = free_port()
    gateway_settings = settings.replace(http_port=port, tick_ms=50)
    log = (tmp_path / "gateway.log").open("wb")
    argv = [sys.executable, "-m", "tracker", "gateway", "--workers", "2", "--port", str(port)]
    supervisor = popen(argv, env=child_env(gateway_settings, "gateway"), stdout=log, stderr=subprocess.STDOUT)
    clients: list = []
    try:
        base = f"http://127.0.0.1:{port}"

        async def ready() -> bool:
            async with httpx.AsyncClient() as http:
                try:
                    return (await http.get(base + "/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

        await eventually(ready, timeout_s=60, interval_s=0.2, what="the workers ready")
        [(relay_pid, _)] = [(pid, cmd) for pid, cmd in _children(supervisor.pid) if "--relay" in cmd]
        workers = [pid for pid, cmd in _children(supervisor.pid) if "--worker" in cmd]
        assert len(workers) == 2

        async def both_ready() -> bool:  # one /readyz answered: the other worker may still be starting
            async with httpx.AsyncClient() as http:
                answers = [(await http.get(base + "/readyz")).status_code for _ in range(20)]
            return answers == [200] * 20

        await eventually(both_ready, timeout_s=60, interval_s=0.2, what="both workers ready")
        clients.extend([await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) for _ in range(CLIENTS)])

        now = int(time.time() * 1000)
        first = _position("courier-relayed", 12.9716, now)
        await asyncio.gather(
            *await producer.send_many(settings.positions_topic, [OutRecord(msgspec.json.encode(first), b"x")])
        )
        await _until_seen(clients, "courier-relayed", 12.9716)

        os.kill(relay_pid, signal.SIGKILL)
        # while the relay is down, a position reaches Redis (as a validator writes it) but not the workers
        seeded = _position("courier-from-redis", 12.95, now + 1)
        fix = (seeded.id, seeded.ts, seeded.lat, seeded.lon, msgspec.json.encode(seeded).decode())
        await store.apply("t", [Slice(store.partition_of(seeded.id), -1, 0, 0, [fix], [], {"accepted": 1})])

        def restarted() -> int | None:
            relays = [pid for pid, cmd in _children(supervisor.pid) if "--relay" in cmd and pid != relay_pid]
            return relays[0] if relays else None

        await eventually(restarted, timeout_s=30, interval_s=0.2, what="the relay restarted")
        # the workers reconnect (a reload from Redis each) once the relay serves again: then a new position flows
        await _until_seen(clients, "courier-from-redis", 12.95, timeout_s=40)
        later = _position("courier-relayed", 12.9816, now + 2)

        async def flowing() -> bool:  # produced until the restarted relay has its offsets and passes it on
            await asyncio.gather(
                *await producer.send_many(settings.positions_topic, [OutRecord(msgspec.json.encode(later), b"x")])
            )
            try:
                await _until_seen(clients, "courier-relayed", 12.9816, timeout_s=2)
            except TimeoutError:
                return False
            return True

        await eventually(flowing, timeout_s=40, interval_s=0.1, what="positions relayed after the restart")
        async with httpx.AsyncClient() as http:  # whichever worker answers reconnected once, with a reload
            metrics = (await http.get(base + "/metrics")).text
        assert "tracker_relay_reconnects_total 1.0" in metrics.splitlines()
        assert supervisor.poll() is None and all(_alive(pid) for pid in workers)
    finally:
        for ws in clients:
            await ws.close()
        stop_process(supervisor, timeout_s=20)  # SIGTERM: the supervisor stops the relay and the workers
        log.close()
    text = (tmp_path / "gateway.log").read_text()
    assert "gateway relay" in text and "restarting" in text  # the supervisor said what it did
    assert supervisor.returncode == 0, text[-3000:]


async def _ends(reader: asyncio.StreamReader) -> bool:
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    return True


async def test_the_relay_drops_a_worker_that_does_not_read_and_keeps_serving_the_others(settings, producer, tmp_path):
    path = str(tmp_path / "relay.sock")
    relay_settings = settings.replace(relay_buffer_bytes=65536)
    ready = asyncio.Event()
    relay = asyncio.create_task(serve(relay_settings, path, ready))
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(1)

    reading = RelayConsumer(path, settings.positions_topic, reload, connect_timeout_s=30)
    try:
        await asyncio.wait_for(ready.wait(), 30)
        await reading.start()
        stuck_reader, stuck = await asyncio.open_unix_connection(path)  # connected, never reads
        stuck.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        now = int(time.time() * 1000)
        value = msgspec.json.encode(_position("courier-bulk", 12.9716, now)) + b" " * 900  # ~1 kB records
        seen = 0
        for round_number in range(20):  # ~2 MB in all: far past 64 kB and the stuck socket's buffers
            records = [OutRecord(value, b"k")] * 100
            await asyncio.gather(*await producer.send_many(settings.positions_topic, records))
            while seen < 100 * (round_number + 1):
                polled = await reading.poll(timeout_ms=5000, max_records=1000)
                assert polled, "the reading worker stopped getting records"
                seen += sum(len(records) for records in polled.values())
        assert seen == 2000 and reloads == []  # every record, in one connection
        # the stuck worker was dropped: what it can still read ends (a reset, or the end of the stream), where a
        # connection still served would block once drained
        assert await asyncio.wait_for(_ends(stuck_reader), 10)
        # the relay reads no value: whatever a record holds reaches the worker as it is (the worker's reader is
        # total, as a gateway's: read_position), and the relay keeps serving
        hostile = [
            None,  # a tombstone
            b'{"id":"x","lat":' + b"9" * 400 + b"}",
            b"[" * 2000 + b"]" * 2000,
            b'{"id":"\\ud800"}',
            b"\x00\xff\x1b[31m",
            b"{" + b" " * ((1 << 20) - 2048) + b"}",  # ~1 MiB, under the broker's limit
        ]
        await asyncio.gather(*await producer.send_many(settings.positions_topic, [OutRecord(v, b"h") for v in hostile]))
        got: list[bytes | None] = []
        while len(got) < len(hostile):
            polled = await reading.poll(timeout_ms=5000)
            assert polled, "the relay stopped passing records on"
            got += [record.value for records in polled.values() for record in records]
        assert got == hostile and not relay.done()
    finally:
        await reading.stop()
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
