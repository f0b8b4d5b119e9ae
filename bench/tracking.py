"""Tracking links: customers' sockets on one gateway process (issue 16), beside the dispatchers' load.

``sockets`` customers each watch one order's courier over ``/ws/track/<token>``, ``sockets / couriers`` per
courier (each customer has their own order), while the feeder of bench/fanout.py makes every courier ping once
a second straight to ``courier-positions`` and ``dispatchers`` clients of bench/fanout.py's load (district views
and the rest) watch the map on the same gateway. The orders and their links are made in Redis before the
gateway starts (tracker/orders/service.py, as POST /api/orders does).

Reported: per socket, courier frames/s against the courier's ping rate (the feeder's, measured) and the share
of sockets at >= 90 % of it; update age = receive time - the frame's ``server_ts`` (p50 / p99); fix age =
receive time - the fix's ``ts``; the gateway's CPU and RSS, per socket; the load clients' own CPU. Baseline, in
the same run: the same number of tracking sockets on the same gateway with no positions flowing (idle): what
holding them costs. Target (issue 16): every socket >= 90 % of its courier's updates, update age p99 <= tick +
150 ms.

``python -m bench.tracking load ...`` is the load child :func:`run` starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from bench import fanout
from bench.common import machine, progress, reproduce
from tracker.kafka import ensure_topics
from tracker.local.processes import die_with, free_port, popen, rss_bytes, stop_process
from tracker.settings import Settings
from tracker.up import child_env

LOAD_PROCESSES = 4
CONNECTS_AT_ONCE = 32  # handshakes in flight per load process
TARGET = 0.90
AGE_SLACK_MS = 150
SECRET = "bench-tracking-secret"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the orders ------------------------------------------------------------------------------------------------


async def _make_orders(settings: Settings, sockets: int, couriers: int) -> list[str]:
    """One order per socket, spread over the couriers; their tokens. Drop-offs are far outside the service
    area, so no order changes state (no events worker runs: the gateway shows them picked up throughout)."""
    from tracker.orders import service
    from tracker.store import OrderStore, Store

    tokens = []
    async with Store(settings) as store:
        orders = OrderStore(store)
        for index in range(sockets):
            body = service.CreateBody(
                f"bench-{index:06d}", fanout.courier_id(index % couriers), service.LatLon(13.5, 78.5), None, 7200
            )
            with contextlib.suppress(service.OrderExists):
                tokens.append((await service.create(orders, SECRET, body, 7200)).token)
    return tokens


# -- the load client -------------------------------------------------------------------------------------------


class _Head(msgspec.Struct):
    type: str
    ts: int = 0
    server_ts: int = 0


async def _watch(
    url: str,
    counts: list[int],
    index: int,
    ages: Counter[int],
    fix_ages: Counter[int],
    window: list[bool],
    gate: asyncio.Semaphore,
    done: asyncio.Event,
    opened: list[int],
    close_codes: Counter[str],
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    decode = msgspec.json.Decoder(_Head).decode
    async with gate:
        ws = await connect(url, max_size=None, compression=None, open_timeout=300, ping_interval=None, max_queue=16)
    opened[0] += 1
    try:
        while not done.is_set():
            raw = await ws.recv(decode=False)
            if not window[0]:
                continue
            head = decode(raw)
            if head.type == "courier":
                at = now_ms()
                counts[index] += 1
                ages[at - head.server_ts] += 1
                fix_ages[at - head.ts] += 1
    except ConnectionClosed as closed:
        counts[index] = -abs(counts[index]) - 1  # closed: marked (negative)
        # the code and the gateway's reason: a 1013 is a cut-off slow socket or a refusal to try again later
        close_codes[f"{closed.rcvd.code} ({closed.rcvd.reason})" if closed.rcvd is not None else "1006"] += 1
    finally:
        with contextlib.suppress(Exception):
            ws.transport.abort()


async def _load(base: str, tokens: list[str]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    window, cpu, done = [False], [0.0, 0.0], asyncio.Event()
    counts = [0] * len(tokens)
    ages: Counter[int] = Counter()
    fix_ages: Counter[int] = Counter()
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    opened = [0]
    close_codes: Counter[str] = Counter()
    tasks = [
        asyncio.create_task(
            _watch(f"{base}/ws/track/{token}", counts, i, ages, fix_ages, window, gate, done, opened, close_codes)
        )
        for i, token in enumerate(tokens)
    ]
    while True:
        if opened[0] + sum(task.done() for task in tasks) >= len(tasks):
            break  # every socket open (or failed: reported)
        await asyncio.sleep(0.2)
    print("ready", flush=True)
    start_at, end_at = (float(v) for v in (await loop.run_in_executor(None, sys.stdin.readline)).split())
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
    failed = 0
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except Exception:  # noqa: BLE001 - a socket that failed to connect
                failed += 1
    return {
        "counts": counts,
        "ages": dict(ages),
        "fix_ages": dict(fix_ages),
        "cpu_s": cpu[1] - cpu[0],
        "failed": failed,
        "close_codes": dict(close_codes),
    }


def run_load(base: str, tokens_path: str, out_path: str) -> None:
    import uvloop

    tokens = json.loads(Path(tokens_path).read_text())
    Path(out_path).write_text(json.dumps(uvloop.run(_load(base, tokens))))


# -- the run ---------------------------------------------------------------------------------------------------


def _measure(
    port: int,
    tokens: list[str],
    gateway_pid: int,
    window_s: float,
    workdir: Path,
    tag: str,
    beside: threading.Thread | None = None,
) -> dict[str, Any]:
    """Open ``tokens``' sockets over :data:`LOAD_PROCESSES` load processes, then (with ``beside`` started:
    the dispatchers' own measurement, which connects its clients and waits ~3 s before its window) count
    ``window_s`` seconds of frames, the gateway's CPU over it and its RSS at its end."""
    rss_before = sum(rss_bytes(pid) or 0 for pid in fanout._pids(gateway_pid))
    loads = []
    for index in range(LOAD_PROCESSES):
        path = workdir / f"tokens-{tag}-{index}.json"
        path.write_text(json.dumps(tokens[index::LOAD_PROCESSES]))
        argv = [sys.executable, "-m", "bench.tracking", "load", "--base", f"ws://127.0.0.1:{port}"]
        argv += ["--tokens", str(path), "--out", str(workdir / f"result-{tag}-{index}.json")]
        loads.append(
            popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=die_with(os.getpid()))
        )
    try:
        connect_started = time.monotonic()
        for load in loads:
            assert load.stdout is not None
            if load.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a tracking load process did not get ready (exit {load.poll()})")
        connect_s = time.monotonic() - connect_started
        if beside is not None:
            beside.start()
        start_at = time.time() + (8.0 if beside is not None else 2.0)
        end_at = start_at + window_s
        for load in loads:
            assert load.stdin is not None
            load.stdin.write(f"{start_at!r} {end_at!r}\n")
            load.stdin.flush()
        time.sleep(max(0.0, start_at - time.time()))
        pids = fanout._pids(gateway_pid)
        before = fanout._cpu(pids)
        time.sleep(max(0.0, end_at - time.time()))
        cpu = (fanout._cpu(pids) - before) / window_s
        rss = sum(rss_bytes(pid) or 0 for pid in pids)
        results = []
        for index, load in enumerate(loads):
            load.wait(timeout=180)
            results.append(json.loads((workdir / f"result-{tag}-{index}.json").read_text()))
    finally:
        for load in loads:
            stop_process(load)
    ages: Counter[int] = Counter()
    fix_ages: Counter[int] = Counter()
    for result in results:
        ages.update({int(k): v for k, v in result["ages"].items()})
        fix_ages.update({int(k): v for k, v in result["fix_ages"].items()})
    counts = [c for result in results for c in result["counts"]]
    close_codes: Counter[str] = Counter()
    for result in results:
        close_codes.update({str(k): v for k, v in result["close_codes"].items()})
    return {
        "close_codes": close_codes,
        "counts": counts,
        "ages": ages,
        "fix_ages": fix_ages,
        "cpu": cpu,
        "rss_mib": rss / 2**20,
        "rss_added_mib": (rss - rss_before) / 2**20,  # what the sockets (and, busy, the couriers) added
        "client_cpu": [result["cpu_s"] / window_s for result in results],
        "failed": sum(result["failed"] for result in results),
        "connect_s": connect_s,
        "window_s": window_s,
        "load": os.getloadavg()[0],
    }


