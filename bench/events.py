"""Event decision cost per ping, against the validator's judging cost per ping, in one process, same run.

Baseline: what the validator's hot loop does per ping on the CPU (``rules.parse`` + ``rules.judge`` against
the courier's last fix, as tracker/validator.py does), over simulator pings. Measured: what the events
worker does per position on the CPU, ``EventWorker.decide`` on polled batches of the same pings' positions
(decode, the zones of the batch, the fold, event ids, the states to write back), with the
built-in zones and with 1,000 and 10,000 generated zones tiling the service area (at 1,000, a courier
crosses a boundary every two minutes or so). The broker and Redis round trips of both are left out: each
runs on its own consumer, so what the events cost the validator is nothing, and what matters is that the
events worker keeps up with a validator: a ratio under 1. CPU time of this process (``process_time``), so
that other work on the machine weighs less on either side.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import cast

import msgspec
import shapely

from bench.common import machine, progress, quiet_gc, reproduce
from simulator import SimConfig, iter_pings
from tracker import rules
from tracker.events.decide import PartitionFold
from tracker.events.worker import EventWorker
from tracker.events.zones import Zones
from tracker.geo import ServiceArea, load_service_area
from tracker.kafka import Producer, partition_for
from tracker.models import LastFix, Ping, Position, Record
from tracker.settings import Settings
from tracker.store import Store

BATCH = 5000  # the validator's and the worker's default max batch (TRACKER_MAX_BATCH)
# Few enough couriers that each is followed for minutes of event time (200,000 pings: 400 s each), so zones
# are crossed, and confirmed after the default 30 s dwell, as in a steady run.
COURIERS = 500


def grid_zones(area: ServiceArea, count: int) -> Zones:
    """``count`` rectangles tiling the service area's bounding box (rows × columns as near square as fits)."""
    west, south, east, north = area.bounds
    rows = max(1, round((count * (north - south) / (east - west)) ** 0.5))
    columns = -(-count // rows)
    width, height = (east - west) / columns, (north - south) / rows
    cells = [
        (
            f"zone-{row:03d}-{column:03d}",
            shapely.box(
                west + column * width, south + row * height, west + (column + 1) * width, south + (row + 1) * height
            ),
        )
        for row in range(rows)
        for column in range(columns)
    ]
    return Zones(cells[:count])


def judged(settings: Settings, area: ServiceArea, pings: int) -> tuple[list[bytes], list[Ping]]:
    """Simulator pings (no faults, no repeats) and the ones the validator would accept, in order."""
    config = SimConfig(
        couriers=COURIERS, count=pings, interval_s=1.0, bad_rate=0.0, duplicate_rate=0.0, seed=7, burst=True
    )
    values = [ping.value for ping in iter_pings(config, time.time_ns() // 1_000_000, settings=settings)]
    limits, accepted = rules.Limits.from_settings(settings), []
    fixes: dict[str, LastFix] = {}
    for value in values:
        ping = rules.parse(value, limits)
        if (
            isinstance(ping, Ping)
            and rules.judge(ping, fixes.get(ping.partner_id), ping.ts_ms + 50, limits, area).accepted
        ):
            fixes[ping.partner_id] = LastFix(ping.ts_ms, ping.lat, ping.lon)
            accepted.append(ping)
    return values, accepted


def judge_seconds(settings: Settings, area: ServiceArea, values: list[bytes]) -> float:
    """The baseline: parse and judge every ping, as the validator's hot loop does (CPU only)."""
    limits, fixes = rules.Limits.from_settings(settings), cast(dict[str, LastFix], {})
    parse, judge = rules.parse, rules.judge
    started = time.process_time()
    for value in values:
        ping = parse(value, limits)
        if type(ping) is Ping and judge(ping, fixes.get(ping.partner_id), ping.ts_ms + 50, limits, area).accepted:
            fixes[ping.partner_id] = LastFix(ping.ts_ms, ping.lat, ping.lon)
    return time.process_time() - started


def batches(settings: Settings, accepted: list[Ping]) -> Iterator[dict[tuple[str, int], list[Record]]]:
    """The accepted pings' positions, as the worker's polls would hand them over: by partition, in batches."""
    topic, count = settings.positions_topic, settings.positions_partitions
    encode, offsets = msgspec.json.Encoder().encode, [0] * count
    for start in range(0, len(accepted), BATCH):
        polled: dict[tuple[str, int], list[Record]] = {}
        for ping in accepted[start : start + BATCH]:
            key = ping.partner_id.encode()
            partition = partition_for(key, count)
            value = encode(Position.from_ping(ping, ping.ts_ms + 50))
            polled.setdefault((topic, partition), []).append(
                Record(topic, partition, offsets[partition], 0, key, value, ())
            )
            offsets[partition] += 1
        yield polled


def decide_seconds(
    settings: Settings, zones: Zones, polls: list[dict[tuple[str, int], list[Record]]]
) -> tuple[float, int]:
    """Time ``EventWorker.decide`` over every batch, from empty state (CPU only: no broker, no Redis)."""
    worker = EventWorker(settings, zones, cast(Store, None), cast(Producer, None))
    for partition in range(settings.positions_partitions):
        worker.progress[partition] = -1
        worker.folds[partition] = PartitionFold(worker.params)
    events = 0
    started = time.process_time()
    for polled in polls:
        events += len(worker.decide(polled).events)
    return time.process_time() - started, events


def run(settings: Settings, pings: int = 200_000, rounds: int = 3, broker: str = "embedded Apache Kafka") -> str:
    area = load_service_area(settings.service_area_file)
    values, accepted = judged(settings, area, pings)
    polls = list(batches(settings, accepted))
    contenders, built_s = [], {}
    for name, make in (
        ("built-in", lambda: Zones.of_area(area)),
        ("1,000", lambda: grid_zones(area, 1000)),
        ("10,000", lambda: grid_zones(area, 10_000)),
    ):
        started = time.process_time()
        contenders.append((name, make()))
        built_s[name] = time.process_time() - started
    judge_us: list[float] = []
    decide_us: dict[str, list[float]] = {name: [] for name, _ in contenders}
    events: dict[str, int] = {}
    with quiet_gc():
        for round_number in range(1, rounds + 1):
            progress(f"events round {round_number}/{rounds}: judging {len(values):,} pings, deciding {len(accepted):,}")
            judge_us.append(judge_seconds(settings, area, values) / len(values) * 1e6)
            for name, zones in contenders:
                seconds, made = decide_seconds(settings, zones, polls)
                decide_us[name].append(seconds / len(accepted) * 1e6)
                events[name] = made
    baseline = statistics.median(judge_us)
    each = ", ".join(f"{us:.2f}" for us in judge_us)
    rows = [f"| validator: parse + judge (baseline) | — | {baseline:.2f} | {each} | 1.00 | — | — |"]
    for name, zones in contenders:
        median = statistics.median(decide_us[name])
        rows.append(
            f"| events: decide ({name} zones) | {len(zones):,} | {median:.2f} | "
            f"{', '.join(f'{us:.2f}' for us in decide_us[name])} | {median / baseline:.2f} | {events[name]:,} | "
            f"{built_s[name]:.2f} s |"
        )
    table = "\n".join(rows)
    thousand = statistics.median(decide_us["1,000"]) / baseline
    return f"""## Event decision cost per ping

{len(values):,} simulator pings ({COURIERS:,} couriers, every 1 s, no faults), {rounds} rounds, median; CPU time
per ping in one process, no broker or Redis (each side's round trips are its own consumer's, left out).
Baseline: the validator's judging (`rules.parse` + `rules.judge`, its hot loop). Measured: the events
worker's `decide` on the accepted pings' positions in batches of {BATCH:,}: decode; the zones of the batch
(a raster for points in cells no zone boundary crosses, one STR-tree query for the rest); the fold; event
ids; the courier states to write back. Zone dwell {settings.zone_dwell_s:g} s. "Zones built": the CPU time
to load the zones, once, when `tracker events` starts.

| what | zones | median µs/ping | each round | ratio to judging | events made | zones built |
|---|---|---|---|---|---|---|
{table}

**Ratio** at 1,000 zones: **{thousand:.2f}** of the validator's judging cost per ping. The events worker is a
consumer of its own, so the validator's throughput is unchanged; this is the CPU the events add per ping
beside it. Target: < 1 at 1,000 zones: deciding costs less than judging, so one worker keeps up with what a
validator accepts (each also pays for its consumer and its Redis writes).

Machine: {machine()}.
Reproduce: {reproduce(broker, "--only events")}.
"""
