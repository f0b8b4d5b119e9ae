"""Cost per ping: CPU microseconds per ping for every process of the pipeline, so that cost can be multiplied out.

The whole system runs as ``tracker up`` runs it (a validator, a gateway, the events worker and the ingest as
child processes, the embedded broker and Redis), with one WebSocket client on the gateway that sees every
courier (bench/latency.py's measuring client). Each row is a fresh system in its own namespace; CPU time of each
process is read from ``/proc`` over a window after a warm-up. The baseline is the *idle* row, measured in the
same run: every process up, the client connected, no pings. A loaded row's CPU per ping is its CPU minus the
idle row's, over the pings sent in the window, so what a process costs just by being up is not charged to the
pings (both are shown).

Two ways in: pings produced straight to ``location-updates`` (what the ingest hands on; bench/latency.py's
paced producer, catching up after a slow step), and pings posted to the ingest one fix per request, as a phone
pinging every few seconds posts them (a native ``/v1/pings`` POST with the courier's token, paced, keep-alive
connections), so the ingest's cost is measured where a load goes through it. The load generator runs in this
process; its CPU is shown per row.

Also: bytes per ping on the broker (the namespace's log segments at the end of the row) and Redis memory per
courier. ``bench/sizing.py`` multiplies the table out (docs/sizing.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import redis

from bench import sizing
from bench.common import (
    REPORT,
    ROOT,
    cpu_seconds,
    load_average,
    machine,
    progress,
    quiet_gc,
    reproduce,
    running,
    wait_for_quiet,
    waited_seconds,
    write_section,
)
from bench.latency import STEP_S, BenchPing, courier_position, listen, now_ms, summarize
from tracker.kafka import Producer, ensure_topics
from tracker.local.embedded import EmbeddedError
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.settings import Settings
from tracker.up import LocalSystem

WARMUP_S = 5.0
ATTEMPTS = 2  # a row spoiled by other work on the machine is run again, up to this many times in all
INGEST_CONNECTIONS = 256  # enough that a request's wait for its answer does not slow the pacing
INGEST_INTERVAL_S = 4.0  # each courier posts a fix every 4 s through the ingest, as in the sizing question
GUIDE = ROOT / "docs" / "sizing.md"
PROCESSES = ("broker", "validator-1", "redis", "gateway", "events", "ingest")
LABELS = {"validator-1": "validator"}


@dataclass
class Row:
    label: str
    way: str  # "idle", "kafka" or "ingest"
    rate: int  # pings/s asked for
    cores: dict[str, float] = field(default_factory=dict)  # per process, over the window
    pings: int = 0  # sent (kafka) or answered 200 (ingest) within the window
    window_s: float = 0.0
    load_generator: float = 0.0  # cores: this process (load generator and measuring client)
    load: float = 0.0
    waited: float = 0.0  # share of the window the system's own processes waited for a core
    p50: float | None = None
    p99: float | None = None
    missing: int = 0
    errors: int = 0
    broker_bytes: dict[str, int] = field(default_factory=dict)  # topic kind -> log bytes at the end
    sent_total: int = 0
    redis_bytes: int = 0  # used_memory growth over the row
    couriers: int = 0
    attempts: int = 1  # the run this row is (earlier ones were spoiled by other work on the machine)

    @property
    def measured_rate(self) -> float:
        return self.pings / self.window_s if self.window_s else 0.0


# -- the loads --------------------------------------------------------------------------------------------------


async def produce_due(settings: Settings, topic: str, rate: int, duration_s: float) -> dict[tuple[str, int], int]:
    """bench/latency.py's paced producer, except that each step sends every ping due by then: a step that had to
    wait (aiokafka queues one batch per partition until the one before it is sent, so a slow broker ack holds
    up the next step) is followed by a bigger one, and the rate asked for is the rate sent, as phones would keep
    sending. Returns (courier, ts) -> send time (ms); one ping per courier per second."""
    sent: dict[tuple[str, int], int] = {}
    ids = [f"bench-{index:05d}" for index in range(rate)]
    keys = [partner_id.encode() for partner_id in ids]
    encode = msgspec.json.Encoder().encode
    async with Producer(settings, linger_ms=1) as producer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        cursor = 0
        step = 0
        while (elapsed := loop.time() - started) < duration_s:
            batch = []
            ts = now_ms()
            for _ in range(round(rate * elapsed) - cursor):
                index, lap = cursor % rate, cursor // rate
                lat, lon = courier_position(index, lap)
                batch.append(OutRecord(value=encode(BenchPing(ids[index], lat, lon, ts + lap)), key=keys[index]))
                sent[(ids[index], ts + lap)] = ts
                cursor += 1
            if batch:
                await producer.send_many(topic, batch)
            step += 1
            await asyncio.sleep(max(0.0, started + step * STEP_S - loop.time()))
        await producer.flush()
    return sent


class _Answer(msgspec.Struct):
    produced: int = 0


async def post_paced(
    port: int,
    couriers: list[tuple[str, str]],
    rate: int,
    duration_s: float,
    sent: dict[tuple[str, int], int],
    answers: list[tuple[int, int]],
) -> None:
    """``rate`` single-fix POSTs a second over :data:`INGEST_CONNECTIONS` keep-alive connections, each courier
    every len(couriers) / rate seconds; notes each (courier, ts) sent and each answer's (time ms, status)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    every = INGEST_CONNECTIONS / rate
    encode = msgspec.json.Encoder().encode

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        mine = couriers[index::INGEST_CONNECTIONS]
        first = started + index * every / INGEST_CONNECTIONS
        count = 0
        try:
            while loop.time() - started < duration_s:
                await asyncio.sleep(max(0.0, first + count * every - loop.time()))
                position = count % len(mine)
                courier, token = mine[position]
                lat, lon = courier_position(index + position * INGEST_CONNECTIONS, count // len(mine))
                ts = now_ms()
                body = encode({"lat": lat, "lon": lon, "ts": ts, "speed": 1.1, "accuracy": 8.0})
                writer.write(
                    b"POST /v1/pings HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer "
                    + token.encode()
                    + b"\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                sent[(courier, ts)] = ts
                status = int((await reader.readline())[9:12])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line[15:])
                await reader.readexactly(length)
                answers.append((now_ms(), status))
                count += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(index) for index in range(INGEST_CONNECTIONS)))


