"""Fan-out: many dispatchers' maps on one gateway (issue 15).

A gateway (``tracker gateway``, one process or ``--workers N``) is fed by a separate process that produces
positions straight to ``courier-positions``, the gateway's real input: every courier once a second, as the
validator would write them, without the validator (whose cost is measured by the throughput and latency
sections, and which runs elsewhere in a deployment). So the gateway pays what it pays in production for its
input (the Kafka fetch, decoding, the hub), and each of N gateway processes pays it again, as each reads every
record; the feeder and the broker share the machine and their CPU is shown.

WebSocket clients stand in for dispatchers' pages: most watch a city district (a box of about 5 x 4 km at a
random place in the service area, so no two share a box), some see everything, some follow one courier
outside their district. They run in one process of ``bench/loadclient`` (Go, built here on first use; see
:func:`load_client`), or, where no ``go`` is on PATH, in several processes of ``websockets`` asyncio clients
(uvloop): either reads each frame's head only (type and ``server_time_ms``) and decodes one frame in
:data:`FIX_SAMPLE` in full to time its fixes; their CPU over the window is shown, to show they are not the
bottleneck.

Reported per client kind: delta frames/s per client against the tick (the share of clients at >= 90 % of
it), frame age (receive time minus the frame's ``server_time_ms``), fix age (receive time minus each courier's
``ts``, which the feeder sets to its clock when producing: the age of what the dispatcher sees), bytes/s;
and the gateway's CPU and RSS.

Baseline, in the same run: :func:`serve_baseline`, the same uvicorn + Starlette WebSocket stack sending every
client, every tick, a pre-built frame of the size that kind of client got from the gateway, with no hub, no
Kafka: what pushing these bytes to these sockets costs in Python on this machine.

``python -m bench.fanout feed|load|serve-baseline ...`` are the child processes :func:`run` starts
(``bench/loadclient/loadclient`` has the same contract as ``load``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from bench.common import cpu_seconds, machine, progress, reproduce
from tracker.cli import gateway_server_config
from tracker.kafka import ensure_topics
from tracker.local.processes import die_with, free_port, popen, rss_bytes, spawn, stop_process
from tracker.models import OutRecord, Position
from tracker.settings import Settings
from tracker.up import child_env

# The service area's box (tracker/data/service_area.geojson) and a district: what a dispatcher's map shows
# of one part of the city (about 5.4 x 3.9 km; 3.6 % of the box).
AREA = (77.49, 12.86, 77.71, 13.08)  # west, south, east, north
DISTRICT = (0.05, 0.035)  # degrees of longitude, latitude
KINDS = ("district", "everything", "follow")
FIX_SAMPLE = 5  # one delta in this many is decoded in full to time its fixes
# The Go load client (bench/loadclient): one process, whose goroutines run on as many threads as there are
# cores (GOMAXPROCS): a second would split the same work and add its runtime's overhead.
GO_LOAD_PROCESSES = 1
GO_LOAD_DIR = Path(__file__).resolve().parent / "loadclient"
GO_FEEDER_DIR = Path(__file__).resolve().parent / "feeder"  # the feeder in Go (bench/feeder: see feeder())
PYTHON_FEEDER = "`bench.fanout feed` (Python)"  # the fallback's name in the report
PYTHON_LOAD_PROCESSES = 4  # the fallback's: one Python process has one core
CONNECTS_AT_ONCE = 8  # handshakes in flight per load process
START_TIMEOUT_S = 60.0
FRAME_TARGET = 0.90  # the issue's: every client keeps >= 90 % of the configured frame rate
AGE_SLACK_MS = 150  # and frame age p99 <= tick + 150 ms
FRESH_MS = 1000  # ours: and the fixes a frame carries are under a second old at p99 (the gateway keeps up)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the world -------------------------------------------------------------------------------------------------


def views(clients: int, seed: int = 15) -> list[dict[str, Any]]:
    """Each client's view: 94 % a district, 2 % everything (a wall screen: all 20,000 couriers' changes are
    3.4 MB/s), 4 % a district and a followed courier elsewhere."""
    rng = random.Random(seed)
    out = []
    for index in range(clients):
        kind = "everything" if index % 50 == 1 else "follow" if index % 50 in (2, 3) else "district"
        view: dict[str, Any] = {"kind": kind, "bbox": None, "follow": None}
        if kind != "everything":
            west = rng.uniform(AREA[0], AREA[2] - DISTRICT[0])
            south = rng.uniform(AREA[1], AREA[3] - DISTRICT[1])
            view["bbox"] = [
                round(west, 5),
                round(south, 5),
                round(west + DISTRICT[0], 5),
                round(south + DISTRICT[1], 5),
            ]
        if kind == "follow":
            view["follow"] = courier_id(rng.randrange(1000))
        out.append(view)
    return out


def courier_id(index: int) -> str:
    return f"fan-{index:05d}"


class Fleet:
    """``count`` couriers spread evenly over the service area's box, each driving straight at 3-12 m/s and
    turning back at the box's edge."""

    def __init__(self, count: int, seed: int = 15) -> None:
        rng = random.Random(seed)
        self.ids = [courier_id(i) for i in range(count)]
        self.keys = [partner_id.encode() for partner_id in self.ids]
        self.lon = [rng.uniform(AREA[0], AREA[2]) for _ in range(count)]
        self.lat = [rng.uniform(AREA[1], AREA[3]) for _ in range(count)]
        self.speed = [rng.uniform(3.0, 12.0) for _ in range(count)]
        self.heading = [rng.uniform(0.0, 360.0) for _ in range(count)]
        self.vehicle = [("bike", "scooter", "car", "walk")[i % 4] for i in range(count)]
        self.order = [f"order-{i:06d}" if i % 3 else None for i in range(count)]

    def step(self, index: int) -> None:
        """One second of driving."""
        metres = self.speed[index]
        heading = math.radians(self.heading[index])
        lat = self.lat[index] + metres * math.cos(heading) / 111_320
        lon = self.lon[index] + metres * math.sin(heading) / 109_000
        if not (AREA[0] < lon < AREA[2] and AREA[1] < lat < AREA[3]):
            self.heading[index] = (self.heading[index] + 180.0) % 360.0
            return
        self.lat[index], self.lon[index] = lat, lon

    def position(self, index: int, ts: int) -> Position:
        return Position(
            self.ids[index],
            round(self.lat[index], 6),
            round(self.lon[index], 6),
            ts,
            ts,
            round(self.speed[index], 1),
            round(self.heading[index], 1),
            5.0,
            self.vehicle[index],
            self.order[index],
        )


