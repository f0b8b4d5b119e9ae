"""The whole pipeline over time: steady load for minutes, latency and memory per window.

A dispatcher leaves the map open all day, so what matters besides the latency of a fresh system is whether
it stays that way: no latency creep, no process whose memory keeps growing. This runs the pipeline exactly
as the latency benchmark does (paced producer → validator → gateway → WebSocket client) for ``duration_s``
and reports, per window, end-to-end p50/p99 of the pings sent in it and the resident memory of every
process plus Redis's dataset. The baseline is the first window.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import redis

from bench.common import machine, progress, quiet_gc, reproduce, running
from bench.latency import listen, percentile, produce_paced
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port, rss_bytes
from tracker.settings import Settings
from tracker.up import LocalSystem

TICK_MS = 25


async def measure(
    settings: Settings, base_url: str, pids: dict[str, int], rate: int, duration_s: float, window_s: float
) -> list[dict]:
    received: dict[tuple[str, int], int] = {}
    stop = asyncio.Event()
    listener = asyncio.create_task(listen(base_url.replace("http", "ws") + "/ws", received, stop))
    redis_client = redis.Redis.from_url(running(settings.redis_url, "REDIS_URL"))
    memory: list[dict[str, float]] = []

    async def sample() -> None:
        while True:
            await asyncio.sleep(window_s)
            row = {name: (rss_bytes(pid) or 0) / 2**20 for name, pid in pids.items()}
            row["redis dataset"] = redis_client.info("memory")["used_memory"] / 2**20
            memory.append(row)
            progress(
                f"  {len(memory) * window_s:.0f} s: " + ", ".join(f"{name} {mib:.0f} MiB" for name, mib in row.items())
            )

    await asyncio.sleep(1.0)
    sampler = asyncio.create_task(sample())
    sent = await produce_paced(settings, settings.location_topic, rate, duration_s)
    sampler.cancel()
    await asyncio.sleep(2.0)
    stop.set()
    await listener
    redis_client.close()

    first = min(sent.values())
    windows = []
    for index, row in enumerate(memory):
        start, end = first + index * window_s * 1000, first + (index + 1) * window_s * 1000
        latencies = [received[key] - at for key, at in sent.items() if start <= at < end and key in received]
        in_window = sum(1 for at in sent.values() if start <= at < end)
        windows.append(
            {
                "t": (index + 1) * window_s,
                "p50": statistics.median(latencies) if latencies else None,
                "p99": percentile(latencies, 0.99) if latencies else None,
                "missing": in_window - len(latencies),
                "memory": row,
            }
        )
    return windows


def run(
    settings: Settings, broker: str, fixed_pids: dict[str, int], rate: int, duration_s: float, window_s: float
) -> str:
    """``fixed_pids``: the processes that outlive the run (broker, Redis), by column name."""
    progress(f"endurance: the pipeline at {rate:,} pings/s for {duration_s:g} s on {broker}")
    run_settings = settings.replace(namespace="endurance.", tick_ms=TICK_MS, http_port=free_port())
    asyncio.run(ensure_topics(run_settings))
    with tempfile.TemporaryDirectory() as logs, LocalSystem(run_settings, Path(logs)) as system:
        time.sleep(3)  # let the validator join its group
        pids = {**fixed_pids, **{name: process.pid for name, process in system.children}}
        with quiet_gc():
            windows = asyncio.run(measure(run_settings, system.base_url, pids, rate, duration_s, window_s))

    names = list(windows[0]["memory"])
    first_p50 = max(windows[0]["p50"] or 1, 1)

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}"

    rows = "\n".join(
        f"| {w['t']:.0f} | {ms(w['p50'])} | {ms(w['p99'])} | "
        f"{'—' if w['p50'] is None else format(w['p50'] / first_p50, '.2f') + '×'} | {w['missing']:,} | "
        + " | ".join(f"{w['memory'][name]:,.0f}" for name in names)
        + " |"
        for w in windows
    )
    growth = ", ".join(f"{name} {windows[-1]['memory'][name] - windows[0]['memory'][name]:+,.0f} MiB" for name in names)
    return f"""## The pipeline over time

The latency benchmark's pipeline (paced producer → validator → gateway with a {TICK_MS} ms tick → WebSocket
client) at {rate:,} pings/s for {duration_s:g} s on {broker}, one ping per courier per second, \
reported per {window_s:g} s
window: p50 / p99 of the pings sent in the window, and each process's resident memory (MiB) at its end.
Baseline: the first window. Redis's dataset grows until every courier's trail reaches its cap
(`TRACKER_TRAIL_MAX`, 200 points: 200 s at one ping a second).

| t (s) | p50 (ms) | p99 (ms) | p50 vs first window | missing | {" | ".join(names)} |
|---|---|---|---|---|{"---|" * len(names)}
{rows}

From the first window to the last: {growth}.

Machine: {machine()}.
Reproduce: {reproduce(broker, "--only endurance")}.
"""