async def _register(settings: Settings, count: int) -> list[tuple[str, str]]:
    from tracker.ingest import devices
    from tracker.store import Store

    async with Store(settings) as store:
        return [(f"cost-{n:05d}", await devices.add(store, f"cost-{n:05d}")) for n in range(count)]


# -- a row ------------------------------------------------------------------------------------------------------


def broker_log_dir(pid: int) -> Path | None:
    """The embedded broker's ``log.dirs``, from the server.properties its command line names."""
    with contextlib.suppress(OSError, StopIteration):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        config = Path(next(arg for arg in reversed(argv) if arg.endswith(b".properties")).decode())
        for line in config.read_text().splitlines():
            if line.startswith("log.dirs="):
                return Path(line.split("=", 1)[1].strip())
    return None


def _log_bytes(data_dir: Path | None, settings: Settings) -> dict[str, int]:
    """Bytes of log segments per topic of ``settings``' namespace on the embedded broker's disk."""
    topics = {
        "location-updates": settings.location_topic,
        "courier-positions": settings.positions_topic,
        "events": settings.events_topic,
        "dead letters": settings.dlq_topic,
    }
    sizes = dict.fromkeys(topics, 0)
    for path in data_dir.rglob("*.log") if data_dir is not None else ():
        partition_dir = path.parent.name
        for kind, topic in topics.items():
            if partition_dir.rsplit("-", 1)[0] == topic:
                with contextlib.suppress(OSError):
                    sizes[kind] += path.stat().st_size
    return sizes


