"""The broker over time: one produce -> consume hop at a steady rate, reported per window.

A broker whose cost per fetch grows with what it stores gets slower the longer it runs; a short benchmark
never sees that. This one keeps a bare aiokafka producer and consumer (the pipeline's two hops are made of
these) on one topic for ``duration_s`` and reports each window's hop latency and the broker's CPU, so the
first window is the baseline for the later ones.
"""

from __future__ import annotations

import asyncio
import math
import statistics

import msgspec

from bench.common import cpu_seconds, machine, progress, quiet_gc, reproduce
from bench.latency import STEP_S, now_ms, percentile
from tracker.kafka import Consumer, Producer, ensure_topics
from tracker.models import OutRecord
from tracker.settings import Settings


async def measure(settings: Settings, broker_pid: int, rate: int, duration_s: float, window_s: float) -> list[dict]:
    topic = settings.namespace + "bench-soak"
    await ensure_topics(settings, {topic: settings.location_partitions})
    consumer = Consumer(settings, [topic], group_id=None, start="latest")
    await consumer.start()
    received: dict[int, int] = {}
    stop = asyncio.Event()

    async def consume() -> None:
        decode = msgspec.json.Decoder(dict[str, int]).decode
        while not stop.is_set():
            for records in (await consumer.poll(timeout_ms=100)).values():
                at = now_ms()
                for record in records:
                    if record.value is None:
                        continue  # not one of ours: the topic holds only the pings this benchmark sends
                    received[decode(record.value)["n"]] = at

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    windows: list[dict] = []
    sent: list[tuple[int, int]] = []  # (n, send time) of the current window
    per_step = max(1, round(rate * STEP_S))
    async with Producer(settings, linger_ms=1) as producer:
        loop = asyncio.get_running_loop()
        started = window_started = loop.time()
        cpu_before = cpu_seconds(broker_pid)
        n = step = 0
        while loop.time() - started < duration_s:
            ts = now_ms()
            batch = []
            for _ in range(per_step):
                key = f"soak-{n % rate:05d}".encode()
                batch.append(OutRecord(value=msgspec.json.encode({"n": n}), key=key))
                sent.append((n, ts))
                n += 1
            await producer.send_many(topic, batch)
            step += 1
            if loop.time() - window_started >= window_s:
                cpu = 100 * (cpu_seconds(broker_pid) - cpu_before) / (loop.time() - window_started)
                windows.append({"t": loop.time() - started, "sent": sent, "cpu": cpu})
                progress(
                    f"  {windows[-1]['t']:.0f} s: broker CPU {cpu:.0f} %, "
                    f"{sum(1 for i, _ in sent if i in received) / len(sent):.0%} of the window arrived so far"
                )
                sent, window_started, cpu_before = [], loop.time(), cpu_seconds(broker_pid)
            await asyncio.sleep(max(0.0, started + step * STEP_S - loop.time()))
    await asyncio.sleep(3.0)  # what is still in flight may arrive
    stop.set()
    await task
    await consumer.stop()
    for window in windows:
        sent_in_window = window.pop("sent")
        latencies = [received[n] - at for n, at in sent_in_window if n in received]
        window["arrived"] = len(latencies) / max(1, len(sent_in_window))
        window["p50"] = statistics.median(latencies) if latencies else float("nan")
        window["p99"] = percentile(latencies, 0.99) if latencies else float("nan")
    return windows


def run(settings: Settings, broker: str, broker_pid: int, rate: int, duration_s: float, window_s: float) -> str:
    progress(f"soak: one hop at {rate:,} pings/s for {duration_s:g} s on {broker}")
    with quiet_gc():
        windows = asyncio.run(measure(settings.replace(namespace="soak."), broker_pid, rate, duration_s, window_s))
    first = max(windows[0]["p50"], 1)

    def ms(value: float) -> str:
        return "—" if math.isnan(value) else f"{value:,.0f}"

    rows = "\n".join(
        f"| {w['t']:.0f} | {ms(w['p50'])} | {ms(w['p99'])} | "
        f"{'—' if math.isnan(w['p50']) else format(w['p50'] / first, '.1f') + '×'} | "
        f"{w['cpu']:.0f} % | {w['arrived']:.0%} |"
        for w in windows
    )
    return f"""## The broker over time: {broker}

One bare produce → consume hop at {rate:,} pings/s (a batch every {STEP_S * 1000:g} ms, \
{settings.location_partitions}
partitions), for {duration_s:g} s, reported per {window_s:g} s window. Baseline: the first window. \
"Arrived": the share of
the window's pings consumed by 3 s after the run ended; "—": none of them was.

| t (s) | hop p50 (ms) | hop p99 (ms) | p50 vs first window | broker CPU | arrived |
|---|---|---|---|---|---|
{rows}

Machine: {machine()}.
Reproduce: {reproduce(broker, "--only soak")}.
"""