# -- the feeder ------------------------------------------------------------------------------------------------


async def _feed(settings: Settings, couriers: int, step_s: float = 0.02) -> dict[str, Any]:
    """Every courier once a second, in steps of ``step_s``, to ``courier-positions`` until SIGTERM; then its
    counts as JSON."""
    import signal

    from tracker.kafka import Producer

    fleet = Fleet(couriers)
    encode = msgspec.json.Encoder().encode
    per_step = max(1, round(couriers * step_s))
    sent = late = 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with Producer(settings, linger_ms=5) as producer:
        started = loop.time()
        pending: list[asyncio.Future] = []
        cursor = 0
        step = 0
        while not stop.is_set():
            ts = now_ms()
            batch = []
            for _ in range(per_step):
                index = cursor % couriers
                fleet.step(index)
                batch.append(OutRecord(value=encode(fleet.position(index, ts)), key=fleet.keys[index]))
                cursor += 1
            pending += await producer.send_many(settings.positions_topic, batch)
            sent += len(batch)
            step += 1
            if len(pending) > 1000:
                await asyncio.gather(*pending)
                pending = []
            wait = started + step * step_s - loop.time()
            late += wait < -step_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, wait))
        await asyncio.gather(*pending)
    return {"sent": sent, "seconds": loop.time() - started, "late_steps": late, "steps": step}


def run_feed(couriers: int) -> None:
    import uvloop

    print(json.dumps(uvloop.run(_feed(Settings.from_env(), couriers))), flush=True)


# -- the load client -------------------------------------------------------------------------------------------


class _TsOnly(msgspec.Struct):
    ts: int


class _Fixes(msgspec.Struct):
    couriers: list[_TsOnly] = []