def run(
    settings: Settings,
    broker: str,
    sockets: int = 10_000,
    couriers: int = 2_000,
    dispatchers: int = 100,
    window_s: float = 20.0,
    quick: bool = False,
) -> str:
    port = free_port()
    settings = settings.replace(
        namespace="bench-tracking.",
        http_port=port,
        tracking_secret=SECRET,
        tracking_max_sockets=sockets + 10,
        max_clients=dispatchers + 10,
        ws_max_per_address=sockets + dispatchers + 10,
    )
    asyncio.run(ensure_topics(settings))
    progress(f"tracking: {sockets:,} orders and links for {couriers:,} couriers")
    tokens = asyncio.run(_make_orders(settings, sockets, couriers))
    env = child_env(settings, "gateway")
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        workdir = Path(tmp)
        ready = f"http://127.0.0.1:{port}/readyz"
        gateway_argv = [sys.executable, "-m", "tracker", "gateway"]
        # the baseline first: the same sockets, no positions flowing
        progress(f"tracking: baseline, {sockets:,} idle sockets")
        with fanout._child(gateway_argv, env, workdir / "gateway-idle.log", ready) as gateway:
            idle = _measure(port, tokens, gateway.pid, window_s, workdir, "idle")
        rows.append(("idle (baseline)", idle, None))
        progress(
            f"  gateway CPU {100 * idle['cpu']:.0f} %, RSS {idle['rss_mib']:.0f} MiB, "
            f"connected in {idle['connect_s']:.0f} s, failed {idle['failed']}"
        )
        feeder_argv, _ = fanout.feeder(couriers)
        with fanout._child(feeder_argv, env, workdir / "feeder.log") as feeder:
            progress(f"tracking: {sockets:,} sockets, {couriers:,} couriers pinging, {dispatchers} dispatchers")
            with fanout._child(gateway_argv, env, workdir / "gateway.log", ready) as gateway:
                time.sleep(2.0)
                dispatch: dict[str, Any] = {}
                specs = fanout.views(dispatchers)
                thread = threading.Thread(
                    target=lambda: dispatch.update(
                        fanout._measure(port, specs, gateway.pid, {"feeder": feeder.pid}, window_s, workdir)
                    )
                )
                busy = _measure(port, tokens, gateway.pid, window_s, workdir, "busy", beside=thread)
                thread.join()
        rows.append((f"{couriers:,} couriers pinging + {dispatchers} dispatchers", busy, dispatch))
        progress(
            f"  gateway CPU {100 * busy['cpu']:.0f} %, RSS {busy['rss_mib']:.0f} MiB, "
            f"connected in {busy['connect_s']:.0f} s, failed {busy['failed']}"
        )
    return _report(rows, settings.tick_ms, sockets, couriers, dispatchers, window_s, broker, load_before, quick)