async def _drive(
    row: Row,
    settings: Settings,
    system: LocalSystem,
    pids: dict[str, int],
    window_s: float,
    couriers: list[tuple[str, str]],
) -> dict[str, float]:
    """Connect the client, run the load (none when idle) for warm-up + window + 1 s, sample CPU around the
    window; returns CPU seconds per process before the window (the after is in ``row``)."""
    received: dict[tuple[str, int], int] = {}
    stop = asyncio.Event()
    listener = asyncio.create_task(listen(system.base_url.replace("http", "ws") + "/ws", received, stop))
    await asyncio.sleep(1.0)
    sent: dict[tuple[str, int], int] = {}
    answers: list[tuple[int, int]] = []
    duration_s = WARMUP_S + window_s + 1.0
    load: asyncio.Task[Any]
    if row.way == "kafka":
        load = asyncio.create_task(produce_due(settings, settings.location_topic, row.rate, duration_s))
    elif row.way == "ingest":
        load = asyncio.create_task(post_paced(settings.ingest_port, couriers, row.rate, duration_s, sent, answers))
    else:
        load = asyncio.create_task(asyncio.sleep(duration_s))
    await asyncio.sleep(WARMUP_S)
    own = [pid for name, pid in pids.items() if name not in ("broker", "redis")]
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    waited_before = waited_seconds(own)
    bench_before = time.process_time()
    start_ms, started = now_ms(), time.monotonic()
    await asyncio.sleep(window_s)
    elapsed = time.monotonic() - started
    end_ms = now_ms()
    row.cores = {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}
    row.load_generator = (time.process_time() - bench_before) / elapsed
    row.waited = (waited_seconds(own) - waited_before) / elapsed
    row.load = load_average()
    row.window_s = elapsed
    result = await load
    if row.way == "kafka":
        sent = result
    await asyncio.sleep(2.0)
    stop.set()
    await listener
    if row.way == "kafka":
        row.pings = sum(1 for at in sent.values() if start_ms <= at < end_ms)
    elif row.way == "ingest":
        row.pings = sum(1 for at, status in answers if start_ms <= at < end_ms and status == 200)
        row.errors = sum(1 for _, status in answers if status != 200)
    row.sent_total = len(sent)
    if sent:
        latency = summarize(sent, received)
        row.p50, row.p99, row.missing = latency["p50"], latency["p99"], latency["missing"]
    return before


def measure(
    settings: Settings, fixed_pids: dict[str, int], row: Row, window_s: float, index: int, data_dir: Path | None
) -> Row:
    run_settings = settings.replace(namespace=f"cost{index}.", http_port=free_port(), ingest_port=free_port())
    asyncio.run(ensure_topics(run_settings))
    couriers: list[tuple[str, str]] = []
    if row.way == "ingest":
        couriers = asyncio.run(_register(run_settings, round(row.rate * INGEST_INTERVAL_S)))
    row.couriers = len(couriers) if row.way == "ingest" else row.rate if row.way == "kafka" else 0
    redis_client = redis.Redis.from_url(running(settings.redis_url, "REDIS_URL"))
    with (
        tempfile.TemporaryDirectory() as logs,
        LocalSystem(run_settings, Path(logs), validators=1, ingest=True, events=True) as system,
    ):
        time.sleep(3)  # let the validator and the events worker join their groups
        pids = {**fixed_pids, **{name: process.pid for name, process in system.children}}
        memory_before = int(redis_client.info("memory")["used_memory"])
        with quiet_gc():
            asyncio.run(_drive(row, run_settings, system, pids, window_s, couriers))
        row.redis_bytes = int(redis_client.info("memory")["used_memory"]) - memory_before
    redis_client.close()
    row.broker_bytes = _log_bytes(data_dir, run_settings)
    return row


# -- the report -------------------------------------------------------------------------------------------------


def spoiled(row: Row) -> bool:
    """A row other work on the machine spoiled: the load average over twice the cores, or a load that did not
    get through (the load generator short of its rate, or pings still missing at the end)."""
    if row.load > 2 * (os.cpu_count() or 1):
        return True
    return row.way != "idle" and (row.measured_rate < 0.9 * row.rate or row.missing > 0)


def per_ping(row: Row, idle: Row) -> dict[str, float]:
    """CPU µs per ping of each process in ``row``, idle subtracted."""
    rate = max(row.measured_rate, 1e-9)
    return {name: (row.cores.get(name, 0.0) - idle.cores.get(name, 0.0)) / rate * 1e6 for name in PROCESSES}


