"""Faults beyond SIGKILL: Redis hung or restarted mid-run, and the embedded broker restarted under load.

Each test stops a service of its own (an :class:`EmbeddedStack` started here), never the session's. The
validator runs as ``tracker validate`` in a child process with the product's retry budget, pings come in
real time at ``make run``'s rate, and what a user would notice is checked afterwards: the accounting
identity (produced = accepted + rejected + duplicates, per reject reason too), no good ping dead-lettered,
every courier's latest good ping its live position, the validator alive throughout and stopping cleanly.
Only the outage itself is a fixed wait; everything else waits with tests.helpers.eventually.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import msgspec
import pytest

from simulator import SimConfig
from simulator.run import SimStats, run_simulation
from tests.helpers import BROKER, REPLAY_SECRET, ROOT, eventually, subprocess_env
from tests.integration.pipeline_helpers import assert_pipeline_outcome, validated
from tracker.kafka import ensure_topics
from tracker.local.embedded import EmbeddedStack
from tracker.local.processes import spawn
from tracker.settings import Settings
from tracker.store import Store, StoreError
from tracker.supervision import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

COURIERS = 300  # one ping per courier per second: make run's 300 pings/s
REDIS_OUTAGE_S = 10.0  # shorter than the retry budget (TRACKER_RETRY_*: ~15 s of pauses), as the README promises
WARMUP_PINGS = 2 * COURIERS  # validated before the fault: the pipeline is in its steady state
AFTER_PINGS = 3 * COURIERS  # validated after the fault, past the backlog it built up
START_TIMEOUT_S = 60.0
CATCH_UP_TIMEOUT_S = 60.0
PRODUCT = Settings()  # the product's defaults: the retry budget under test


class Child:
    """A ``tracker`` command in a child process; stdout and stderr go to one log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self.process = spawn([sys.executable, "-m", "tracker", *args], self.log_path, env)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 30) -> str:
        return f"--- {self.log_path} ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def assert_alive(self) -> None:
        assert self.process.poll() is None, f"{self.name} exited with {self.process.returncode}\n{self.tail()}"


def child_env(settings: Settings) -> dict[str, str]:
    env = subprocess_env(settings)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


async def validated_or_none(store: Store) -> int | None:
    """accepted + rejected + duplicates in Redis; None while Redis does not answer."""
    try:
        return await validated(store)
    except (StoreError, OSError):
        return None


async def validated_at_least(
    store: Store, count: int, what: str, *children: Child, timeout_s: float = CATCH_UP_TIMEOUT_S
) -> float:
    """Wait until ``count`` pings are validated, failing after ``timeout_s`` or as soon as a child exits;
    returns the seconds waited."""

    async def reached() -> bool:
        for child in children:
            child.assert_alive()
        return (await validated_or_none(store) or 0) >= count

    started = time.monotonic()
    await eventually(
        reached,
        timeout_s=timeout_s,
        what=f"{count} pings validated {what}",
        explain=lambda: "\n".join(child.tail() for child in children),
    )
    return time.monotonic() - started


def stop_cleanly(child: Child) -> None:
    """SIGTERM: a validator finishes its batches, commits and leaves; the simulator finishes its batch."""
    stop_process(child.process, timeout_s=30)
    assert child.process.returncode == 0, child.tail()
    assert "Traceback" not in child.log(), child.tail(60)


# -- Redis ---------------------------------------------------------------------------------------------------


async def hang_redis(stack: EmbeddedStack, store: Store) -> None:
    """SIGSTOP: connections are accepted and nothing answers, so every attempt waits for its timeout."""
    pid = stack.pid("redis")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(REDIS_OUTAGE_S)  # the outage under test: a fixed length, within the retry budget
    finally:
        os.kill(pid, signal.SIGCONT)


async def restart_redis(stack: EmbeddedStack, store: Store) -> None:
    """SHUTDOWN SAVE, then the same port and data: connections are refused meanwhile, and the scripts are gone."""
    before = await validated_or_none(store)
    assert before is not None
    await asyncio.to_thread(stack.stop_redis)
    try:
        await asyncio.sleep(REDIS_OUTAGE_S)  # the outage under test: a fixed length, within the retry budget
    finally:
        await asyncio.to_thread(stack.start_redis)
    # Its data came back. (Were it gone, the validator would rebuild it from the topic, from offset 0, and
    # the identity would hold all the same, so this is checked here, before the validator's next attempt.)
    after = await validated_or_none(store)
    if after is None:  # our own connection was cut by the shutdown; the next one is new
        after = await validated_or_none(store)
    assert after is not None and after >= before


