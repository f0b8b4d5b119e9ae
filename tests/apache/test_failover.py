"""A broker dies mid-run: SIGKILL one of three Apache Kafka 4.x brokers under load, restart it later.

The simulator keeps producing in real time (acks=all, idempotent) and two ``tracker validate`` processes keep
consuming while the cluster runs on two brokers (RF 3, min.insync.replicas 2, so acks=all still succeeds).
What a user would notice is checked afterwards: produced = accepted + rejected + duplicates holds exactly,
per reject reason too; every courier's latest good ping is its live position; both validators survived.

The victim leads some of ``location-updates``' partitions, and is the active KRaft controller when that one
also leads some, so partition leadership and the controller fail over together.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from simulator import SimConfig
from simulator.run import SimStats, run_simulation
from tests.helpers import ROOT, eventually, subprocess_env
from tests.integration.pipeline_helpers import assert_pipeline_outcome, validated
from tracker.kafka import Producer, ensure_topics
from tracker.local.apache_kafka import ApacheKafkaCluster, java_missing
from tracker.local.embedded import EmbeddedStack
from tracker.local.processes import spawn
from tracker.settings import Settings
from tracker.store import Store
from tracker.supervision import stop_process

pytestmark = [pytest.mark.apache_kafka, pytest.mark.timeout(300)]

COURIERS = 2_000  # one ping per courier per second: 2,000 pings/s in real time
RATE_CAP = 3_000  # the backlog built up while acks stall drains at most this fast
WARMUP_S = 6.0  # from the first ack to the kill: a steady state to measure the lag in
RESUME_TIMEOUT_S = 40.0  # acks=all resumes once the controller fences the victim (broker.session.timeout.ms 6 s)
DEAD_AFTER_RESUME_S = 5.0  # then the pipeline runs on two brokers this long before the victim comes back
AFTER_RESTART_S = 5.0
CATCH_UP_TIMEOUT_S = 90.0
VALIDATOR_SESSION_TIMEOUT_MS = "6000"

_ASSIGNED = re.compile(r"assigned partitions \[([0-9, ]*)\] of (\S+)")


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture
def cluster():
    reason = java_missing()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"real Apache Kafka is required in CI: {reason}", pytrace=False)
        pytest.skip(f"Apache Kafka failover test skipped: {reason}")
    with ApacheKafkaCluster(nodes=3) as kafka:
        print(f"\n[failover] 3-node cluster ready in {kafka.timings['start_total_s']:.1f}s")
        yield kafka


@pytest.fixture
def failover_settings(cluster: ApacheKafkaCluster, tmp_path: Path):
    """Settings on the 3-node cluster (RF 3, idempotent producers) and an embedded Redis, own namespace."""
    base = Settings.from_env().replace(
        kafka_bootstrap_servers=cluster.bootstrap_servers,
        replication_factor=3,
        kafka_idempotence=True,
        namespace=f"fo{uuid.uuid4().hex[:8]}.",
        data_dir=str(tmp_path / "var"),
    )
    with EmbeddedStack(base) as settings:  # the broker is configured, so this starts only redis-server
        yield settings


class ValidatorProcess:
    """``python -m tracker validate`` as a child process; stdout and stderr go to one log file."""

    def __init__(self, validator_id: str, env: dict[str, str], log_dir: Path) -> None:
        self.validator_id = validator_id
        self.log_path = log_dir / f"validator-{validator_id}.log"
        self.process = spawn(
            [sys.executable, "-m", "tracker", "validate", "--validator-id", validator_id], self.log_path, env
        )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 25) -> str:
        return f"--- {self.log_path} ---\n" + "\n".join(self.log().splitlines()[-lines:])

    def assignment(self, topic: str) -> set[int] | None:
        """The partitions of ``topic`` this validator logged it holds now (its last assignment)."""
        latest = None
        for numbers, logged_topic in _ASSIGNED.findall(self.log()):
            if logged_topic == topic:
                latest = {int(n) for n in numbers.split(",") if n.strip()}
        return latest

    def totals(self) -> dict | None:
        """The JSON totals the validator prints on a graceful exit."""
        for line in reversed(self.log().splitlines()):
            if line.startswith("{"):
                return json.loads(line)
        return None


# -- helpers -----------------------------------------------------------------------------------------------


async def partition_leaders(settings: Settings, topic: str) -> dict[int, int]:
    """partition -> leader broker id (-1 while it has none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="failover-test")
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        return {p["partition"]: p["leader"] for p in described[0].get("partitions", [])}
    finally:
        await admin.close()


