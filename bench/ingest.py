"""What one ``tracker ingest`` process takes, against the same app that does not produce, in the same run.

Two workloads, each over keep-alive HTTP/1.1 connections with one request in flight per connection (a phone
waits for its answer): *single fixes*, the OsmAnd GET Traccar Client and OsmAnd send, token in the URL; and
*batches*, a POST of 100 native pings to ``/v1/pings`` with a Bearer token. Each connection is its own
registered courier (token auth, as deployed).

Contenders:

* the ingest: ``tracker ingest`` itself, producing to the broker; a 2xx means the broker acknowledged.
* the baseline: the same app built by the same code (``create_app``, the same uvicorn settings), with the
  batcher swapped for one that answers at once without producing (:class:`NoProduceBatcher`). Everything else
  is as in the ingest: auth, parsing, the record's encoding, metrics. So ingest / baseline is the share of
  the app's own speed that producing (and waiting for the broker's acks) leaves.

Both run with the per-device rate limit set out of the way (TRACKER_INGEST_DEVICE_RATE/BURST 10**6): the
limiter still runs, but a benchmark of a hundred couriers posting thousands of fixes a second is not what it
is for. The load comes from :data:`CLIENT_PROCESSES` processes of a minimal HTTP/1.1 client on raw asyncio
(uvloop) sockets with pre-encoded requests, so that the client costs far less than the server; its CPU is
measured over the same window as the server's and shown beside it.

``python -m bench.ingest serve-baseline`` runs the baseline server; ``python -m bench.ingest load ...`` one
load client (both are started by :func:`run`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import json
import math
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from bench.common import cpu_seconds, machine, progress, reproduce
from tracker.ingest.batcher import Batcher
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port, spawn, stop_process
from tracker.settings import Settings
from tracker.up import child_env

CLIENT_PROCESSES = 2
# Connections (couriers) per workload. Each waits for the broker's ack (a few ms on a quiet machine), so 128
# keep the ingest busy; more only stretch its event loop's turns (BENCHMARKS.md, the ingest's notes).
SINGLE_CONNECTIONS = 128
BATCH_CONNECTIONS = 128
BATCH_PINGS = 100
WARMUP_S = 2.0
START_TIMEOUT_S = 30.0
# The targets (the issue's): single fixes at >= 60 % of the baseline's requests/s; batches >= 50,000 pings/s.
SINGLE_TARGET = 0.60
BATCH_TARGET_PINGS_S = 50_000
OUT_OF_THE_WAY = 10**6  # the per-device rate limit and burst while benchmarking
LAT, LON = 12.9716, 77.5946

WORKLOADS = (("single OsmAnd fixes", 1), (f"native batches of {BATCH_PINGS}", BATCH_PINGS))
CONNECTIONS = {1: SINGLE_CONNECTIONS, BATCH_PINGS: BATCH_CONNECTIONS}


# -- the baseline server --------------------------------------------------------------------------------------


class NoProduceBatcher(Batcher):
    """The batcher with producing taken out: every request is answered as if the broker had acknowledged."""

    async def produce(self, records: Any, timeout_s: float) -> None:
        return None


def serve_baseline() -> None:
    """The ingest's app and uvicorn settings (tracker/cli.py, ``run_ingest``), with :class:`NoProduceBatcher`."""
    import uvicorn

    from tracker.cli import _freeze_startup_objects
    from tracker.ingest.app import Ingest, create_app

    settings = Settings.from_env()

    class NoProduceIngest(Ingest):
        async def start(self) -> None:
            await super().start()
            assert self.producer is not None and self.batcher is not None  # started just now
            await self.batcher.stop()
            self.batcher = NoProduceBatcher(self.producer, settings.location_topic, self.metrics)
            await self.batcher.start()

    app = create_app(settings, NoProduceIngest(settings))
    _freeze_startup_objects()
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


# -- the load client ------------------------------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """Sends its one request, reads the answer (status line, headers, Content-Length body), sends it again."""

    def __init__(self, request: bytes, load: _Load) -> None:
        self.request = request
        self.load = load
        self.answered = 0  # in the window
        load.connections.append(self)
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one, without the class
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        if self.load.done:
            self.transport.close()
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                line_end = head.find(b"\r\n", at)
                length = int(head[at + 15 : line_end if line_end >= 0 else len(head)])
            if len(self.buffer) < end + 4 + length:
                return
            status = int(head[9:12])
            del self.buffer[: end + 4 + length]
            if self.load.measuring:
                self.answered += 1
            self.load.answered(status, time.perf_counter() - self.sent_at)
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.load.done:
            self.load.lost += 1


