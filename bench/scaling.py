"""Validators in parallel, and the highest rate the whole pipeline holds (issue 15, item 4).

*Contention*: 1 and then 2 ``tracker validate`` processes in one consumer group read the same pre-filled topic
(each contender its own identical copy, as bench/throughput.py does). The rate is measured from outside, the
same way for both: the bench polls the end offsets of the contender's ``courier-positions`` every
:data:`SAMPLE_S` and takes the window from the first accepted position to the last, so a rebalance when the
second validator joins is inside the window (it is what a group pays). Beside it, the *steady* rate: pings per
second over the samples in which every validator was working (not joining, rebalancing or done). CPU of each
validator, of the broker and of Redis over the window, from ``/proc``.

*Step load*: the latency bench's pipeline (paced producer -> validator(s) -> gateway at a 25 ms tick ->
WebSocket client, bench/latency.py's ``pipeline_run``) at increasing rates; each step's p50 / p99, CPU per
process, the load generator's own CPU (it shares the cores: it must not be what runs out) and the machine's
load average. A step whose p99 misses is run again before the stepping stops (other work on these cores
can spoil one run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import (
    cpu_seconds,
    load_average,
    machine,
    progress,
    quiet_gc,
    reproduce,
    running,
    wait_for_quiet,
    waited_seconds,
)
from bench.cost import produce_due
from bench.latency import bare_hop, listen, summarize
from bench.throughput import prefill
from tracker.kafka import ensure_topics, security_args
from tracker.local.embedded import EmbeddedError
from tracker.local.processes import free_port
from tracker.settings import Settings
from tracker.up import LocalSystem, child_env

SAMPLE_S = 0.05
TICK_MS = 25
P99_TARGET_MS = 150.0  # the issue's: p99 <= 150 ms at a 25 ms tick
SPAN = 2  # samples either side over which a validator's CPU is read to call it working
BUSY = 0.10  # of a core: a validator using less is not working (joining, rebalancing, done)


@dataclass
class Contest:
    """One contender's run: samples of (time, positions produced, CPU seconds by process name)."""

    validators: int
    pings: int
    samples: list[tuple[float, int, dict[str, float]]] = field(default_factory=list)
    summaries: list[dict] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # the validators' time waiting for a core, per sample
    bench_cpu_s: float = 0.0
    load: float = 0.0

    def window(self) -> tuple[int, int]:
        """Indexes of the samples that bound the output: the last with nothing out, the first with all out."""
        final = self.samples[-1][1]
        first = next(i for i, (_, out, _) in enumerate(self.samples) if out > 0)
        last = next(i for i, (_, out, _) in enumerate(self.samples) if out >= final)
        return max(first - 1, 0), last

    def rate(self) -> float:
        start, end = self.window()
        return self.pings / (self.samples[end][0] - self.samples[start][0])

    def steady_rate(self) -> float:
        """Pings/s over the samples where every validator of the group was working (each used at least
        :data:`BUSY` of a core over the :data:`SPAN` samples around), which leaves out the start, a rebalance
        and the end; pings scaled from positions by the share of pings accepted."""
        final = self.samples[-1][1]
        names = [f"validator-{i + 1}" for i in range(self.validators)]
        out = seconds = 0.0
        start, end = self.window()
        for i in range(max(SPAN, start), min(len(self.samples) - SPAN, end)):
            (t0, _, c0), (t1, _, c1) = self.samples[i - SPAN], self.samples[i + SPAN]
            if all((c1[name] - c0[name]) / (t1 - t0) >= BUSY for name in names):
                (a, out_a, _), (b, out_b, _) = self.samples[i], self.samples[i + 1]
                out += out_b - out_a
                seconds += b - a
        return out / final * self.pings / seconds if seconds else 0.0

    def cpu(self) -> dict[str, float]:
        """Cores used per process over the window."""
        start, end = self.window()
        (t0, _, before), (t1, _, after) = self.samples[start], self.samples[end]
        return {name: (after[name] - before.get(name, 0.0)) / (t1 - t0) for name in after}

    def split(self) -> str:
        """Pings consumed by each validator: how the group shared the topic."""
        return " + ".join(f"{summary.get('consumed', 0):,}" for summary in self.summaries)

    def us_per_ping(self) -> float:
        """The validators' CPU over the window per ping: what a ping costs the group, however many cores it got."""
        cpu = self.cpu()
        return sum(cpu[f"validator-{i + 1}"] for i in range(self.validators)) / self.rate() * 1e6

    def waited(self) -> float:
        """Cores' worth of time the validators spent ready to run while other work had the cores."""
        start, end = self.window()
        return (self.waits[end] - self.waits[start]) / self.seconds()

    def seconds(self) -> float:
        start, end = self.window()
        return self.samples[end][0] - self.samples[start][0]