async def wait_for_leaders(settings: Settings, timeout_s: float = 30.0) -> None:
    """Topic creation is asynchronous: wait until every partition of every topic has a leader."""
    wanted = {
        settings.location_topic: settings.location_partitions,
        settings.dlq_topic: settings.dlq_partitions,
        settings.positions_topic: settings.positions_partitions,
    }

    async def every_partition_led() -> bool:
        for topic, count in wanted.items():
            leaders = await partition_leaders(settings, topic)
            if len(leaders) != count or any(leader < 0 for leader in leaders.values()):
                return False
        return True

    await eventually(
        every_partition_led, timeout_s=timeout_s, interval_s=0.2, what="a leader for every partition of the topics"
    )


def active_controller(cluster: ApacheKafkaCluster) -> int | None:
    """The node that most recently logged becoming the active controller (server.log, KRaft)."""
    latest: tuple[str, int] | None = None
    assert cluster.work_dir is not None  # the cluster is started
    for node in range(cluster.nodes):
        try:
            text = (cluster.work_dir / f"node-{node}" / "server.log").read_text("utf-8", "replace")
        except OSError:
            continue
        for line in text.splitlines():
            if "Becoming the active controller" in line:
                stamp = line[:25]  # "[HH:MM:SS,mmm] INFO ..." sorts by time within a run
                if latest is None or stamp > latest[0]:
                    latest = (stamp, node)
    return None if latest is None else latest[1]


async def wait_for_split(validators: list[ValidatorProcess], settings: Settings, timeout_s: float = 45.0) -> None:
    """Both validators hold partitions, disjoint, together all of them."""
    everything = set(range(settings.location_partitions))

    def split() -> bool:
        for validator in validators:
            assert validator.process.poll() is None, f"validator exited early\n{validator.tail()}"
        first, second = (validator.assignment(settings.location_topic) for validator in validators)
        return bool(first and second and not first & second and first | second == everything)

    await eventually(
        split,
        timeout_s=timeout_s,
        interval_s=0.2,
        what="the validators to split the partitions",
        explain=lambda: "\n".join(v.tail() for v in validators),
    )


def longest_pause(times: list[float], *, ends_after: float, starts_before: float) -> tuple[float, float]:
    """(length, end) of the longest pause between consecutive ``times`` that ends after ``ends_after`` and
    starts before ``starts_before``; a pause under way at ``ends_after`` counts from then."""
    best = (0.0, ends_after)
    for previous, t in itertools.pairwise(times):
        if t > ends_after and previous < starts_before and t - max(previous, ends_after) > best[0]:
            best = (t - max(previous, ends_after), t)
    return best


# -- the test ----------------------------------------------------------------------------------------------