class _Load:
    def __init__(self, start_at: float, end_at: float) -> None:
        self.start_at, self.end_at = start_at, end_at
        self.measuring = False
        self.done = False
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.lost = 0
        self.cpu = [0.0, 0.0]
        self.connections: list[_Connection] = []

    def answered(self, status: int, seconds: float) -> None:
        if self.measuring:
            self.statuses[status] += 1
            self.latencies.append(seconds)


async def _load(port: int, requests: list[bytes], start_at: float, end_at: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = _Load(start_at, end_at)
    offset = loop.time() - time.time()  # wall clock -> loop clock

    def begin() -> None:
        load.measuring, load.cpu[0] = True, time.process_time()

    def end() -> None:
        load.measuring, load.done, load.cpu[1] = False, True, time.process_time()

    loop.call_at(start_at + offset, begin)
    loop.call_at(end_at + offset, end)
    for request in requests:
        await loop.create_connection(functools.partial(_Connection, request, load), "127.0.0.1", port)
    await asyncio.sleep(max(0.0, end_at - time.time()) + 0.2)
    return {
        "statuses": {str(status): count for status, count in load.statuses.items()},
        "cpu_s": load.cpu[1] - load.cpu[0],
        "latencies_ms": [round(1000 * seconds, 1) for seconds in load.latencies],
        "unanswered": sum(1 for connection in load.connections if not connection.answered),
        "lost": load.lost,
    }


def run_load(args: argparse.Namespace) -> None:
    import uvloop

    requests = [base64.b64decode(line) for line in Path(args.requests).read_text().split()]
    result = uvloop.run(_load(args.port, requests, args.start_at, args.end_at))
    print(json.dumps(result), flush=True)


# -- requests -------------------------------------------------------------------------------------------------


def osmand_request(courier: str, token: str, ts_ms: int) -> bytes:
    """Traccar Client's request (before 9; the token in the server URL it was given)."""
    query = (
        f"token={token}&id={courier}&timestamp={ts_ms // 1000}&lat={LAT}&lon={LON}&speed=10.0&bearing=90.0"
        "&altitude=912.0&accuracy=6.0&batt=81.0"
    )
    return f"GET /?{query} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n".encode()


def native_request(token: str, ts_ms: int, count: int) -> bytes:
    pings = [
        {"lat": LAT + i * 1e-5, "lon": LON, "ts": ts_ms + i * 1000, "speed": 6.5, "heading": 87.0, "accuracy": 8.0}
        for i in range(count)
    ]
    body = json.dumps(pings, separators=(",", ":")).encode()
    head = (
        f"POST /v1/pings HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# -- the run --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _server(argv: list[str], settings: Settings, log: Path) -> Iterator[subprocess.Popen]:
    process = spawn(argv, log, env=child_env(settings))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        url = f"http://127.0.0.1:{settings.ingest_port}/readyz"
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(argv[:3])} exited {process.returncode}: {log.read_text()[-1500:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(argv[:3])} not ready within {START_TIMEOUT_S:g} s")
            time.sleep(0.2)
        yield process
    finally:
        stop_process(process)


def _measure(
    server_pid: int, fixed_pids: dict[str, int], port: int, requests: list[bytes], window_s: float, workdir: Path
) -> dict[str, Any]:
    """Load ``port`` with ``requests`` (one connection each, split over the client processes) for ``window_s``
    after the warm-up: answers, latency, and CPU of server, clients and the fixed processes over the window."""
    metrics_before = _scrape(port)  # idle: the means below then cover the warm-up and the window
    start_at = time.time() + WARMUP_S + 0.5
    end_at = start_at + window_s
    clients = []
    for index in range(CLIENT_PROCESSES):
        path = workdir / f"requests-{index}.txt"
        path.write_text("\n".join(base64.b64encode(r).decode() for r in requests[index::CLIENT_PROCESSES]))
        argv = [sys.executable, "-m", "bench.ingest", "load", "--port", str(port), "--requests", str(path)]
        argv += ["--start-at", repr(start_at), "--end-at", repr(end_at)]
        clients.append(subprocess.Popen(argv, stdout=subprocess.PIPE))
    pids = {"ingest": server_pid, **fixed_pids}
    time.sleep(max(0.0, start_at - time.time()))
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(max(0.0, end_at - time.time()))
    cpu = {name: (cpu_seconds(pid) - before[name]) / window_s for name, pid in pids.items()}
    results = []
    for client in clients:
        out, _ = client.communicate(timeout=60)
        if client.returncode != 0:
            raise RuntimeError(f"load client exited {client.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    metrics = {name: value - metrics_before.get(name, 0.0) for name, value in _scrape(port).items()}
    statuses: Counter[str] = Counter()
    for result in results:
        statuses.update(result["statuses"])
    latencies = sorted(latency for result in results for latency in result["latencies_ms"])

    def quantile(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else math.nan

    ok = sum(count for status, count in statuses.items() if status.startswith("2"))
    if not ok:
        raise RuntimeError(f"no request was answered 2xx in the window (answers: {dict(statuses) or 'none'})")
    return {
        "requests_s": ok / window_s,
        "other": {status: count for status, count in statuses.items() if not status.startswith("2")},
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "unanswered": sum(result["unanswered"] for result in results),
        "cpu": cpu,
        "client_cpu": sum(result["cpu_s"] for result in results) / window_s,
        "lost": sum(result["lost"] for result in results),
        "pings_per_flush": _mean(metrics, "tracker_ingest_produce_batch_pings"),
        "produce_ms": 1000 * _mean(metrics, "tracker_ingest_produce_seconds"),
    }


# The ingest's own metrics (tracker/ingest/metrics.py) that say how its batcher fared in the window.
_SCRAPED = (
    "tracker_ingest_produce_batch_pings_sum",
    "tracker_ingest_produce_batch_pings_count",
    "tracker_ingest_produce_seconds_sum",
    "tracker_ingest_produce_seconds_count",
)


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in _SCRAPED:
            values[name] = float(value)
    return values


def _mean(metrics: dict[str, float], histogram: str) -> float:
    count = metrics.get(f"{histogram}_count", 0.0)
    return metrics.get(f"{histogram}_sum", 0.0) / count if count else math.nan


async def _register(settings: Settings, count: int) -> dict[str, str]:
    from tracker.ingest import devices
    from tracker.store import Store

    await ensure_topics(settings)
    async with Store(settings) as store:
        return {f"bench-{n:04d}": await devices.add(store, f"bench-{n:04d}") for n in range(count)}


def run(settings: Settings, broker: str, fixed_pids: dict[str, int], window_s: float) -> str:
    """Both servers up at once; each workload measured on the baseline and then on the ingest, back to back,
    so that what else the machine is doing weighs on both alike."""
    settings = settings.replace(
        namespace="bench-ingest.",
        ingest_auth="token",
        ingest_device_rate=float(OUT_OF_THE_WAY),
        ingest_device_burst=OUT_OF_THE_WAY,
    )
    tokens = asyncio.run(_register(settings, max(CONNECTIONS.values())))
    now_ms = time.time_ns() // 1_000_000
    couriers = list(tokens.items())
    loads = {
        1: [osmand_request(courier, token, now_ms) for courier, token in couriers[:SINGLE_CONNECTIONS]],
        BATCH_PINGS: [native_request(token, now_ms, BATCH_PINGS) for _, token in couriers[:BATCH_CONNECTIONS]],
    }
    contenders = (
        ("baseline: the same app, not producing", [sys.executable, "-m", "bench.ingest", "serve-baseline"]),
        ("`tracker ingest`", [sys.executable, "-m", "tracker", "ingest"]),
    )
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, contextlib.ExitStack() as servers:
        workdir = Path(tmp)
        running = [
            (label, servers.enter_context(_server(argv, port_settings, workdir / f"{argv[-1]}.log")), port_settings)
            for label, argv in contenders
            for port_settings in (settings.replace(ingest_port=free_port()),)
        ]
        for name, pings in WORKLOADS:
            for label, server, port_settings in running:
                progress(f"ingest: {label}, {name}, {len(loads[pings])} connections, {window_s:g} s")
                result = _measure(server.pid, fixed_pids, port_settings.ingest_port, loads[pings], window_s, workdir)
                results[(label, pings)] = result
                progress(
                    f"  {result['requests_s']:,.0f} requests/s, {result['requests_s'] * pings:,.0f} pings/s, "
                    f"p50 {result['p50_ms']:.1f} ms, ingest CPU {100 * result['cpu']['ingest']:.0f} %, "
                    f"clients {100 * result['client_cpu']:.0f} %, other answers {result['other'] or 'none'}, "
                    f"connections never answered {result['unanswered']}"
                )
    return _report(results, contenders, broker, fixed_pids, window_s)


def _report(
    results: dict[tuple[str, int], dict[str, Any]],
    contenders: tuple[tuple[str, list[str]], ...],
    broker: str,
    fixed_pids: dict[str, int],
    window_s: float,
) -> str:
    others = sorted(fixed_pids)
    lines = []
    for name, pings in WORKLOADS:
        for label, _ in contenders:
            result = results[(label, pings)]
            cpu = " | ".join(f"{100 * result['cpu'].get(other, 0):.0f} %" for other in others)
            answers = [f"{count:,} × {status}" for status, count in sorted(result["other"].items())]
            if result["unanswered"]:
                answers.append(f"{result['unanswered']} connections never answered")
            answers_text = ", ".join(answers) or "—"
            per_ping_us = 1e6 * result["cpu"]["ingest"] / max(result["requests_s"] * pings, 1e-9)
            lines.append(
                f"| {name} | {label} | {result['requests_s']:,.0f} | {result['requests_s'] * pings:,.0f} | "
                f"{result['p50_ms']:.1f} / {result['p99_ms']:.1f} | {100 * result['cpu']['ingest']:.0f} % | "
                f"{per_ping_us:,.1f} | {100 * result['client_cpu']:.0f} % | {cpu} | {answers_text} |"
            )
    baseline, ingest = (label for label, _ in contenders)

    def cpu_per_request(label: str, pings: int) -> float:
        return results[(label, pings)]["cpu"]["ingest"] / max(results[(label, pings)]["requests_s"], 1e-9)

    flushes = "\n".join(
        f"| {name} | {result['requests_s'] * pings / result['pings_per_flush']:,.0f} | "
        f"{result['pings_per_flush']:,.0f} | {result['produce_ms']:,.1f} |"
        for name, pings in WORKLOADS
        for result in (results[(ingest, pings)],)
    )
    single = results[(ingest, 1)]["requests_s"] / max(results[(baseline, 1)]["requests_s"], 1e-9)
    single_cpu = cpu_per_request(baseline, 1) / max(cpu_per_request(ingest, 1), 1e-12)
    batch_pings = results[(ingest, BATCH_PINGS)]["requests_s"] * BATCH_PINGS
    batch_ratio = batch_pings / max(results[(baseline, BATCH_PINGS)]["requests_s"] * BATCH_PINGS, 1e-9)
    batch_core = batch_pings / max(results[(ingest, BATCH_PINGS)]["cpu"]["ingest"], 1e-9)
    head = ["workload", "contender", "requests/s", "pings/s", "p50 / p99 (ms)", "ingest CPU", "ingest CPU µs / ping"]
    head += ["load clients CPU"]
    head += [f"{other} CPU" for other in others] + ["other answers"]
    table = "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *lines])
    single_met = "✅" if single >= SINGLE_TARGET else "❌"
    batch_met = "✅" if batch_pings >= BATCH_TARGET_PINGS_S else "❌"
    return f"""## Ingest: what one `tracker ingest` process takes

Keep-alive HTTP/1.1 connections, each a registered courier with its token, one request in flight per
connection; {WARMUP_S:g} s of warm-up, then {window_s:g} s measured. *Single fixes*: the OsmAnd GET Traccar
Client sends, token in the URL, over {SINGLE_CONNECTIONS} connections. *Batches*: POST `/v1/pings` with
{BATCH_PINGS} pings, Bearer token, over {BATCH_CONNECTIONS} connections.
Baseline, in the same run: the same app built by the same code (`create_app`, the same uvicorn settings) with
the batcher swapped for one that answers at once without producing (`bench/ingest.py`, `NoProduceBatcher`);
auth, parsing and encoding are as in the ingest. Both are up for the whole run, and each workload is measured
on the baseline and then on the ingest, back to back. The per-device rate limit is set out of the way.
Load: {CLIENT_PROCESSES} processes of a raw asyncio HTTP/1.1 client (uvloop, pre-encoded requests); CPU is
% of one core over the window, read from `/proc`. Everything runs on this machine, broker included.

{table}

The ingest's batcher (its `/metrics`, over the warm-up and the window): produce calls per second (pings/s ÷
pings per call), pings per call, and the mean wait from a request's pings being queued to the broker's ack.

| workload | produce calls/s | pings per call | mean queued → acked (ms) |
|---|---|---|---|
{flushes}

**Single fixes**: ingest / baseline = **{single:.2f}** (target ≥ {SINGLE_TARGET:.2f}: {single_met}); by CPU per
request, which does not depend on how much of a core each got, {single_cpu:.2f}.
**Batches**: **{batch_pings:,.0f} pings/s** in one ingest process, {batch_ratio:.2f} of the baseline
(target ≥ {BATCH_TARGET_PINGS_S:,}: {batch_met}); at its CPU per ping, a whole core would take
{batch_core:,.0f} pings/s (the ingest had {100 * results[(ingest, BATCH_PINGS)]["cpu"]["ingest"]:.0f} % of one here).

Machine: {machine()}.
Broker: {broker}; Redis embedded; the ingest, the baseline and the load clients are child processes.
Reproduce: {reproduce(broker, f"--only ingest --ingest-window {window_s:g}")}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve-baseline", help="the baseline server (settings from the environment)")
    load = sub.add_parser("load", help="one load client; prints its counts as JSON")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--requests", required=True, help="file of base64 requests, one per connection")
    load.add_argument("--start-at", type=float, required=True, help="wall-clock time the window opens")
    load.add_argument("--end-at", type=float, required=True)
    args = parser.parse_args()
    if args.command == "serve-baseline":
        serve_baseline()
    else:
        run_load(args)


if __name__ == "__main__":
    main()