@pytest.mark.broker_agnostic  # a Redis outage; the broker under it is incidental
@pytest.mark.parametrize("outage", [hang_redis, restart_redis], ids=["hung", "restarted"])
async def test_a_redis_outage_within_the_retry_budget_loses_nothing(settings, producer, outage, tmp_path):
    # This test's own redis-server beside the session's broker, and the product's retry budget (the suite's
    # settings shorten the backoff to 20 ms, which would make the budget shorter than the outage).
    # (Settings.replace ignores None, so the session's Redis URL is dropped with msgspec's own replace.)
    stack = EmbeddedStack(
        msgspec.structs.replace(
            settings,
            redis_url=None,
            data_dir=str(tmp_path),
            retry_attempts=PRODUCT.retry_attempts,
            retry_backoff_ms=PRODUCT.retry_backoff_ms,
            retry_max_backoff_ms=PRODUCT.retry_max_backoff_ms,
        )
    )
    own = stack.start()
    validator = Child("validator", ["validate", "--validator-id", "v1"], child_env(own), tmp_path)
    stop = asyncio.Event()
    acked: list[int] = [0]
    simulation = asyncio.create_task(
        run_simulation(
            own,
            SimConfig(couriers=COURIERS, interval_s=1.0, bad_rate=0.1, seed=20261126),
            producer,
            progress=lambda stats: acked.__setitem__(0, stats.produced),
            stop=stop,
        )
    )
    try:
        async with Store(own) as store:
            await validated_at_least(store, WARMUP_PINGS, "before the outage", validator, timeout_s=START_TIMEOUT_S)
            started = time.monotonic()
            await outage(stack, store)
            outage_s = time.monotonic() - started
            backlog = acked[0]
            resumed_s = await validated_at_least(store, backlog + AFTER_PINGS, "after the outage", validator)
            stop.set()
            stats = await simulation
            await validated_at_least(store, stats.produced, "after the simulator stopped", validator)
            validator.assert_alive()
            stop_cleanly(validator)

            counters = await store.counters()
            assert counters.get("rejected:processing_failed", 0) == 0, validator.tail()
            redelivered = await assert_pipeline_outcome(own, store, stats, allow_dlq_redeliveries=True)
    finally:
        stop.set()
        stop_process(validator.process, timeout_s=10)
        if not simulation.done():
            simulation.cancel()
        stack.stop()

    retries = validator.log().count("failed (attempt")
    assert retries > 0, "the validator never met the outage\n" + validator.tail()
    print(
        f"\n[{outage.__name__}] {stats.produced} pings; Redis out for {outage_s:.1f} s; the validator retried "
        f"{retries} times and caught up {resumed_s:.1f} s later; {redelivered} dead letters produced twice"
    )


# -- the broker ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(BROKER == "tansu", reason="Tansu keeps its records in memory: a restarted Tansu has none")
async def test_the_embedded_broker_shut_down_then_killed_under_load(tmp_path):
    # A broker and a Redis of this test's own, with the product's retry budget. One run lives through both
    # restarts (a controlled shutdown, then a crash) so that one broker start and one warm-up serve both.
    base = msgspec.structs.replace(
        Settings.from_env(),
        kafka_bootstrap_servers=None,
        redis_url=None,
        embedded_broker="kafka",
        data_dir=str(tmp_path),
        namespace=f"t{uuid.uuid4().hex[:10]}.",
        replay_secret=REPLAY_SECRET,
    )
    stack = EmbeddedStack(base)
    own = await asyncio.to_thread(stack.start)
    children: list[Child] = []
    timings: list[str] = []
    try:
        await ensure_topics(own)
        env = child_env(own)
        validator = Child("validator", ["validate", "--validator-id", "v1"], env, tmp_path)
        simulator = Child(
            "simulator",
            ["simulate", "--couriers", str(COURIERS), "--interval", "1", "--bad-rate", "0.1", "--seed", "20261127"],
            env,
            tmp_path,
        )
        children = [validator, simulator]
        async with Store(own) as store:
            await validated_at_least(store, WARMUP_PINGS, "before the restarts", *children, timeout_s=START_TIMEOUT_S)
            for kill in (False, True):
                what = "killed" if kill else "shut down"
                before = await validated(store)
                started = time.monotonic()
                # A controlled shutdown, or a crash (SIGKILL: what was written is in the page cache, so it stays).
                await asyncio.to_thread(stack.stop_broker, kill=kill)
                await asyncio.to_thread(stack.start_broker)  # same port, same data; returns once it answers
                restart_s = time.monotonic() - started
                # Pings validated past what the validator had at the restart plus the backlog: the simulator's
                # sends and the validator's reads resumed by themselves.
                resumed_s = await validated_at_least(store, before + AFTER_PINGS, f"after the broker {what}", *children)
                timings.append(f"{what}: down and back in {restart_s:.1f} s, caught up {resumed_s:.1f} s later")

            stop_cleanly(simulator)
            summary = json.loads(simulator.log().strip().splitlines()[-1])
            stats = msgspec.convert(summary, SimStats)
            await validated_at_least(store, stats.produced, "after the simulator stopped", validator)
            stop_cleanly(validator)

            # The producer retries until the broker is back (idempotent, so no batch expires on a retriable
            # error; a partition without a leader fails a batch only after the 40 s request timeout), so
            # nothing is unsent, and every acknowledged ping is accounted for exactly.
            assert (summary["unsent"], summary["unsent_by_reason"]) == (0, {}), simulator.tail()
            assert await validated(store) == stats.produced
            counters = await store.counters()
            assert counters.get("rejected:processing_failed", 0) == 0, validator.tail()
            redelivered = await assert_pipeline_outcome(own, store, stats, allow_dlq_redeliveries=True)
    finally:
        for child in children:
            stop_process(child.process, timeout_s=10)
        await asyncio.to_thread(stack.stop)

    print(f"\n[broker] {stats.produced} pings; {'; '.join(timings)}; {redelivered} dead letters produced twice")