async def test_broker_sigkill_mid_run_keeps_the_identity(cluster, failover_settings, tmp_path):
    settings = failover_settings
    await ensure_topics(settings)
    await wait_for_leaders(settings)

    env = subprocess_env(settings) | {
        "KAFKA_SESSION_TIMEOUT_MS": VALIDATOR_SESSION_TIMEOUT_MS,
        "TRACKER_REPLICATION_FACTOR": "3",
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    validators = [ValidatorProcess(validator_id, env, tmp_path) for validator_id in ("v1", "v2")]
    try:
        await wait_for_split(validators, settings)
        async with Store(settings) as store, Producer(settings) as producer:
            stats, timeline = await _run_with_failover(cluster, settings, store, producer, validators)
            print(timeline)
            alive = [validator.process.poll() is None for validator in validators]
            assert all(alive), "a validator died during the failover\n" + "\n".join(v.tail() for v in validators)

            for validator in validators:  # SIGTERM: finish the batch, commit, leave the group
                stop_process(validator.process, timeout_s=30)
            codes = [validator.process.returncode for validator in validators]
            assert codes == [0, 0], "\n".join(v.tail() for v in validators)
            totals = [validator.totals() or {} for validator in validators]

            counters = await store.counters()
            rejected = {
                name.removeprefix("rejected:"): count
                for name, count in counters.items()
                if name.startswith("rejected:")
            }
            assert (
                counters.get("accepted", 0) + counters.get("rejected", 0) + counters.get("duplicates", 0)
                == stats.produced
            )
            assert rejected == {reason: count for reason, count in stats.bad_by_reason.items() if count}
            redelivered = await assert_pipeline_outcome(settings, store, stats, allow_dlq_redeliveries=True)
    finally:
        for validator in validators:
            stop_process(validator.process, timeout_s=10)

    consumed = sum(t.get("consumed", 0) for t in totals)
    skipped = sum(t.get("skipped", 0) for t in totals)
    print(
        f"[failover] validators consumed {consumed} records ({skipped} skipped as already applied; "
        f"{consumed - stats.produced} redelivered), {redelivered} dead letters produced twice"
    )
    print(
        "[failover] identity held: produced {p} = accepted {a} + rejected {r} + duplicates {d}".format(
            p=stats.produced,
            a=counters.get("accepted", 0),
            r=counters.get("rejected", 0),
            d=counters.get("duplicates", 0),
        )
    )


async def _run_with_failover(
    cluster: ApacheKafkaCluster,
    settings: Settings,
    store: Store,
    producer: Producer,
    validators: list[ValidatorProcess],
) -> tuple[SimStats, str]:
    """Simulate in real time; kill a leader, keep producing, restart it, stop; wait until all is validated."""
    config = SimConfig(couriers=COURIERS, interval_s=1.0, bad_rate=0.1, seed=20261126, rate=RATE_CAP)
    acks: list[tuple[float, int]] = []  # (monotonic time, pings acknowledged so far)
    samples: list[tuple[float, int, int]] = []  # (monotonic time, acknowledged, validated)
    stop = asyncio.Event()
    simulation = asyncio.create_task(
        run_simulation(
            settings, config, producer, progress=lambda s: acks.append((time.monotonic(), s.produced)), stop=stop
        )
    )

    async def sample() -> None:
        while True:
            produced_now = acks[-1][1] if acks else 0
            samples.append((time.monotonic(), produced_now, await validated(store)))
            await asyncio.sleep(0.2)  # a sampler, not a wait: the timeline below is read at this resolution

    def assert_running() -> None:
        """The simulation is still producing and both validators are alive."""
        if simulation.done():
            simulation.result()  # raises what stopped it
            pytest.fail("the simulation ended early")
        for validator in validators:
            assert validator.process.poll() is None, f"validator exited\n{validator.tail()}"

    async def run_for(seconds: float) -> None:
        """Let the run go on for ``seconds`` (a phase of the scenario, so a fixed time), then check on it."""
        await asyncio.wait({simulation}, timeout=seconds)
        assert_running()

    def acked() -> int:
        return acks[-1][1] if acks else 0

    def first_ack() -> bool:
        assert_running()
        return bool(acks)

    monitor = asyncio.create_task(sample())
    try:
        t0 = time.monotonic()
        # The producer's first metadata and producer id can take a few seconds.
        await eventually(first_ack, timeout_s=30, what="the simulator's first ack")
        await run_for(WARMUP_S)

        leaders = await partition_leaders(settings, settings.location_topic)
        led = Counter(leader for leader in leaders.values() if leader >= 0)
        controller = active_controller(cluster)
        victim = controller if controller is not None and led.get(controller) else led.most_common(1)[0][0]
        t_kill = time.monotonic()
        cluster.kill(victim)
        acked_at_kill = acked()

        # Every partition has the victim as leader or in its ISR, so acks=all stalls everywhere until the
        # controller fences it; wait for two seconds' worth of pings acked past the kill, then some more.
        def resumed() -> bool:
            assert_running()
            return acked() >= acked_at_kill + 2 * COURIERS

        await eventually(resumed, timeout_s=RESUME_TIMEOUT_S, what="acks to resume after the kill")
        await run_for(DEAD_AFTER_RESUME_S)
        t_restart = time.monotonic()
        await asyncio.to_thread(cluster.restart, victim)  # JVM start + wait_ready; off the loop
        restart_s = time.monotonic() - t_restart
        await run_for(AFTER_RESTART_S)

        stop.set()
        stats = await simulation
        t_stop = time.monotonic()
        accounted = [0]

        async def drained() -> bool:
            for validator in validators:
                assert validator.process.poll() is None, f"validator exited\n{validator.tail()}"
            accounted[0] = await validated(store)
            return accounted[0] >= stats.produced

        def how_far() -> str:
            return f"they accounted for {accounted[0]}\n" + "\n".join(v.tail() for v in validators)

        await eventually(
            drained,
            timeout_s=CATCH_UP_TIMEOUT_S,
            explain=how_far,
            what=f"the validators to account for all {stats.produced} pings after the simulator stopped",
        )
        t_drained = time.monotonic()
    finally:
        monitor.cancel()
        if not simulation.done():
            stop.set()
            simulation.cancel()

    ack_times = [t for t, _ in acks]
    stall_s, stall_end = longest_pause(ack_times, ends_after=t_kill, starts_before=t_restart)
    restart_gap_s, _ = longest_pause(ack_times, ends_after=t_restart, starts_before=t_stop)
    pre_kill = [acked - validated for t, acked, validated in samples if t_kill - 3 <= t <= t_kill]
    steady_lag = max(pre_kill, default=0)
    after = [(t, acked - validated) for t, acked, validated in samples if t > t_kill]
    peak_lag = max((lag for _, lag in after), default=0)
    threshold = max(steady_lag, COURIERS)  # back to normal: at most a second of pings behind
    caught_up = next((t for t, lag in after if t >= stall_end and lag <= threshold), None)
    caught_up_text = "not within the run" if caught_up is None else f"{caught_up - t_kill:.2f}s"
    progress_times = [t for (_, _, before), (t, _, validated) in itertools.pairwise(samples) if validated > before]
    validator_pause_s, validator_resumed = longest_pause(progress_times, ends_after=t_kill, starts_before=t_restart)
    timeline = "\n".join(
        [
            (
                f"[failover] machine: {os.cpu_count()} cores; {stats.produced} pings produced in "
                f"{stats.elapsed_s:.1f}s ({stats.pings_per_s:.0f}/s; {stats.good} good, {stats.bad} bad, "
                f"{stats.duplicates} duplicates)"
            ),
            (
                f"[failover] first ack at t={acks[0][0] - t0:.1f}s; killed node {victim} (SIGKILL) at "
                f"t={t_kill - t0:.1f}s; it led partitions "
                f"{sorted(p for p, leader in leaders.items() if leader == victim)} of {settings.location_topic}"
                f"{' and was the active controller' if victim == controller else ''} "
                f"(controller per logs: {controller}); {acked_at_kill} pings acked by then"
            ),
            (
                f"[failover] produce acks resumed {stall_end - t_kill:.2f}s after the kill (longest ack pause "
                f"{stall_s:.2f}s)"
            ),
            (
                f"[failover] validators wrote to Redis again {validator_resumed - t_kill:.2f}s after the kill "
                f"(longest pause {validator_pause_s:.2f}s) and caught up {caught_up_text} after the kill (lag: "
                f"steady {steady_lag}, peak {peak_lag} pings; the simulator waits for acks, so the backlog stays "
                "small)"
            ),
            (
                f"[failover] restarted node {victim} at t={t_restart - t0:.1f}s ({t_restart - t_kill:.1f}s after "
                f"the kill): cluster ready in {restart_s:.1f}s; longest ack pause after the restart "
                f"{restart_gap_s:.2f}s"
            ),
            f"[failover] after the simulator stopped, validators drained in {t_drained - t_stop:.2f}s",
        ]
    )
    return stats, timeline