def costs_from(rows: list[Row], benchmarks: str) -> sizing.Costs:
    """The figures the sizing guide multiplies: each process's µs per ping at the highest load of each way in
    (the one nearest the target rate: fixed costs per batch weigh less there), bytes per ping on the broker
    from the same row, the gateway's cost per frame from the fan-out section (and the ingest's per ping in
    batches from the ingest section) of ``benchmarks``, BENCHMARKS.md's text."""
    idle = rows[0]
    kafka = max((row for row in rows if row.way == "kafka"), key=lambda row: row.rate)
    through_ingest = max((row for row in rows if row.way == "ingest"), key=lambda row: row.rate)
    us = per_ping(kafka, idle)
    frame = sizing.fanout_frame_cost(benchmarks)
    batches = sizing.ingest_batch_cost(benchmarks)
    return sizing.Costs(
        validator_us=us["validator-1"],
        redis_us=us["redis"],
        broker_us=us["broker"],
        gateway_input_us=us["gateway"],
        events_us=us["events"],
        ingest_us=per_ping(through_ingest, idle)["ingest"],
        broker_bytes=sum(kafka.broker_bytes.values()) / max(kafka.sent_total, 1),
        redis_bytes_per_courier=kafka.redis_bytes / max(kafka.couriers, 1),
        frame_us=frame.frame_us if frame else None,
        fanout_couriers=frame.couriers if frame else None,
        measured_at=f"{kafka.label}; {through_ingest.label}",
        ingest_batch_pings=batches[0] if batches else None,
        ingest_batch_us=batches[1] if batches else None,
    )


def _pct(cores: float) -> str:
    return f"{100 * cores:.0f} %"


def report(rows: list[Row], broker: str, window_s: float, bench_args: str) -> str:
    idle = rows[0]
    header = " | ".join(LABELS.get(name, name) for name in PROCESSES)
    cpu_lines = []
    for row in rows:
        latency = f"{row.p50:.0f} / {row.p99:.0f}" if row.p50 is not None else "—"
        rate = f"{row.measured_rate:,.0f}" if row.way != "idle" else "—"
        cpu_lines.append(
            f"| {row.label} | {rate} | "
            + " | ".join(_pct(row.cores.get(name, 0.0)) for name in PROCESSES)
            + f" | {_pct(sum(row.cores.values()))} | {_pct(row.load_generator)} | {latency} | "
            f"{row.missing:,} | {100 * row.waited:.0f} % | {row.load:.1f} | "
            f"{row.attempts}{' ⚠️' if spoiled(row) else ''} |"
        )
    us_lines = []
    for row in rows[1:]:
        us = per_ping(row, idle)
        us_lines.append(
            f"| {row.label} | {row.measured_rate:,.0f} | "
            + " | ".join(f"{us[name]:.1f}" for name in PROCESSES)
            + f" | {sum(us[name] for name in PROCESSES if name != 'ingest' or row.way == 'ingest'):.1f} |"
        )
    byte_lines = []
    for row in rows[1:]:
        per = {kind: size / max(row.sent_total, 1) for kind, size in row.broker_bytes.items()}
        byte_lines.append(
            f"| {row.label} | {row.sent_total:,} | "
            + " | ".join(f"{value:.0f}" for value in per.values())
            + f" | {sum(per.values()):.0f} | {row.couriers:,} | "
            f"{row.redis_bytes / max(row.couriers, 1) / 1024:.1f} |"
        )
    kinds = " | ".join(rows[1].broker_bytes) if len(rows) > 1 else ""
    errors = sum(row.errors for row in rows)
    answered = (
        f"The ingest answered {errors:,} requests with another status than 200."
        if errors
        else "Every request to the ingest was answered 200."
    )
    return f"""## Cost per ping

CPU µs per ping of every process of the pipeline, to be multiplied out (docs/sizing.md does). Each row is the
whole system as `tracker up` runs it, fresh, in its own namespace: one validator, one gateway (default 200 ms
tick) with **one WebSocket client that sees every courier** (its frames are part of the gateway's cost here;
what more clients cost is the fan-out section's), the events worker, the ingest, {broker} and Redis.
CPU from `/proc` over {window_s:g} s after {WARMUP_S:g} s of warm-up. Loads: one ping per courier per
second produced straight to `location-updates` (what an ingest hands on), or through the ingest, one fix per
HTTP request as a phone pinging every {INGEST_INTERVAL_S:g} s posts it (`/v1/pings`, Bearer token of a
registered device, {INGEST_CONNECTIONS} keep-alive connections, paced). **Baseline: the idle row**, measured in the
same run (everything up, the client connected, no pings); a process's µs per ping is its CPU in a loaded row
minus its idle CPU, over the pings of the window. The load generator (this process; it is also the
WebSocket client) shares the cores and is shown, not charged.

CPU in % of one core:

| row | pings/s | {header} | all | load generator | p50 / p99 (ms) | missing | waiting for a core | \
load average | run |
|---|---|{"---|" * len(PROCESSES)}---|---|---|---|---|---|---|
{chr(10).join(cpu_lines)}

**CPU µs per ping**, idle subtracted ("all": the pipeline's processes; the ingest counted only where the
pings went through it):

| row | pings/s | {header} | all |
|---|---|{"---|" * len(PROCESSES)}---|
{chr(10).join(us_lines)}

**Bytes**: the namespace's log segments on the broker at the end of the row (one replica; warm-up and
tail included), per ping sent in the whole row, by topic; and Redis's `used_memory` growth over the row per
courier (positions and trails of ~{WARMUP_S + window_s + 1:.0f} points; a trail grows to `TRACKER_TRAIL_MAX`,
see "The pipeline over time" for its size then).

| row | pings sent | {kinds} | all (bytes/ping) | couriers | Redis KiB per courier |
|---|---|{"---|" * len(rows[1].broker_bytes) if len(rows) > 1 else ""}---|---|---|
{chr(10).join(byte_lines)}

{answered}
"p50 / p99": from the load generator's send to the WebSocket client, with one ping per courier per second
(per {INGEST_INTERVAL_S:g} s through the ingest): whether the pipeline kept up with the row's load (a row that
did not is saturated, and its CPU per ping is what it cost while it fell behind). "Waiting for a core": the time
the system's own processes (not the broker or Redis) were ready to run while other work had the cores
(`/proc/PID/schedstat`); load average: 1 minute, at the window's end. Other engineers' work shares these cores:
each row waits (up to 30 s) for the load average to fall under the core count + 1 before it starts, and a row
the machine spoiled (load average over twice the cores, the load generator under 90 % of its rate, or pings
still missing at the end) is run again, up to {ATTEMPTS} times; "run" says which run the row is, and ⚠️ marks a
row whose every run was spoiled (the least loaded is shown).

Machine: {machine()}.
Reproduce: {reproduce(broker, bench_args)}.
"""