def _q(ages: Counter[int], q: float) -> float:
    return fanout._quantile(ages, q)


def _report(
    rows: list[tuple[str, dict[str, Any], dict[str, Any] | None]],
    tick_ms: int,
    sockets: int,
    couriers: int,
    dispatchers: int,
    window_s: float,
    broker: str,
    load_before: tuple[float, float, float],
    quick: bool,
) -> str:
    ping_rate = 1.0  # the feeder's: every courier once a second
    lines = []
    for label, result, dispatch in rows:
        counts = result["counts"]
        closed = sum(1 for c in counts if c < 0)
        codes = ", ".join(f"{n} × {code}" for code, n in sorted(result["close_codes"].items()))
        closed_text = f"{closed} closed: {codes}" if closed else "0 closed"
        rates = sorted(abs(c) / result["window_s"] for c in counts)
        below = sum(r < TARGET * ping_rate for r in rates)
        held = 1 - below / len(rates) if rates else 0.0
        per_socket_kib = 1024 * result["rss_added_mib"] / sockets
        per_socket_cpu_us = 1e6 * result["cpu"] / sockets  # µs of gateway CPU per socket per second
        cpu_us = 1e6 * result["cpu"] / max(1e-9, sum(abs(c) for c in counts) / result["window_s"])
        idle = dispatch is None
        met = "—" if idle else ("✅" if held == 1.0 and _q(result["ages"], 0.99) <= tick_ms + AGE_SLACK_MS else "❌")
        frames = (
            "—"
            if idle
            else f"{rates[0]:.2f} / {rates[int(0.05 * (len(rates) - 1))]:.2f} / {statistics.median(rates):.2f}"
        )
        ages = "—" if idle else f"{_q(result['ages'], 0.5):.0f} / {_q(result['ages'], 0.99):.0f}"
        fixes = "—" if idle else f"{_q(result['fix_ages'], 0.5):.0f} / {_q(result['fix_ages'], 0.99):.0f}"
        dispatch_cell = "—"
        if dispatch:
            every = fanout._summary(dispatch, tick_ms)["all"]
            dispatch_cell = (
                f"{every['fps_min']:.2f} / {every['fps_median']:.2f} frames/s, {100 * every['held']:.0f} % at ≥ 90 %, "
                f"frame age p99 {every['frame_p99']:.0f} ms"
            )
        lines.append(
            f"| {label} | {sockets:,} ({result['failed']} failed, {closed_text}) | {frames} | "
            f"{'—' if idle else f'{100 * held:.1f} % ({below:,} below)'} | {ages} | {fixes} | "
            f"{100 * result['cpu']:.0f} % | "
            f"{per_socket_cpu_us:.1f} | {'—' if idle else f'{cpu_us:.0f}'} | "
            f"{result['rss_mib']:.0f} MiB (+{per_socket_kib:.1f} KiB/socket) | "
            f"{' + '.join(f'{100 * c:.0f}' for c in result['client_cpu'])} % | {result['connect_s']:.0f} s | "
            f"{dispatch_cell} | {met} |"
        )
    columns = ["gateway", "tracking sockets", "courier frames/s per socket min / p5 / median", "≥ 90 % of 1/s"]
    columns += ["update age p50 / p99 (ms)", "fix age p50 / p99 (ms)", "gateway CPU"]
    columns += ["gateway CPU per socket (µs/s)", "gateway CPU per frame (µs)"]
    columns += ["gateway RSS (added per socket by connecting)", "load clients CPU", "connected in"]
    columns += [f"dispatchers ({dispatchers}) on the same gateway"]
    columns += ["target met"]
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    table = "\n".join(lines)
    title = "Tracking links: 10,000 customers" if not quick else "Tracking links (quick)"
    return f"""## {title}

{sockets:,} customers' sockets (`/ws/track/<token>`, one order each, {sockets // couriers} per courier) on one
gateway process, {couriers:,} couriers pinging once a second (bench/fanout.py's feeder, straight to
`courier-positions`), {dispatchers} dispatchers' maps (bench/fanout.py's load: districts, everything, follow)
on the same gateway; tick {tick_ms} ms; {window_s:g} s measured once every socket is open. Per socket: courier
frames/s (min / p5 / median) against its courier's one ping a second, the share of sockets at ≥ 90 % of it;
update age = receive time − the frame's `server_ts`; fix age = receive time − the fix's `ts` (the feeder's
clock when it produced it). CPU in % of one core over the window (`/proc`); "per socket": the gateway's CPU
over the window per socket (µs per second); "per frame": the gateway's CPU (input, hub, dispatchers and all)
per courier frame delivered; RSS at the window's end, and what connecting the sockets added to it, per socket.
The dispatchers' figures are bench/fanout.py's (frames/s per client min / median against the tick; with few
couriers a district has no change in some ticks, so their frames/s is below the tick there by design).
Baseline: the same sockets on a fresh gateway
with no positions flowing (what holding them costs). Target (issue 16): every socket ≥ 90 % of its courier's
updates, update age p99 ≤ tick + {AGE_SLACK_MS} ms. Load: {LOAD_PROCESSES} processes of `websockets` asyncio
clients (uvloop) decoding each frame's head.

{head}
{table}

Machine: {machine()}; load average before: {load_before[0]:.2f} (1 min; other work on this machine shares the
cores). Broker: {broker}; feeder, gateway and load clients are child processes on these cores.
Reproduce: {reproduce(broker, "--only tracking" + (" --tracking-quick" if quick else ""))}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking")
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="one load process: ready on stdout, the window on stdin, counts to --out")
    load.add_argument("--base", required=True)
    load.add_argument("--tokens", required=True)
    load.add_argument("--out", required=True)
    args = parser.parse_args()
    run_load(args.base, args.tokens, args.out)


if __name__ == "__main__":
    main()
