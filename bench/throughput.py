"""Validator throughput: one ``tracker validate`` process against a bare aiokafka pass-through.

Each contender gets its own copy of the same pre-filled topic (same seed, same bytes) on the same embedded
broker and reads it once in its own consumer group; they run one after the other, alternating, so that
noise from the shared machine falls on both.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import redis

from bench.common import machine, progress, redis_cpu_s, reproduce, run_measured, running
from simulator import SimConfig, iter_pings
from tracker.kafka import Producer, ensure_topics
from tracker.models import OutRecord
from tracker.settings import Settings
from tracker.up import child_env


async def prefill(settings: Settings, pings: int, seed: int) -> None:
    config = SimConfig(
        couriers=2000, count=pings, interval_s=0.5, bad_rate=0.05, duplicate_rate=0.01, seed=seed, burst=True
    )
    async with Producer(settings) as producer:
        batch, futures = [], []
        for ping in iter_pings(config, time.time_ns() // 1_000_000, settings=settings):
            batch.append(OutRecord(value=ping.value, key=ping.key, headers=ping.headers))
            if len(batch) == 20_000:
                futures += await producer.send_many(settings.location_topic, batch)
                batch = []
        futures += await producer.send_many(settings.location_topic, batch)
        await asyncio.gather(*futures)


def run(settings: Settings, pings: int, rounds: int, broker: str) -> str:
    env_base = child_env(settings.replace(log_level="WARNING"))
    results: dict[str, list[tuple[float, int]]] = {"validator": [], "send": [], "batch": []}
    redis_us_per_ping: list[float] = []  # Redis's CPU per consumed ping in each validator round
    redis_client = redis.Redis.from_url(running(settings.redis_url, "REDIS_URL"))
    for round_number in range(1, rounds + 1):
        for contender in ("send", "batch", "validator"):
            namespace = f"bench{round_number}{contender}."
            ns_settings = settings.replace(namespace=namespace)
            asyncio.run(ensure_topics(ns_settings))
            asyncio.run(prefill(ns_settings, pings, seed=42))
            progress(f"round {round_number}/{rounds}: {contender} on {pings:,} pre-filled pings")
            if contender == "validator":
                redis_before = redis_cpu_s(redis_client)
                summary, rss_kb = run_measured(
                    [sys.executable, "-m", "tracker", "validate", "--until-idle", "2"],
                    env=env_base | {"TRACKER_NAMESPACE": namespace},
                )
                redis_us_per_ping.append((redis_cpu_s(redis_client) - redis_before) / pings * 1e6)
            else:
                summary, rss_kb = run_measured(
                    [
                        sys.executable,
                        "-m",
                        "bench.passthrough",
                        "--bootstrap",
                        running(settings.kafka_bootstrap_servers, "KAFKA_BOOTSTRAP_SERVERS"),
                        "--topic",
                        ns_settings.location_topic,
                        "--out",
                        ns_settings.positions_topic,
                        "--group",
                        namespace + "passthrough",
                        "--mode",
                        contender,
                    ],
                    env=env_base,
                )
            assert summary["consumed"] == pings, summary
            rate = pings / (summary["busy_ms"] / 1000)
            results[contender].append((rate, rss_kb))
            progress(f"  {rate:,.0f} pings/s, peak RSS {rss_kb / 1024:.0f} MiB")

    def median_rate(name: str) -> float:
        return statistics.median(rate for rate, _ in results[name])

    redis_client.close()
    validator, send, batch = median_rate("validator"), median_rate("send"), median_rate("batch")
    redis_us = statistics.median(redis_us_per_ping)
    rows = "\n".join(
        f"| {label} | {median_rate(key):,.0f} | {', '.join(f'{r:,.0f}' for r, _ in results[key])} | "
        f"{max(kb for _, kb in results[key]) / 1024:.0f} MiB |"
        for key, label in (
            ("validator", "`tracker validate` (1 process)"),
            ("send", "bare aiokafka loop, `producer.send` per record"),
            ("batch", "bare aiokafka loop, per-partition `send_batch`"),
        )
    )
    title = "Validator throughput" + ("" if broker == "embedded Apache Kafka" else f" on {broker}")
    return f"""## {title}

{pings:,} pre-filled pings (2,000 couriers, 5 % bad, 1 % duplicates) per run, {rounds} rounds, median of rounds;
every contender reads its own identical copy of the topic on the same broker ({broker}) in the same run.

| contender | median pings/s | each round | peak RSS |
|---|---|---|---|
{rows}

**Ratios**: validator / `send` loop = **{validator / send:.2f}**; \
validator / `send_batch` loop = **{validator / batch:.2f}**.
Target: ≥ 0.60 of the pass-through and ≥ 50,000 pings/s.

**Redis** used {redis_us:.1f} µs of CPU per ping during the validator rounds (median; each round:
{", ".join(f"{us:.1f}" for us in redis_us_per_ping)}). Here each courier has ~{pings // 2000} pings in the topic, \
so a batch
writes one position for several of a courier's pings; with one ping per courier per batch, as in the
latency rows, it is several times more (see there).

Machine: {machine()}.
Reproduce: {reproduce(broker, f"--only throughput --pings {pings} --rounds {rounds}")}.
"""