def run(
    settings: Settings,
    broker: str,
    fixed_pids: dict[str, int],
    *,
    loads: list[int],
    ingest_loads: list[int],
    window_s: float,
    write_guide: bool,
) -> str:
    data_dir = broker_log_dir(fixed_pids["broker"])
    rows = [Row("idle (baseline)", "idle", 0)]
    rows += [Row(f"{rate:,} pings/s to Kafka", "kafka", rate) for rate in loads]
    rows += [Row(f"{rate:,} pings/s through the ingest", "ingest", rate) for rate in ingest_loads]
    for index, planned in enumerate(list(rows)):
        best: Row | None = None
        for attempt in range(1, ATTEMPTS + 1):
            progress(f"cost: {planned.label}, attempt {attempt} (load average {wait_for_quiet():.1f})")
            row = Row(planned.label, planned.way, planned.rate, attempts=attempt)
            try:
                measure(settings, fixed_pids, row, window_s, index * 10 + attempt, data_dir)
            except EmbeddedError as exc:  # a process that did not start in time on the loaded machine
                progress(f"  not measured: {exc}")
                continue
            progress(
                f"  {row.measured_rate:,.0f} pings/s, load {row.load:.1f}, "
                + ", ".join(f"{name} {_pct(cores)}" for name, cores in row.cores.items())
                + f", load generator {_pct(row.load_generator)}"
                + (f", p99 {row.p99:.0f} ms, missing {row.missing}" if row.p99 is not None else "")
            )
            if not spoiled(row):
                best = row
                break
            if best is None or row.load < best.load:
                best = row  # every attempt spoiled: the least loaded one, flagged in the table
        if best is None:
            raise RuntimeError(f"cost: {planned.label} could not be measured in {ATTEMPTS} attempts")
        rows[index] = best
    bench_args = "--only cost"
    section = report(rows, broker, window_s, bench_args)
    if write_guide:
        costs = costs_from(rows, REPORT.read_text() if REPORT.exists() else "")
        write_section("sizing", sizing.render(sizing.plan(costs, sizing.Target()), costs), GUIDE)
        progress(f"wrote the sizing table in {GUIDE}")
    else:
        costs = costs_from(rows, REPORT.read_text() if REPORT.exists() else "")
        print(sizing.render(sizing.plan(costs, sizing.Target()), costs))
    return section
