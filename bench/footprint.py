"""What `make run` costs the machine: CPU per process, idle and at its default 300 pings/s.

A dispatcher leaves the map open all day on a laptop, so the steady cost of the whole local system matters
as much as its peak. Each row runs the gateway and a validator (and, when loaded, the simulator) as child
processes, exactly as ``tracker up`` does, and reads every process's CPU time from ``/proc`` over a window
after a warm-up. Baselines, measured in the same run: the previous defaults (a 10 ms fetch wait, and the
simulator sending each ping the moment it falls due).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from bench.common import cpu_seconds, machine, progress, reproduce
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.settings import Settings
from tracker.up import LocalSystem

WARMUP_S = 8.0
COURIERS = 300  # tracker up's default: 300 couriers, one ping a second each

ROWS = (
    # label, fetch wait (None: the default), simulator linger (None: no simulator), is a baseline
    ("idle, fetch wait 10 ms (before)", 10, None, True),
    ("idle, defaults", None, None, False),
    ("300 pings/s, each ping sent when due (before)", None, 0.0, True),
    ("300 pings/s, defaults (20 ms linger)", None, 20.0, False),
)


def measure(
    settings: Settings, fixed_pids: dict[str, int], fetch_wait_ms: int | None, linger_ms: float | None, window_s: float
) -> dict[str, float]:
    """% of one core per process over ``window_s``, after the warm-up."""
    run_settings = settings.replace(http_port=free_port(), kafka_fetch_max_wait_ms=fetch_wait_ms)
    asyncio.run(ensure_topics(run_settings))
    with tempfile.TemporaryDirectory() as logs, LocalSystem(run_settings, Path(logs)) as system:
        if linger_ms is not None:
            system.start_simulator(
                "--couriers", str(COURIERS), "--interval", "1.0", "--bad-rate", "0.03", "--linger-ms", f"{linger_ms:g}"
            )
        time.sleep(WARMUP_S)
        pids = {**fixed_pids, **{name: process.pid for name, process in system.children}}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(window_s)
        elapsed = time.monotonic() - started
        return {name: 100 * (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def run(settings: Settings, broker: str, fixed_pids: dict[str, int], window_s: float) -> str:
    results = []
    for index, (label, fetch_wait_ms, linger_ms, _) in enumerate(ROWS):
        progress(f"footprint: {label}")
        namespace = f"fp{index}."
        cpu = measure(settings.replace(namespace=namespace), fixed_pids, fetch_wait_ms, linger_ms, window_s)
        progress("  " + ", ".join(f"{name} {value:.0f} %" for name, value in cpu.items()))
        results.append((label, cpu))

    columns = ["broker", "redis", "validator-1", "gateway", "simulator"]

    def cell(cpu: dict[str, float], name: str) -> str:
        return f"{cpu[name]:.0f} %" if name in cpu else "—"

    def total(cpu: dict[str, float]) -> float:
        return sum(cpu.values())

    lines = []
    for index, ((label, cpu), (_, _, _, is_baseline)) in enumerate(zip(results, ROWS, strict=True)):
        # every non-baseline row follows its baseline
        versus = "baseline" if is_baseline else f"{total(cpu) / max(total(results[index - 1][1]), 0.1):.2f}×"
        lines.append(f"| {label} | {' | '.join(cell(cpu, name) for name in columns)} | {total(cpu):.0f} % | {versus} |")
    table = "\n".join(lines)
    return f"""## What `make run` costs: CPU per process

`tracker up`'s processes on {broker} and embedded Redis, CPU time read from `/proc` over {window_s:g} s after
{WARMUP_S:g} s of warm-up, in % of one core. Loaded rows run the simulator as `make run` does ({COURIERS} couriers,
a ping a second each, 3 % bad). Each "(before)" row is the previous default, measured in the same run as the
baseline of the row under it.

| load | broker | redis | validator | gateway | simulator | total | total vs baseline |
|---|---|---|---|---|---|---|---|
{table}

Machine: {machine()}.
Reproduce: {reproduce(broker, "--only footprint")}.
"""