class _Watch:
    """One client's counts within the window."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.deltas = 0
        self.bytes = 0
        self.snapshots = 0
        self.closed: int | None = None
        self.ready = False  # connected, and a delta of its view arrived


def _server_time(raw: bytes) -> int | None:
    at = raw.find(b'"server_time_ms":', 0, 80)
    if at < 0:
        return None
    at += 17
    end = raw.find(b",", at, at + 20)
    return int(raw[at:end]) if end > 0 else None


async def _watch(
    url: str,
    view: dict[str, Any],
    watch: _Watch,
    window: list[bool],
    frame_ages: Counter[int],
    fix_ages: Counter[int],
    gate: asyncio.Semaphore,
    done: asyncio.Event,
    fix_sample: int = FIX_SAMPLE,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    decode_fixes = msgspec.json.Decoder(_Fixes).decode
    async with gate:
        ws = await connect(url, max_size=None, compression=None, open_timeout=120, ping_interval=None, max_queue=64)
        if view["bbox"] is not None:
            await ws.send(json.dumps({"type": "viewport", "bbox": view["bbox"]}))
        if view["follow"] is not None:
            await ws.send(json.dumps({"type": "follow", "partner_id": view["follow"]}))
    deltas_seen = 0
    try:
        while not done.is_set():
            raw = await ws.recv(decode=False)
            if not window[0]:
                watch.ready = watch.ready or raw.startswith(b'{"type":"delta"')
                continue
            at = now_ms()
            watch.bytes += len(raw)
            if raw.startswith(b'{"type":"delta"'):
                watch.deltas += 1
                deltas_seen += 1
                sent_at = _server_time(raw)
                if sent_at is not None:
                    frame_ages[at - sent_at] += 1
                if deltas_seen % fix_sample == 0:
                    for courier in decode_fixes(raw).couriers:
                        fix_ages[at - courier.ts] += 1
            elif raw.startswith(b'{"type":"snapshot"'):
                watch.snapshots += 1
    except ConnectionClosed as closed:
        if not done.is_set():
            watch.closed = closed.rcvd.code if closed.rcvd is not None else 1006
    finally:
        with contextlib.suppress(Exception):
            ws.transport.abort()


async def _load(
    url: str, specs: list[dict[str, Any]], fix_sample: int = FIX_SAMPLE, connects_at_once: int = CONNECTS_AT_ONCE
) -> dict[str, Any]:
    """Connect every client, say "ready" on stdout once each has had a delta of its view, then read the
    window (wall-clock start and end) from stdin and count what arrives within it. (bench/loadclient/main.go
    does the same in Go: a change here is a change there.)"""
    loop = asyncio.get_running_loop()
    window = [False]
    cpu = [0.0, 0.0]
    done = asyncio.Event()
    frame_ages: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    fix_ages: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    watches = [_Watch(spec["kind"]) for spec in specs]
    gate = asyncio.Semaphore(connects_at_once)
    tasks = [
        asyncio.create_task(
            _watch(url, spec, watch, window, frame_ages[spec["kind"]], fix_ages[spec["kind"]], gate, done, fix_sample)
        )
        for spec, watch in zip(specs, watches, strict=True)
    ]
    while not all(watch.ready for watch in watches):
        if any(task.done() for task in tasks):
            break  # a client that failed to connect: reported below
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    start_at, end_at = (float(value) for value in (await loop.run_in_executor(None, sys.stdin.readline)).split())
    offset = loop.time() - time.time()

    def begin() -> None:
        window[0], cpu[0] = True, time.process_time()

    def end() -> None:
        window[0], cpu[1] = False, time.process_time()
        done.set()

    loop.call_at(start_at + offset, begin)
    loop.call_at(end_at + offset, end)
    await done.wait()
    for task in tasks:
        task.cancel()
    failed = []
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception as exc:  # noqa: BLE001 - a connection that failed counts as failed
                failed.append(repr(exc)[:200])
    return {
        "clients": [
            {"kind": w.kind, "deltas": w.deltas, "bytes": w.bytes, "closed": w.closed, "ready": w.ready}
            for w in watches
        ],
        "frame_ages": {kind: dict(ages) for kind, ages in frame_ages.items()},
        "fix_ages": {kind: dict(ages) for kind, ages in fix_ages.items()},
        "cpu_s": cpu[1] - cpu[0],
        "failed": failed,
    }


def run_load(
    url: str, specs_path: str, out_path: str, fix_sample: int = FIX_SAMPLE, connects_at_once: int = CONNECTS_AT_ONCE
) -> None:
    import uvloop

    specs = json.loads(Path(specs_path).read_text())
    # a file, not stdout: a pipe the event loop has made non-blocking would cut a long line at 64 KiB
    Path(out_path).write_text(json.dumps(uvloop.run(_load(url, specs, fix_sample, connects_at_once))))


@dataclass(frozen=True)
class LoadClient:
    """How the load processes are started: ``argv`` then ``--url``, ``--views``, ``--out``, ``--fix-sample``
    and ``--connects-at-once``; ``processes`` of them share the clients; ``text`` names it in the report."""

    argv: tuple[str, ...]
    processes: int
    text: str


PYTHON_LOAD = LoadClient(
    (sys.executable, "-m", "bench.fanout", "load"),
    PYTHON_LOAD_PROCESSES,
    f"{PYTHON_LOAD_PROCESSES} processes of `websockets` asyncio clients (uvloop; `python -m bench.fanout load`, "
    "the fallback where no `go` is on PATH) reading each frame's head",
)


@cache
def _go_build(directory: Path, name: str) -> str | None:
    """``go build`` the program in ``directory`` (once per run: the module and build caches make a rebuild
    cheap) into ``directory/name`` (ignored by git); None where no ``go`` is on PATH. A Go that fails to build is
    an error, not a reason to measure with the costlier Python stand-in."""
    go = shutil.which("go")
    if go is None:
        return None
    binary = directory / name
    built = subprocess.run(
        [go, "build", "-o", str(binary), "."], cwd=directory, capture_output=True, text=True, timeout=600, check=False
    )
    if built.returncode != 0:
        raise RuntimeError(f"go build in {directory} failed: {(built.stdout + built.stderr)[-1500:]}")
    return str(binary)


def load_client() -> LoadClient:
    """The Go load client, or the Python one where no ``go`` is on PATH."""
    binary = _go_build(GO_LOAD_DIR, "loadclient")
    if binary is None:
        progress("fanout: no `go` on PATH: the Python load client (costlier in CPU, on the cores it measures)")
        return PYTHON_LOAD
    processes = GO_LOAD_PROCESSES
    text = (
        f"{processes} process{'es' if processes > 1 else ''} of `bench/loadclient` (Go, gorilla/websocket, a "
        f"goroutine per client on up to {os.cpu_count()} threads; its CPU counts them all) reading each frame's head"
    )
    return LoadClient((binary,), processes, text)


def feeder(couriers: int) -> tuple[list[str], str]:
    """The feeder's command and its name in the report: ``bench/feeder`` (Go, franz-go: the same fleet, the
    same positions, the same contract as ``feed``, for a fraction of its CPU), or ``feed`` where no ``go`` is
    on PATH. Its settings come from the environment, as ``feed``'s do."""
    binary = _go_build(GO_FEEDER_DIR, "feeder")
    if binary is None:
        progress("fanout: no `go` on PATH: the Python feeder (costlier in CPU, on the cores it measures)")
        python = [sys.executable, "-m", "bench.fanout", "feed", "--couriers", str(couriers)]
        return python, PYTHON_FEEDER
    return [binary, "--couriers", str(couriers)], "`bench/feeder` (Go, franz-go)"


