"""A validator killed with SIGKILL mid-run, then a fresh one: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from simulator import SimConfig
from simulator.run import run_simulation
from tests.helpers import BROKER, eventually, subprocess_env
from tests.integration.pipeline_helpers import assert_pipeline_outcome, validated
from tracker.validator import MAX_IN_FLIGHT

pytestmark = pytest.mark.integration

BATCH = 200


async def a_quarter_validated(store, produced: int) -> None:
    """Wait until a quarter of the run is validated: a kill or stop then lands mid-run (checked often, so the
    validator does not get much further before it)."""

    async def reached() -> bool:
        return await validated(store) >= produced // 4

    await eventually(reached, timeout_s=60, interval_s=0.025, what=f"{produced // 4} pings validated")


async def test_sigkill_mid_run_keeps_the_identity(settings, store, producer):
    # Event time spans count/couriers × interval = 25 s, well inside the 120 s staleness limit.
    stats = await run_simulation(
        settings, SimConfig(couriers=400, count=40_000, interval_s=0.25, bad_rate=0.1, seed=99, burst=True), producer
    )
    env = subprocess_env(settings) | {"TRACKER_MAX_BATCH": str(BATCH), "KAFKA_SESSION_TIMEOUT_MS": "3000"}
    command = [sys.executable, "-m", "tracker", "validate"]
    # Popen only forks and execs (ASYNC220 takes it for blocking); the test then watches the child from the loop.
    victim = subprocess.Popen(  # noqa: ASYNC220
        [*command, "--validator-id", "victim"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await a_quarter_validated(store, stats.produced)
        victim.kill()
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
    at_kill = await validated(store)
    print(f"\nkilled the first validator after {at_kill} of {stats.produced} pings")
    assert 0 < at_kill < stats.produced, "the kill must land mid-run"

    successor = await asyncio.to_thread(
        subprocess.run,
        [*command, "--validator-id", "successor", "--until-idle", "4"],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert successor.returncode == 0, successor.stderr.decode()[-2000:]

    redelivered = await assert_pipeline_outcome(settings, store, stats, allow_dlq_redeliveries=True)
    # Only the batches in flight at the kill (at most MAX_IN_FLIGHT + 1) can have reached the DLQ without
    # reaching Redis; their dead letters are produced again on redelivery, each with the same original
    # partition/offset.
    print(f"dead letters produced twice after the kill: {redelivered}")
    assert redelivered <= BATCH * (MAX_IN_FLIGHT + 1)


async def test_sigterm_finishes_commits_and_leaves_the_group(settings, store, producer):
    stats = await run_simulation(
        settings, SimConfig(couriers=400, count=40_000, interval_s=0.25, bad_rate=0.1, seed=7, burst=True), producer
    )
    # A long session timeout makes a missing LeaveGroup visible as a long wait (checked on Apache Kafka); on
    # Tansu keep it short, or the wait would age the burst's pings past the staleness limit.
    session_ms = "30000" if BROKER == "kafka" else "3000"
    env = subprocess_env(settings) | {"TRACKER_MAX_BATCH": str(BATCH), "KAFKA_SESSION_TIMEOUT_MS": session_ms}
    command = [sys.executable, "-m", "tracker", "validate"]
    first = subprocess.Popen(  # noqa: ASYNC220
        [*command, "--validator-id", "first"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        await a_quarter_validated(store, stats.produced)
    finally:
        first.terminate()
    out, err = await asyncio.to_thread(first.communicate, timeout=60)
    assert first.returncode == 0, err.decode()[-2000:]
    first_totals = json.loads(out.decode().strip().splitlines()[-1])
    assert 0 < first_totals["consumed"] < stats.produced

    # It committed what it applied and left the group: the successor is never handed a record the first
    # one already applied, and on Apache Kafka it starts at once, with no 30 s session timeout to wait
    # out. (Tansu does not act on LeaveGroup; there the partitions move after the timeout.)
    started = time.monotonic()
    successor = await asyncio.to_thread(
        subprocess.run,
        [*command, "--validator-id", "successor", "--until-idle", "3"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert successor.returncode == 0, successor.stderr.decode()[-2000:]
    if BROKER == "kafka":
        assert time.monotonic() - started < 25
    second_totals = json.loads(successor.stdout.decode().strip().splitlines()[-1])
    assert second_totals["skipped"] == 0
    assert first_totals["consumed"] + second_totals["consumed"] == stats.produced
    await assert_pipeline_outcome(settings, store, stats)