def _spawn_validators(settings: Settings, validators: int) -> list[subprocess.Popen]:
    env = child_env(settings.replace(log_level="WARNING"))
    argv = [sys.executable, "-m", "tracker", "validate", "--until-idle", "2"]
    return [
        subprocess.Popen(
            [*argv, "--validator-id", f"scale-{i + 1}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for i in range(validators)
    ]


async def _contend(
    settings: Settings, processes: list[subprocess.Popen], pings: int, fixed_pids: dict[str, int]
) -> Contest:
    contest = Contest(len(processes), pings)
    bootstrap = running(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **security_args(settings))
    await consumer.start()
    partitions = [TopicPartition(settings.positions_topic, p) for p in range(settings.positions_partitions)]
    names = {f"validator-{i + 1}": process.pid for i, process in enumerate(processes)}
    last: dict[str, float] = {}
    bench_before = time.process_time()
    try:
        while any(process.poll() is None for process in processes):
            out = sum((await consumer.end_offsets(partitions)).values())
            cpu = {}
            for name, pid in {**names, **fixed_pids}.items():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    last[name] = cpu_seconds(pid)  # an exited validator keeps its last reading
                cpu[name] = last.get(name, 0.0)
            contest.samples.append((time.monotonic(), out, cpu))
            contest.waits.append(waited_seconds(list(names.values())))
            await asyncio.sleep(SAMPLE_S)
        contest.bench_cpu_s = time.process_time() - bench_before
        contest.load = load_average()
    finally:
        await consumer.stop()
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process in processes:
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a validator exited {process.returncode}: {stderr.decode()[-1500:]}")
        contest.summaries.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    consumed = sum(summary.get("consumed", 0) for summary in contest.summaries)
    if consumed < pings:
        raise RuntimeError(f"the validators consumed {consumed:,} of {pings:,} pings")
    return contest


def contention(settings: Settings, pings: int, rounds: int, fixed_pids: dict[str, int]) -> dict[int, list[Contest]]:
    results: dict[int, list[Contest]] = {1: [], 2: []}
    for round_number in range(1, rounds + 1):
        for validators in (1, 2):
            namespace = f"scale{round_number}v{validators}."
            ns_settings = settings.replace(namespace=namespace)
            asyncio.run(ensure_topics(ns_settings))
            asyncio.run(prefill(ns_settings, pings, seed=42))
            progress(
                f"scaling round {round_number}/{rounds}: {validators} validator(s) on {pings:,} pings "
                f"(load average {wait_for_quiet():.1f})"
            )
            contest = asyncio.run(_contend(ns_settings, _spawn_validators(ns_settings, validators), pings, fixed_pids))
            results[validators].append(contest)
            cpu = contest.cpu()
            progress(
                f"  {contest.rate():,.0f} pings/s ({contest.steady_rate():,.0f} while all work; {contest.split()}), "
                + ", ".join(f"{name} {100 * cores:.0f} %" for name, cores in cpu.items())
                + f", load {contest.load:.1f}"
            )
    return results


@dataclass
class Step:
    rate: int
    validators: int
    p50: float
    p99: float
    missing: int
    cpu: dict[str, float]  # cores per process over the step, "load generator" included
    load: float
    waited: float  # share of the step the pipeline's own processes spent waiting for a core
    sent_rate: float = 0.0  # pings/s the load generator sent
    bare_p50: float = 0.0  # the baseline: a bare produce -> consume hop at the same rate, right after
    bare_p99: float = 0.0

    @property
    def met(self) -> bool:
        return self.p99 <= P99_TARGET_MS and self.missing == 0 and self.sent_rate >= 0.95 * self.rate


async def pipeline_due(settings: Settings, base_url: str, rate: int, duration_s: float) -> dict:
    """bench/latency.py's ``pipeline_run`` with a producer that sends every ping due (bench/cost.py's
    ``produce_due``), so that a slow broker ack does not quietly lower the rate asked for."""
    received: dict[tuple[str, int], int] = {}
    stop = asyncio.Event()
    listener = asyncio.create_task(listen(base_url.replace("http", "ws") + "/ws", received, stop))
    await asyncio.sleep(1.0)
    sent = await produce_due(settings, settings.location_topic, rate, duration_s)
    await asyncio.sleep(2.0)
    stop.set()
    await listener
    return summarize(sent, received) | {"sent": len(sent)}


def one_step(
    settings: Settings, rate: int, validators: int, duration_s: float, fixed_pids: dict[str, int], tag: str
) -> Step:
    run_settings = settings.replace(namespace=f"step{tag}v{validators}r{rate}.", tick_ms=TICK_MS, http_port=free_port())
    asyncio.run(ensure_topics(run_settings))
    with tempfile.TemporaryDirectory() as logs, LocalSystem(run_settings, Path(logs), validators=validators) as system:
        time.sleep(3)  # let the validators join their group
        pids = {**fixed_pids, **{name: process.pid for name, process in system.children}}
        own = [process.pid for _, process in system.children]
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        waited_before = waited_seconds(own)
        bench_before = time.process_time()
        started = time.monotonic()
        with quiet_gc():
            result = asyncio.run(pipeline_due(run_settings, system.base_url, rate, duration_s))
        elapsed = time.monotonic() - started
        cpu = {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}
        cpu["load generator"] = (time.process_time() - bench_before) / elapsed
        waited = (waited_seconds(own) - waited_before) / elapsed
        load = load_average()
    with quiet_gc():
        bare = asyncio.run(bare_hop(run_settings, rate, duration_s))
    return Step(
        rate,
        validators,
        result["p50"],
        result["p99"],
        result["missing"],
        cpu,
        load,
        waited,
        result["sent"] / duration_s,
        bare["p50"],
        bare["p99"],
    )


def step_load(
    settings: Settings, rates: list[int], validators: int, duration_s: float, fixed_pids: dict[str, int]
) -> list[Step]:
    """Each rate in turn; a miss is run again (twice more if the load average was above the core count), and a
    rate that misses every time ends the stepping."""
    steps: list[Step] = []
    for rate in rates:
        attempt = 0
        while True:
            attempt += 1
            progress(
                f"step load: {rate:,} pings/s, {validators} validator(s), attempt {attempt} "
                f"(load average {wait_for_quiet():.1f})"
            )
            try:
                step = one_step(settings, rate, validators, duration_s, fixed_pids, f"{attempt}")
            except EmbeddedError as exc:  # a process that did not start in time on the loaded machine
                progress(f"  not measured: {exc}")
                if attempt >= 3:
                    return steps
                continue
            steps.append(step)
            progress(
                f"  p50 {step.p50:.0f} ms, p99 {step.p99:.0f} ms, missing {step.missing:,}, load {step.load:.1f}; "
                + ", ".join(f"{name} {100 * cores:.0f} %" for name, cores in step.cpu.items())
            )
            if step.met or attempt >= (3 if step.load > (os.cpu_count() or 1) else 2):
                break
        if not step.met:
            break  # missed every time: the next rate would miss too
    return steps


def highest_held(steps: list[Step]) -> int | None:
    """The highest rate held below the first rate that missed twice (a rate held on its second try counts)."""
    held = None
    for rate in dict.fromkeys(step.rate for step in steps):
        attempts = [step for step in steps if step.rate == rate]
        if any(step.met for step in attempts):
            held = rate
        else:
            break
    return held


def _pct(cores: float) -> str:
    return f"{100 * cores:.0f} %"


def report(
    broker: str,
    pings: int,
    rounds: int,
    contests: dict[int, list[Contest]],
    steps: dict[int, list[Step]],
    duration_s: float,
    bench_args: str,
) -> str:
    def median(validators: int, what) -> float:
        return statistics.median(what(contest) for contest in contests[validators])

    rows = []
    for validators in (1, 2):
        runs = contests[validators]
        cpu = [contest.cpu() for contest in runs]

        def med_cpu(name: str, cpu: list[dict[str, float]] = cpu) -> float:
            return statistics.median(c.get(name, 0.0) for c in cpu)

        each_validator = " + ".join(_pct(med_cpu(f"validator-{i + 1}")) for i in range(validators))
        rows.append(
            f"| {validators} | {median(validators, Contest.rate):,.0f} | "
            f"{', '.join(f'{c.rate():,.0f}' for c in runs)} | {median(validators, Contest.steady_rate):,.0f} | "
            f"{each_validator} | {median(validators, Contest.us_per_ping):.1f} | "
            f"{_pct(median(validators, Contest.waited))} | {_pct(med_cpu('broker'))} | {_pct(med_cpu('redis'))} | "
            f"{_pct(statistics.median(c.bench_cpu_s / c.seconds() for c in runs))} | "
            f"{'; '.join(c.split() for c in runs)} | "
            f"{', '.join(f'{c.load:.1f}' for c in runs)} |"
        )
    ratio = median(2, Contest.rate) / median(1, Contest.rate)
    cost_ratio = median(2, Contest.us_per_ping) / median(1, Contest.us_per_ping)
    steady_ratio = median(2, Contest.steady_rate) / median(1, Contest.steady_rate)
    total_cpu = {
        validators: statistics.median(sum(c.cpu().values()) for c in contests[validators]) for validators in (1, 2)
    }
    cores = os.cpu_count() or 1

    step_tables = []
    for validators, rows_of in steps.items():
        lines = []
        for step in rows_of:
            validator_cpu = " + ".join(_pct(cores) for name, cores in step.cpu.items() if name.startswith("validator-"))
            lines.append(
                f"| {step.rate:,} | {step.sent_rate:,.0f} | {step.p50:.0f} | {step.p99:.0f} | {step.missing:,} | "
                f"{validator_cpu} | "
                f"{_pct(step.cpu.get('gateway', 0.0))} | {_pct(step.cpu.get('broker', 0.0))} | "
                f"{_pct(step.cpu.get('redis', 0.0))} | {_pct(step.cpu['load generator'])} | "
                f"{_pct(sum(step.cpu.values()))} | {100 * step.waited:.0f} % | {step.load:.1f} | "
                f"{step.bare_p50:.0f} / {step.bare_p99:.0f} | "
                f"{'✅' if step.met else '❌'} |"
            )
        held = highest_held(rows_of)
        step_tables.append(
            f"""**{validators} validator{"s" if validators > 1 else ""}** + 1 gateway: highest rate held with p99 ≤ \
{P99_TARGET_MS:.0f} ms: **{f"{held:,} pings/s" if held else "none of the steps"}**.

| pings/s | sent/s | p50 (ms) | p99 (ms) | missing | validator CPU | gateway | broker | redis | load generator | \
all | pipeline waiting for a core | load average | bare hop p50 / p99 (ms) | p99 ≤ {P99_TARGET_MS:.0f} |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(lines)}"""
        )
    return f"""## Validators in parallel, and the highest rate held

**1 vs 2 validators.** {pings:,} pre-filled pings (2,000 couriers, 5 % bad, 1 % duplicates, as in
"Validator throughput"), {rounds} round{"s" if rounds != 1 else ""}, median; each contender reads its own identical
copy of the topic in its own consumer group on the same broker ({broker}), the two alternating. The rate is
measured from outside, alike for both: the end offsets of the contender's `courier-positions`, polled every
{SAMPLE_S * 1000:.0f} ms, from the first accepted position to the last (a rebalance when the second validator
joins is in that window: it is what a group pays). *While all work*: pings/s within that window over the
samples in which every validator of the group was working (each used ≥ {BUSY:.0%} of a core over the
{(2 * SPAN + 1) * SAMPLE_S * 1000:.0f} ms around), which leaves out a rebalance and the tail, when some of them
wait. CPU in % of one core over the window, from `/proc`; "validator µs per ping": all the validators' CPU
over the window per ping, what a ping costs the group however many cores it got; "waiting for a core": the
validators' time ready to run while other work had the cores (`/proc/PID/schedstat`), in % of one core;
"bench": this process, polling (the pre-fill is done before the window); load average: 1 minute, at the end.

| validators | median pings/s | each round | pings/s while all work | validator CPU | validator µs per ping | \
validators waiting for a core | broker | redis | bench | pings consumed by each validator, each round | load average |
|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

**Ratio** 2 / 1 validators: **{ratio:.2f}** over the whole window, **{steady_ratio:.2f}** while all work.
This machine has **{cores} cores**, shared with other engineers' work: one validator with the broker and Redis
it drives got {total_cpu[1]:.1f} of them ({total_cpu[2]:.1f} with two), and waited for more: a second
validator can only take what the first leaves idle, so this ratio says what a second process gains *here*, a
floor set by the cores, not what it gains on cores of its own. What does not depend on the cores is the CPU a
ping costs: with two validators it is **{cost_ratio:.2f}×** what it is with one, so two validators on cores of
their own would do about {2 / cost_ratio:.2f}× one's rate, if the broker and Redis keep up. The sizing guide
(docs/sizing.md) counts validators from CPU per ping ("Cost per ping") for that reason.

**Step load.** The whole pipeline as in "End-to-end latency" (paced producer → validator(s) → gateway with a
{TICK_MS} ms tick → one WebSocket client that sees every courier), {duration_s:g} s per step with a fresh
validator and gateway, one ping per courier per second, first 3 s dropped. A step whose p99 misses (or loses
pings) is run again (twice more when the load average was above the core count), and a rate that misses every
time ends the stepping. CPU in % of one core over the step; "load generator":
the bench process that produces the pings and is the WebSocket client (it must not be what runs out); "waiting
for a core": the time the validators and the gateway were ready to run while other work had the cores
(`/proc/PID/schedstat`), in % of the step; load average: 1 minute, at the step's end (other engineers' work
shares these cores). Baseline, in the same step: a bare aiokafka produce → consume hop at the same rate on
the same broker, right after the pipeline (bench/latency.py's `bare_hop`; the pipeline makes two hops plus
validation and up to one tick): when the bare hop alone is slow, the machine, not the pipeline, set the step.
Each run (and each contender above) first waits up to 30 s for the load average to fall under the core count
+ 1.

{(chr(10) * 2).join(step_tables)}

Machine: {machine()}. {broker[0].upper() + broker[1:]} and embedded Redis, all processes on these cores.
Reproduce: {reproduce(broker, bench_args)}.
"""


def run(
    settings: Settings,
    broker: str,
    fixed_pids: dict[str, int],
    *,
    pings: int,
    rounds: int,
    rates: list[int],
    step_validators: list[int],
    duration_s: float,
    bench_args: str,
) -> str:
    contests = contention(settings, pings, rounds, fixed_pids)
    steps = {
        validators: step_load(settings, rates, validators, duration_s, fixed_pids) for validators in step_validators
    }
    return report(broker, pings, rounds, contests, steps, duration_s, bench_args)