# -- the baseline server ---------------------------------------------------------------------------------------


def serve_baseline(port: int, tick_ms: int, sizes: dict[str, int]) -> None:
    """The gateway's WebSocket stack (Starlette on uvicorn, the same uvicorn settings as ``tracker gateway``)
    sending each client, every tick, a pre-built delta of ``sizes[kind]`` bytes stamped with the tick's time."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    fragment = (
        '{"id":"fan-00000","lat":12.971234,"lon":77.594321,"ts":1795000000000,"speed":5.5,"heading":87.5,'
        '"vehicle":"scooter","status":"online","order_id":"order-000001"}'
    )
    bodies = {kind: ",".join([fragment] * max(1, size // (len(fragment) + 1))) for kind, size in sizes.items()}

    class Tick:
        seq = 0
        at = now_ms()
        event = asyncio.Event()

    async def ticker() -> None:  # on a fixed cadence, as the gateway's
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += tick_ms / 1000
            await asyncio.sleep(max(0.0, due - loop.time()))
            event, Tick.event = Tick.event, asyncio.Event()
            Tick.seq, Tick.at = Tick.seq + 1, now_ms()
            event.set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        kind = ["everything"]

        async def read() -> None:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                sent = json.loads(message.get("text") or "{}")
                if sent.get("type") == "follow":
                    kind[0] = "follow"
                elif sent.get("type") == "viewport" and sent.get("bbox") is not None and kind[0] != "follow":
                    kind[0] = "district"

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                await Tick.event.wait()
                body = bodies.get(kind[0], bodies["district"])
                async with asyncio.timeout(10):  # as tracker/ws.py sends
                    await websocket.send_text(
                        f'{{"type":"delta","seq":{Tick.seq},"server_time_ms":{Tick.at},"couriers":[{body}],'
                        '"removed":[]}'
                    )
        except Exception:  # noqa: BLE001 - the client left
            pass
        finally:
            reader.cancel()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(ticker())
        yield
        task.cancel()

    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)
    settings = Settings.from_env().replace(http_host="127.0.0.1", http_port=port)
    uvicorn.Server(gateway_server_config(app, settings)).run()


# -- the run ---------------------------------------------------------------------------------------------------


def _pids(root: int) -> list[int]:
    """``root`` and its children (the workers of ``tracker gateway --workers N``)."""
    pids = [root]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{root}/task"):
            with open(f"/proc/{root}/task/{task}/children") as children:
                pids += [int(pid) for pid in children.read().split()]
    return pids


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


def _waited(pids: list[int]) -> float:
    """Seconds ``pids`` have spent runnable but waiting for a core (/proc/PID/schedstat): how much other work on
    the machine held them back."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/schedstat") as stat:
            total += int(stat.read().split()[1]) / 1e9
    return total


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited {process.returncode}: {log.read_text()[-1500:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready within {START_TIMEOUT_S:g} s: {log.read_text()[-1500:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def _child(argv: list[str], env: dict[str, str], log: Path, ready_url: str | None = None) -> Iterator[subprocess.Popen]:
    process = spawn(argv, log, env=env)
    try:
        if ready_url is not None:
            _wait_ready(ready_url, process, log)
        yield process
    finally:
        stop_process(process, timeout_s=10)


def _measure(
    port: int,
    specs: list[dict[str, Any]],
    server_pid: int,
    others: dict[str, int],
    window_s: float,
    workdir: Path,
    client: LoadClient = PYTHON_LOAD,
) -> dict[str, Any]:
    """Connect ``specs`` over ``client``'s processes, wait for every one to have its view, then count
    ``window_s`` seconds of frames; CPU of the server (and its workers) and ``others`` over the window, the
    server's RSS at its end."""
    url = f"ws://127.0.0.1:{port}/ws"
    loads = []
    for index in range(client.processes):
        path = workdir / f"views-{index}.json"
        path.write_text(json.dumps(specs[index :: client.processes]))
        argv = [*client.argv, "--url", url, "--views", str(path), "--out", str(workdir / f"result-{index}.json")]
        argv += ["--fix-sample", str(FIX_SAMPLE), "--connects-at-once", str(CONNECTS_AT_ONCE)]
        loads.append(
            popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with(os.getpid()))
        )
    try:
        return {**_window(loads, server_pid, others, window_s, workdir), "load_client": client.text}
    finally:
        for load in loads:
            stop_process(load)


def _window(
    loads: list[subprocess.Popen], server_pid: int, others: dict[str, int], window_s: float, workdir: Path
) -> dict[str, Any]:
    connect_started = time.monotonic()
    for load in loads:
        assert load.stdout is not None
        line = load.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"a load process did not get ready (exit {load.poll()}): {line!r}")
    connect_s = time.monotonic() - connect_started
    start_at = time.time() + 3.0  # settle: the last snapshots go out
    end_at = start_at + window_s
    for load in loads:
        assert load.stdin is not None
        load.stdin.write(f"{start_at!r} {end_at!r}\n")
        load.stdin.flush()
    time.sleep(max(0.0, start_at - time.time()))
    pids = _pids(server_pid)
    before = {"server": _cpu(pids), **{name: _cpu([pid]) for name, pid in others.items()}}
    waited = _waited(pids)
    time.sleep(max(0.0, end_at - time.time()))
    cpu = {"server": _cpu(pids), **{name: _cpu([pid]) for name, pid in others.items()}}
    cpu = {name: (cpu[name] - before[name]) / window_s for name in cpu}
    waited = (_waited(pids) - waited) / window_s
    load_average = os.getloadavg()[0]
    rss = sum(rss_bytes(pid) or 0 for pid in pids)
    results = []
    for index, load in enumerate(loads):
        load.wait(timeout=120)
        if load.returncode != 0:
            raise RuntimeError(f"a load process exited {load.returncode}")
        results.append(json.loads((workdir / f"result-{index}.json").read_text()))
    frame_ages: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    fix_ages: dict[str, Counter[int]] = {kind: Counter() for kind in KINDS}
    for result in results:
        for kind in KINDS:
            frame_ages[kind].update({int(k): v for k, v in result["frame_ages"][kind].items()})
            fix_ages[kind].update({int(k): v for k, v in result["fix_ages"][kind].items()})
    return {
        "clients": [client for result in results for client in result["clients"]],
        "frame_ages": frame_ages,
        "fix_ages": fix_ages,
        "cpu": cpu,
        "client_cpu": [result["cpu_s"] / window_s for result in results],
        "failed": [failure for result in results for failure in result["failed"]],
        "rss_mib": rss / 2**20,
        "processes": len(pids) - (len(pids) > 1),  # workers, not their supervisor
        "waited": waited,
        "load": load_average,
        "connect_s": connect_s,
        "window_s": window_s,
    }


def _quantile(ages: Counter[int], q: float) -> float:
    total = sum(ages.values())
    if not total:
        return math.nan
    rank = q * (total - 1)
    seen = 0
    for age in sorted(ages):
        seen += ages[age]
        if seen > rank:
            return float(age)
    return float(max(ages))


def _summary(result: dict[str, Any], tick_ms: int) -> dict[str, dict[str, Any]]:
    """Per kind of client (and "all"): frames/s per client, the share at >= 90 % of the tick, ages, bytes/s."""
    rate = 1000 / tick_ms
    window = result["window_s"]
    out = {}
    for kind in (*KINDS, "all"):
        clients = [c for c in result["clients"] if kind in ("all", c["kind"])]
        if not clients:
            continue
        fps = sorted(c["deltas"] / window for c in clients)
        frame_ages: Counter[int] = Counter()
        fix_ages: Counter[int] = Counter()
        for one in KINDS if kind == "all" else (kind,):
            frame_ages.update(result["frame_ages"][one])
            fix_ages.update(result["fix_ages"][one])
        out[kind] = {
            "clients": len(clients),
            "fps_min": fps[0],
            "fps_p5": fps[int(0.05 * (len(fps) - 1))],
            "fps_median": statistics.median(fps),
            "held": sum(f >= FRAME_TARGET * rate for f in fps) / len(fps),
            "frame_p50": _quantile(frame_ages, 0.5),
            "frame_p99": _quantile(frame_ages, 0.99),
            "fix_p50": _quantile(fix_ages, 0.5),
            "fix_p99": _quantile(fix_ages, 0.99),
            "kb_s": statistics.mean(c["bytes"] for c in clients) / window / 1000,
            "mb_s_total": sum(c["bytes"] for c in clients) / window / 1e6,
            "frame_kb": sum(c["bytes"] for c in clients) / max(1, sum(c["deltas"] for c in clients)) / 1000,
            "closed": Counter(str(c["closed"]) for c in clients if c["closed"] is not None),
        }
    return out


def frame_sizes(clients: int, couriers: int, tick_ms: int) -> dict[str, int]:
    """Bytes of a delta per kind of client that keeps up: the bench's views and fleet, one tick of changes
    through a hub in this process (for the baseline, whatever the gateway under test managed)."""
    from tracker.hub import Hub

    fleet = Fleet(couriers)
    hub = Hub()
    start = now_ms()
    for index in range(couriers):
        hub.ingest(fleet.position(index, start), start)
    hub.tick()
    kinds = []
    for view in views(clients):
        client = hub.connect()
        if view["bbox"] is not None:
            hub.set_viewport(client, tuple(view["bbox"]))
        if view["follow"] is not None:
            hub.set_follow(client, view["follow"])
        client.next_frame()  # its snapshot
        kinds.append((view["kind"], client))
    changed = round(couriers * tick_ms / 1000)  # a ping a second each: this many in a tick
    for index in range(changed):
        fleet.step(index)
        hub.ingest(fleet.position(index, start + 1000), start)
    hub.tick()
    sizes: dict[str, list[int]] = {kind: [] for kind in KINDS}
    for kind, client in kinds:
        sizes[kind].append(len(client.next_frame() or ""))
    return {kind: round(statistics.mean(values)) for kind, values in sizes.items() if values}


def run(
    settings: Settings,
    broker: str,
    fixed_pids: dict[str, int],
    clients: int = 1000,
    couriers: int = 20_000,
    window_s: float = 20.0,
    workers: tuple[int, ...] = (1, 2),
    sweep: tuple[int, ...] = (),
    quick: bool = False,
    baseline: bool = True,
    title: str | None = None,
    only: str = "fanout",
) -> str:
    """Each gateway setup (1, 2, ... processes) with ``clients``, the baseline, then one process with each of
    ``sweep`` clients (the first of the same views), one after the other on the same feed."""
    port = free_port()
    most = max((clients, *sweep))
    settings = settings.replace(
        namespace="bench-fanout.", http_port=port, max_clients=most + 10, ws_max_per_address=most + 10
    )
    asyncio.run(ensure_topics(settings))
    specs = views(most)
    load = load_client()
    rows: list[tuple[str, int, dict[str, Any]]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        workdir = Path(tmp)
        env = child_env(settings, "gateway")
        feeder_argv, feeder_text = feeder(couriers)
        with _child(feeder_argv, env, workdir / "feeder.log") as feeding:
            others = {"feeder": feeding.pid, **fixed_pids}
            setups = [(count, clients) for count in workers] + [(1, n) for n in sweep]
            for index, (count, watching) in enumerate(setups):
                label = "`tracker gateway`" + (f" --workers {count}" if count > 1 else "")
                argv = [sys.executable, "-m", "tracker", "gateway"] + (["--workers", str(count)] if count > 1 else [])
                progress(f"fanout: {label}, {watching:,} clients, {couriers:,} couriers, {window_s:g} s")
                ready = f"http://127.0.0.1:{port}/readyz"
                with _child(argv, env, workdir / f"gateway-{index}.log", ready) as gateway:
                    time.sleep(2.0)  # the hub fills with every courier
                    result = _measure(port, specs[:watching], gateway.pid, others, window_s, workdir, load)
                rows.append((label, watching, result))
                _progress(result, settings.tick_ms)
                if index == len(workers) - 1 and baseline:
                    sizes = frame_sizes(clients, couriers, settings.tick_ms)
                    baseline_argv = [sys.executable, "-m", "bench.fanout", "serve-baseline", "--port", str(port)]
                    baseline_argv += ["--tick-ms", str(settings.tick_ms), "--sizes", json.dumps(sizes)]
                    progress(f"fanout: baseline, the same WebSocket stack sending pre-built frames of {sizes} bytes")
                    with _child(baseline_argv, env, workdir / "baseline.log") as server:
                        _wait_port(port)
                        result = _measure(port, specs[:clients], server.pid, others, window_s, workdir, load)
                    rows.append((BASELINE, clients, result))
                    _progress(result, settings.tick_ms)
    return _report(
        rows, settings.tick_ms, clients, couriers, window_s, broker, load_before, quick, title, only, feeder_text
    )


def run_doubling(
    settings: Settings, broker: str, fixed_pids: dict[str, int], clients: int, couriers: int, window_s: float
) -> str:
    """Issue 15's "two gateway processes serve twice the clients of one at the same frame rate", at a load
    whose two processes and load clients fit this machine's cores: one process with ``clients``, then two
    with twice as many, on the same feed (the sizing table compares them)."""
    report = run(
        settings,
        broker,
        fixed_pids,
        clients=2 * clients,
        couriers=couriers,
        window_s=window_s,
        workers=(2,),
        sweep=(clients,),
        baseline=False,
        title=f"Fan-out: two gateway processes, twice the clients ({couriers:,} couriers)",
        only=f"fanout-doubling --fanout-doubling-clients {clients} --fanout-doubling-couriers {couriers}",
    )
    return report


BASELINE = "baseline: pre-built frames, no hub"


def _wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def _progress(result: dict[str, Any], tick_ms: int) -> None:
    every = _summary(result, tick_ms)["all"]
    progress(
        f"  frames/s per client: min {every['fps_min']:.2f}, median {every['fps_median']:.2f} "
        f"(tick: {1000 / tick_ms:g}); {100 * every['held']:.0f} % of clients at >= 90 %; frame age p50 "
        f"{every['frame_p50']:.0f} / p99 {every['frame_p99']:.0f} ms; "
        f"server CPU {100 * result['cpu']['server']:.0f} %, "
        f"load clients {', '.join(f'{100 * c:.0f} %' for c in result['client_cpu'])}; connected in "
        f"{result['connect_s']:.0f} s; failed {len(result['failed'])}"
    )


def _per_frame_us(result: dict[str, Any]) -> float:
    """Server CPU per delta frame delivered (µs): what a client costs the gateway per frame."""
    frames = sum(client["deltas"] for client in result["clients"]) / result["window_s"]
    return 1e6 * result["cpu"]["server"] / max(frames, 1e-9)


def _report(
    rows: list[tuple[str, int, dict[str, Any]]],
    tick_ms: int,
    clients: int,
    couriers: int,
    window_s: float,
    broker: str,
    load_before: tuple[float, float, float],
    quick: bool,
    title: str | None = None,
    only: str = "fanout",
    feeder_text: str = PYTHON_FEEDER,
) -> str:
    rate = 1000 / tick_ms

    def met(summary: dict[str, Any]) -> str:
        """Issue 15's target: every client at >= 90 % of the frame rate, frame age p99 <= tick + slack."""
        return "✅" if summary["held"] == 1.0 and summary["frame_p99"] <= tick_ms + AGE_SLACK_MS else "❌"

    def fresh(summary: dict[str, Any], label: str) -> str:
        """Ours: fix age p99 <= FRESH_MS (the baseline's frames carry no real fixes)."""
        return "—" if label == BASELINE else "✅" if summary["fix_p99"] <= FRESH_MS else "❌"

    main, sizing = [], []
    for label, watching, result in rows:
        summary = _summary(result, tick_ms)
        every = summary["all"]
        server = (
            f"{100 * result['cpu']['server']:.0f} % ({result['processes']} proc.; waiting for a core "
            f"{100 * result['waited']:.0f} %), {result['rss_mib']:.0f} MiB"
        )
        fix = "—" if label == BASELINE else f"{every['fix_p50']:.0f} / {every['fix_p99']:.0f}"
        if label != BASELINE:
            sizing.append(
                f"| {watching:,} | {result['processes']} | {every['fps_min']:.2f} / {every['fps_median']:.2f} | "
                f"{100 * every['held']:.0f} % | {every['frame_p50']:.0f} / {every['frame_p99']:.0f} | {fix} | "
                f"{100 * result['cpu']['server']:.0f} % | {100 * result['waited']:.0f} % | {result['load']:.1f} | "
                f"{_per_frame_us(result):.0f} | {fresh(every, label)} | {met(every)} |"
            )
        if watching != clients:
            continue
        others = " / ".join(f"{100 * v:.0f} %" for k, v in result["cpu"].items() if k != "server")
        load = " + ".join(f"{100 * c:.0f}" for c in result["client_cpu"]) + f" % · {others}"
        for kind in (*KINDS, "all"):
            if kind not in summary:
                continue
            one = summary[kind]
            fix = "—" if label == BASELINE else f"{one['fix_p50']:.0f} / {one['fix_p99']:.0f}"
            closed = ", ".join(f"{n} × {code}" for code, n in one["closed"].items()) or "—"
            main.append(
                f"| {label if kind == KINDS[0] else ''} | {kind} ({one['clients']:,}) | {one['fps_min']:.2f} / "
                f"{one['fps_p5']:.2f} / {one['fps_median']:.2f} | {100 * one['held']:.0f} % | "
                f"{one['frame_p50']:.0f} / {one['frame_p99']:.0f} | {fix} | "
                f"{one['kb_s']:,.0f} ({one['frame_kb']:.1f}) | "
                f"{one['mb_s_total']:,.1f} | {server if kind == 'all' else ''} | {load if kind == 'all' else ''} | "
                f"{closed} | {fresh(one, label)} | {met(one)} |"
            )
    other_names = " / ".join(k for k in rows[0][2]["cpu"] if k != "server")
    columns = ["server", "clients", "frames/s min / p5 / median", "≥ 90 %", "frame age p50 / p99 (ms)"]
    columns += ["fix age p50 / p99 (ms)", "kB/s per client (kB/frame)", "MB/s all", "server CPU, RSS"]
    verdicts = [f"fix age p99 ≤ {FRESH_MS:,} ms (ours)", "target met (issue 15)"]
    columns += [f"load clients CPU · {other_names} CPU", "closed", *verdicts]
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    sizing_columns = ["clients", "processes", "frames/s min / median", "≥ 90 %", "frame age p50 / p99 (ms)"]
    sizing_columns += ["fix age p50 / p99 (ms)", "server CPU", "server waiting for a core", "load average"]
    sizing_columns += ["server CPU per frame (µs, all included)", *verdicts]
    sizing_head = "| " + " | ".join(sizing_columns) + " |\n|" + "---|" * len(sizing_columns)
    table, sizing_table = "\n".join(main), "\n".join(sizing)
    load_after = os.getloadavg()
    load_text = rows[0][2]["load_client"]
    title = title or ("Fan-out: 1,000 dispatchers" if not quick else "Fan-out (quick)")
    if any(label == BASELINE for label, _, _ in rows):
        baseline_text = (
            "Baseline, in the same run: the same uvicorn + Starlette WebSocket stack "
            "(`tracker.cli.gateway_server_config`)\nsending each client, every tick, a pre-built delta of the size "
            "that kind of client gets when it keeps up\n(`bench/fanout.py`, `serve_baseline`, `frame_sizes`): the "
            "cost of the bytes and sockets alone."
        )
    else:
        baseline_text = (
            "Baseline, in the same run: one gateway process with half the clients (the first of the same views),\n"
            "the second table's last row: the other rows must match its frame rate and its CPU per frame."
        )
    return f"""## {title}

{clients:,} WebSocket clients on loopback (94 % watching a district of about 5 x 4 km at a random place, 2 %
everything, 4 % a district and a courier elsewhere they follow) on a gateway with {couriers:,} couriers pinging
once a second (a feeder process, {feeder_text}, producing straight to `courier-positions`: the gateway's real
input, without the validator), tick {tick_ms} ms, so {rate:g} frames/s per client is the most there is.
{window_s:g} s measured once every client has its view. Per client: delta frames/s (min / p5 / median over the
clients), the share of clients at ≥ 90 % of {rate:g}/s; frame age = receive time − the frame's
`server_time_ms` (the time of the tick that cut it); fix age = receive time − each courier's `ts` (the
feeder's clock when it produced it: Kafka, the wait for the tick and the fan-out), one delta in {FIX_SAMPLE}
per client; kB/s per client (kB per delta). CPU in % of one core over the window, from `/proc`; "waiting for
a core": the time the server was ready to run but other work had the cores (`/proc/PID/schedstat`), in % of
the window. Target (issue 15): every client ≥ 90 %
of the frame rate, frame age p99 ≤ tick + {AGE_SLACK_MS} ms; and ours, since a gateway that falls behind its
input still sends frames on time, of old fixes: fix age p99 ≤ {FRESH_MS:,} ms (the last two columns, ours first).
{baseline_text}
Load: {load_text}.

{head}
{table}

How many clients one gateway process holds at {couriers:,} couriers (the first of the same views), and its CPU
per frame delivered:

{sizing_head}
{sizing_table}

Machine: {machine()}; load average before / after: {load_before[0]:.2f} / {load_after[0]:.2f} (1 min; other
work on this machine shares the cores). Broker: {broker}; feeder, gateway, baseline and load clients are
child processes, all on these cores.
Reproduce: {reproduce(broker, f"--only {only}" + (" --fanout-quick" if quick else ""))}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout")
    sub = parser.add_subparsers(dest="command", required=True)
    feed = sub.add_parser("feed", help="produce positions to courier-positions until SIGTERM (settings from env)")
    feed.add_argument("--couriers", type=int, required=True)
    load = sub.add_parser("load", help="one load process: ready on stdout, the window on stdin, counts to --out")
    load.add_argument("--url", required=True)
    load.add_argument("--views", required=True, help="JSON file of the clients' views")
    load.add_argument("--out", required=True, help="file for the counts (JSON)")
    load.add_argument("--fix-sample", type=int, default=FIX_SAMPLE, help="one delta in this many is decoded in full")
    load.add_argument("--connects-at-once", type=int, default=CONNECTS_AT_ONCE, help="handshakes in flight")
    baseline = sub.add_parser("serve-baseline", help="the baseline server")
    baseline.add_argument("--port", type=int, required=True)
    baseline.add_argument("--tick-ms", type=int, required=True)
    baseline.add_argument("--sizes", required=True, help='JSON: {"district": bytes, ...}')
    args = parser.parse_args()
    if args.command == "feed":
        run_feed(args.couriers)
    elif args.command == "load":
        run_load(args.url, args.views, args.out, args.fix_sample, args.connects_at_once)
    else:
        serve_baseline(args.port, args.tick_ms, json.loads(args.sizes))


if __name__ == "__main__":
    main()
