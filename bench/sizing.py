"""What a fleet takes, multiplied out from measured costs per ping. Pure: no I/O, so it is tested.

``bench/cost.py`` measures each process's CPU microseconds per ping and the bytes a ping leaves on the broker,
and the fan-out section of BENCHMARKS.md what a frame to a dispatcher costs; :func:`plan` turns those into
processes, shards, partitions and brokers for a target fleet, and :func:`render` into the table of
docs/sizing.md, each line with its arithmetic. Nothing here is a guess except the stated assumptions of
:class:`Target` (how busy a core may be, a broker machine's cores, the partition headroom).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Costs:
    """Measured costs (µs of CPU per ping, idle subtracted, unless said otherwise)."""

    validator_us: float
    redis_us: float  # the validator's writes and the gateway's and events worker's reads
    broker_us: float  # one replica
    gateway_input_us: float  # one gateway process following every position (with one client)
    events_us: float
    ingest_us: float  # one fix per HTTP request
    broker_bytes: float  # log bytes per ping over every topic, one replica
    redis_bytes_per_courier: float
    frame_us: float | None  # a gateway's CPU per frame delivered to a dispatcher (fan-out section)
    fanout_couriers: int | None  # the couriers the fan-out section's frames were cut from
    measured_at: str = ""
    ingest_batch_us: float | None = None  # per ping, phones posting batches (the ingest section)
    ingest_batch_pings: int | None = None


@dataclass(frozen=True)
class Target:
    couriers: int = 200_000
    interval_s: float = 4.0
    dispatchers: int = 2_000
    tick_ms: int = 200  # the gateway's default tick: 5 frames a second per dispatcher
    utilisation: float = 0.6  # how busy a core (a Python process, a Redis) may be at the target rate
    replication: int = 3
    broker_cores: int = 4  # cores of one broker machine
    partition_headroom: int = 4  # partitions for this many times the processes needed now

    @property
    def rate(self) -> float:
        return self.couriers / self.interval_s

    @property
    def frames_per_s(self) -> float:
        return self.dispatchers * 1000 / self.tick_ms


@dataclass(frozen=True)
class Line:
    what: str
    arithmetic: str
    result: str


@dataclass(frozen=True)
class Plan:
    target: Target
    lines: list[Line]
    validators: int
    events_workers: int
    ingests: int
    redis_shards: int
    partitions: int
    brokers: int
    gateways: int | None  # None: a gateway process cannot follow the fleet's positions at all
    fan_out_processes: int | None  # with the input read once for several fan-out processes
    total_cores: float
    bottleneck: str


@dataclass(frozen=True)
class FrameCost:
    frame_us: float  # marginal CPU per frame delivered
    input_us: float  # the process's cost per position followed, with no client
    couriers: int


_SWEEP_ROW = re.compile(
    r"^\| ([\d,]+) \| 1 \| [\d.]+ / ([\d.]+) \| \d+ % \| [^|]+\| [^|]+\| (\d+) % \| .*\| (✅|❌) \|$", re.MULTILINE
)
_COURIERS = re.compile(r"with ([\d,]+) couriers pinging")


def fanout_frame_cost(benchmarks: str) -> FrameCost | None:
    """From BENCHMARKS.md's fan-out section: the slope of one gateway process's CPU against frames delivered
    between the fewest and the most clients of its sweep that met the target (both keep up, so the difference
    is frames), and the intercept, per position followed. None without such a section."""
    start, end = benchmarks.find("<!-- bench:fanout -->"), benchmarks.find("<!-- /bench:fanout -->")
    if start < 0 or end < 0:
        return None
    section = benchmarks[start:end]
    couriers = _COURIERS.search(section)
    rows = [
        (int(clients.replace(",", "")), float(median), float(cpu) / 100)
        for clients, median, cpu, met in _SWEEP_ROW.findall(section)
        if met == "✅"
    ]
    if couriers is None or len({clients for clients, _, _ in rows}) < 2:
        return None
    low, high = min(rows), max(rows)
    frames = (high[0] * high[1]) - (low[0] * low[1])
    if frames <= 0:
        return None
    slope = (high[2] - low[2]) / frames  # cores per frame/s
    count = int(couriers.group(1).replace(",", ""))
    intercept = low[2] - low[0] * low[1] * slope
    return FrameCost(frame_us=slope * 1e6, input_us=intercept / count * 1e6, couriers=count)


_INGEST_BATCH_ROW = re.compile(
    r"^\| native batches of (\d+) \| `tracker ingest` \| [\d,]+ \| [\d,]+ \| [^|]+\| \d+ % \| ([\d.]+) \|", re.MULTILINE
)


def ingest_batch_cost(benchmarks: str) -> tuple[int, float] | None:
    """(pings per request, the ingest's CPU µs per ping) for native batches, from BENCHMARKS.md's ingest
    section; None without it."""
    found = _INGEST_BATCH_ROW.search(benchmarks)
    return (int(found.group(1)), float(found.group(2))) if found else None


def _tables(section: str) -> list[list[list[str]]]:
    """The markdown tables of ``section``: each a list of rows (header first, the ``|---|`` line left out), each
    row a list of cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def _number(cell: str) -> float:
    return float(cell.replace(",", "").split()[0])


def parse_costs(benchmarks: str) -> Costs | None:
    """The :class:`Costs` from BENCHMARKS.md's "Cost per ping" section as bench/cost.py writes it (its µs per
    ping and bytes tables: the highest load straight to Kafka and the highest through the ingest), with the
    fan-out and ingest sections' figures; None without that section. So the guide can be regenerated from the
    committed figures (``python -m bench.sizing``) without running the benchmarks again."""
    start, end = benchmarks.find("<!-- bench:cost -->"), benchmarks.find("<!-- /bench:cost -->")
    if start < 0 or end < 0:
        return None
    tables = _tables(benchmarks[start:end])
    per_ping = next((t for t in tables if t[0][:3] == ["row", "pings/s", "broker"] and "%" not in t[1][2]), None)
    stored = next((t for t in tables if t[0][:2] == ["row", "pings sent"]), None)
    if per_ping is None or stored is None:
        return None
    names = per_ping[0]
    kafka = max((r for r in per_ping[1:] if "to Kafka" in r[0]), key=lambda r: _number(r[1]))
    ingest = max((r for r in per_ping[1:] if "through the ingest" in r[0]), key=lambda r: _number(r[1]))
    us = {name: _number(cell) for name, cell in zip(names[2:], kafka[2:], strict=True)}
    bytes_row = next(r for r in stored[1:] if r[0] == kafka[0])
    frame = fanout_frame_cost(benchmarks)
    batches = ingest_batch_cost(benchmarks)
    return Costs(
        validator_us=us["validator"],
        redis_us=us["redis"],
        broker_us=us["broker"],
        gateway_input_us=us["gateway"],
        events_us=us["events"],
        ingest_us=_number(ingest[names.index("ingest")]),
        broker_bytes=_number(bytes_row[stored[0].index("all (bytes/ping)")]),
        redis_bytes_per_courier=_number(bytes_row[-1]) * 1024,
        frame_us=frame.frame_us if frame else None,
        fanout_couriers=frame.couriers if frame else None,
        measured_at=f"{kafka[0]}; {ingest[0]}",
        ingest_batch_pings=batches[0] if batches else None,
        ingest_batch_us=batches[1] if batches else None,
    )


def processes(cores: float, utilisation: float) -> int:
    """Single-threaded processes (or Redis shards) for ``cores`` of work, none busier than ``utilisation``."""
    return max(1, math.ceil(cores / utilisation - 1e-9))


def partitions_for(consumers: int, shards: int, headroom: int) -> int:
    """Partitions of ``location-updates`` (and ``courier-positions``): at least ``headroom`` times the most
    consumers of a group (validators, events workers), so the group can grow that much without repartitioning
    (which would move couriers between partitions, and so between Redis shards), never fewer than the default 12,
    and a multiple of the Redis shards, so that each shard holds the keys of as many partitions."""
    floor = max(headroom * consumers, 12)
    return shards * math.ceil(floor / shards)


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def plan(costs: Costs, target: Target) -> Plan:
    rate, util = target.rate, target.utilisation
    lines = [Line("pings/s", f"{target.couriers:,} couriers / {target.interval_s:g} s", f"**{_n(rate)}**")]

    def cores(us: float) -> float:
        return us * rate / 1e6

    validator_cores = cores(costs.validator_us)
    validators = processes(validator_cores, util)
    lines.append(
        Line(
            "validators",
            f"{costs.validator_us:.1f} µs × {_n(rate)}/s = {validator_cores:.2f} cores; / {util:.0%} per process",
            f"**{validators}**",
        )
    )
    events_cores = cores(costs.events_us)
    events_workers = processes(events_cores, util)
    lines.append(
        Line(
            "events workers",
            f"{costs.events_us:.1f} µs × {_n(rate)}/s = {events_cores:.2f} cores; / {util:.0%}",
            f"**{events_workers}**",
        )
    )
    ingest_cores = cores(costs.ingest_us)
    ingests = processes(ingest_cores, util)
    lines.append(
        Line(
            "ingest processes (one fix per request)",
            f"{costs.ingest_us:.1f} µs × {_n(rate)}/s = {ingest_cores:.2f} cores; / {util:.0%}",
            f"**{ingests}**",
        )
    )
    if costs.ingest_batch_us is not None:
        batch_cores = cores(costs.ingest_batch_us)
        lines.append(
            Line(
                f"or ingest processes, phones posting batches of {costs.ingest_batch_pings}",
                f"{costs.ingest_batch_us:.1f} µs (the ingest section) × {_n(rate)}/s = {batch_cores:.2f} cores; "
                f"/ {util:.0%}",
                f"{processes(batch_cores, util)}",
            )
        )
    redis_cores = cores(costs.redis_us)
    shards = processes(redis_cores, util)
    memory_gb = target.couriers * costs.redis_bytes_per_courier / 1e9
    lines.append(
        Line(
            "Redis shards (Cluster masters)",
            f"{costs.redis_us:.1f} µs × {_n(rate)}/s = {redis_cores:.2f} cores of one thread; / {util:.0%} per shard",
            f"**{shards}** ({memory_gb:.1f} GB in all at the measured "
            f"{costs.redis_bytes_per_courier / 1024:.1f} KiB per courier)",
        )
    )
    consumers = max(validators, events_workers)
    partitions = partitions_for(consumers, shards, target.partition_headroom)
    lines.append(
        Line(
            "partitions (location-updates, courier-positions)",
            f"a multiple of {shards} shard(s) ≥ max({target.partition_headroom} × {consumers} consumers, 12)",
            f"**{partitions}**",
        )
    )
    broker_cores = cores(costs.broker_us) * target.replication
    disk_mb_s = costs.broker_bytes * rate * target.replication / 1e6
    brokers = max(target.replication, processes(broker_cores, util * target.broker_cores))
    lines.append(
        Line(
            "brokers",
            f"{costs.broker_us:.1f} µs × {_n(rate)}/s × RF {target.replication} = {broker_cores:.2f} cores; "
            f"{costs.broker_bytes:.0f} B × {_n(rate)}/s × {target.replication} = {disk_mb_s:.1f} MB/s written; "
            f"≥ RF, / ({target.broker_cores} cores × {util:.0%})",
            f"**{brokers}** ({broker_cores / brokers:.2f} cores and {disk_mb_s / brokers:.1f} MB/s each, "
            f"{disk_mb_s * 86400 / 1e6 / brokers:.2f} TB/day each before retention)",
        )
    )
    input_cores = cores(costs.gateway_input_us)
    lines.append(
        Line(
            "gateway: following every position",
            f"{costs.gateway_input_us:.1f} µs × {_n(rate)}/s",
            f"{input_cores:.2f} cores per gateway process",
        )
    )
    gateways: int | None = None
    fan_out: int | None = None
    frame_cores = 0.0
    if costs.frame_us is not None:
        frame_cores = target.frames_per_s * costs.frame_us / 1e6
        lines.append(
            Line(
                "gateway: frames",
                f"{target.dispatchers:,} dispatchers × {1000 / target.tick_ms:g} frames/s × {costs.frame_us:.0f} µs",
                f"{frame_cores:.2f} cores",
            )
        )
        if input_cores < util:
            per_process = (util - input_cores) / (costs.frame_us / 1e6)
            gateways = math.ceil(target.frames_per_s / per_process - 1e-9)
            lines.append(
                Line(
                    "gateway processes",
                    f"({util:.0%} − {input_cores:.2f}) / {costs.frame_us:.0f} µs = {_n(per_process)} frames/s each",
                    f"**{gateways}** ({input_cores * gateways + frame_cores:.2f} cores)",
                )
            )
        fan_out = processes(frame_cores, util)
        readers = processes(input_cores, util)
        lines.append(
            Line(
                "or, positions read and applied once for several fan-out processes (not built: the relay of "
                "`--workers N` reads Kafka once, but each worker still applies every position)",
                f"frames {frame_cores:.2f} cores / {util:.0%}; input {input_cores:.2f} cores / {util:.0%}, "
                "split by partition over readers",
                f"{fan_out} fan-out + {readers} reader process(es)",
            )
        )
    gateway_cores = input_cores * gateways + frame_cores if gateways is not None else input_cores + frame_cores
    total = validator_cores + events_cores + ingest_cores + redis_cores + broker_cores + gateway_cores
    lines.append(
        Line(
            "cores busy at the target rate",
            "validators + events + ingest + Redis + brokers (× RF) + gateways",
            f"**{total:.1f}**",
        )
    )
    return Plan(
        target,
        lines,
        validators,
        events_workers,
        ingests,
        shards,
        partitions,
        brokers,
        gateways,
        fan_out,
        total,
        bottleneck(costs, target, input_cores, validator_cores, redis_cores, partitions),
    )


def bottleneck(
    costs: Costs, target: Target, input_cores: float, validator_cores: float, redis_cores: float, partitions: int
) -> str:
    """What stops growth first: of the limits no added process lifts, the one the fleet reaches soonest."""
    limits = {
        "a gateway process follows every position on one core": 1.0 / input_cores if input_cores else math.inf,
        f"validators ≤ partitions ({partitions})": partitions * 1.0 / validator_cores if validator_cores else math.inf,
        f"Redis shards ≤ partitions ({partitions}; keys are hash-tagged per partition)": (
            partitions * 1.0 / redis_cores if redis_cores else math.inf
        ),
    }
    what, growth = min(limits.items(), key=lambda item: item[1])
    fleet = target.couriers * growth
    if growth < 1:
        return (
            f"**{what}**: at {target.rate:,.0f} pings/s that is {input_cores:.2f} cores, so no gateway process can "
            f"keep up with the target fleet as built (each reads all of `courier-positions`); it holds about "
            f"{fleet:,.0f} couriers at a {target.interval_s:g} s interval."
        )
    return (
        f"**{what}**: reached at {growth:.1f}× the target rate (about {fleet:,.0f} couriers every "
        f"{target.interval_s:g} s), with every core at 100 %."
    )


def render(plan: Plan, costs: Costs) -> str:
    target = plan.target
    rows = "\n".join(f"| {line.what} | {line.arithmetic} | {line.result} |" for line in plan.lines)
    frame = (
        f"{costs.frame_us:.0f} µs per frame (the fan-out section's one-process sweep, at {costs.fanout_couriers:,} "
        "couriers)"
        if costs.frame_us is not None
        else "no frame cost: BENCHMARKS.md has no fan-out sweep with two rows that met the target"
    )
    return f"""Generated by `make bench BENCH_ARGS="--only cost"` (bench/cost.py, bench/sizing.py), or by
`python -m bench.sizing` from the figures already in BENCHMARKS.md: its "Cost per ping" section
({costs.measured_at}) and {frame}. Target:
{target.couriers:,} couriers pinging every {target.interval_s:g} s, {target.dispatchers:,} dispatchers at a
{target.tick_ms} ms tick; no process busier than {target.utilisation:.0%} of a core; replication factor
{target.replication}; broker machines of {target.broker_cores} cores.

{headline(plan)}

| what | arithmetic | result |
|---|---|---|
{rows}

Next bottleneck: {plan.bottleneck}
"""


def headline(plan: Plan) -> str:
    """The answer in one paragraph, from the plan."""
    target = plan.target
    gateways = (
        f"{plan.gateways} gateway processes"
        if plan.gateways is not None
        else "gateways as built cannot follow the fleet (see the next bottleneck); with the positions read and "
        f"applied once, {plan.fan_out_processes} fan-out processes"
    )
    return (
        f"**Answer**: {target.rate:,.0f} pings/s take {plan.validators} validators, {plan.events_workers} events "
        f"workers, {plan.redis_shards} Redis shards, {plan.partitions} partitions and {plan.brokers} brokers "
        f"(replication {target.replication}); {plan.ingests} ingest processes when every fix is its own request; "
        f"{gateways} for {target.dispatchers:,} dispatchers; about {plan.total_cores:.0f} cores busy in all."
    )


def main() -> None:
    """``python -m bench.sizing``: rewrite docs/sizing.md's table from the figures in BENCHMARKS.md."""
    from bench.common import REPORT, ROOT, write_section

    costs = parse_costs(REPORT.read_text())
    if costs is None:
        raise SystemExit("BENCHMARKS.md has no cost section: run make bench BENCH_ARGS='--only cost'")
    write_section("sizing", render(plan(costs, Target()), costs), ROOT / "docs" / "sizing.md")
    print(f"wrote {ROOT / 'docs' / 'sizing.md'}")


if __name__ == "__main__":
    main()
