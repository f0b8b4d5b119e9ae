"""Nothing stops silently: a killed validator is restarted and pings flow again; a gateway task that fails is
restarted (and /readyz says so while it is down); the gateway's positions reader outlives any record; couriers
silent past the TTL expire from Redis."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time

import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers import eventually, eventually_sync
from tracker import expiry
from tracker.gateway import create_app
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.store import Slice
from tracker.supervision import RestartPolicy
from tracker.up import LocalSystem

# Its subject is the supervision of processes and tasks, not the broker: not run again on Tansu.
pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

BLR = (12.9716, 77.5946)


def ping(partner_id: str) -> OutRecord:
    body = {"partner_id": partner_id, "lat": BLR[0], "lon": BLR[1], "ts": int(time.time() * 1000), "vehicle": "bike"}
    return OutRecord(json.dumps(body).encode(), partner_id.encode())


@pytest.fixture
async def system(settings, tmp_path):
    # A short session timeout: the killed validator's partitions move to its successor sooner.
    system_settings = settings.replace(http_port=free_port(), tick_ms=50, kafka_session_timeout_ms=3000)
    running = LocalSystem(system_settings, tmp_path, validators=1)
    running.start()
    running.start_supervisor()
    try:
        yield running
    finally:
        running.stop()


async def test_a_validator_killed_with_sigkill_is_restarted_and_pings_flow_again(system, settings, store, producer):
    [(_, victim)] = [(name, process) for name, process in system.children if name == "validator-1"]
    os.kill(victim.pid, signal.SIGKILL)

    await eventually(lambda: system.restarts["validator-1"] == 1, timeout_s=30, what="validator-1 to be restarted")
    [(_, successor)] = [(name, process) for name, process in system.children if name == "validator-1"]
    assert successor.pid != victim.pid and successor.poll() is None
    assert system.restart_note() == "validator-1 restarted 1× (last: killed by SIGKILL)"

    await asyncio.gather(*await producer.send_many(settings.location_topic, [ping("after-restart")]))

    await eventually(
        lambda: store.position_json("after-restart"),
        timeout_s=90,
        what="the ping produced after the restart to be accepted",
    )
    assert (await store.counters()).get("accepted") == 1
    assert system.failed is None


async def test_the_gateway_reader_outlives_poison_positions_records(system, settings, producer):
    poison = [
        OutRecord(None),
        OutRecord(b"\xff\xfe not json"),
        OutRecord(b'{"id":"\\ud800","lat":1}'),
        OutRecord(b'{"id":"h","lat":12.9,"lon":77.5,"ts":' + b"9" * 400 + b',"accepted_at_ms":1}'),
    ]
    await asyncio.gather(*await producer.send_many(settings.positions_topic, poison))
    await asyncio.gather(*await producer.send_many(settings.location_topic, [ping("after-poison")]))
    async with httpx.AsyncClient(base_url=system.base_url) as client:

        async def on_the_map():
            return (await client.get("/api/couriers/after-poison")).status_code == 200

        await eventually(on_the_map, timeout_s=60, what="the good ping to reach the gateway")
        metrics = (await client.get("/metrics")).text
        assert f"tracker_bad_position_records_total {len(poison)}.0" in metrics
        assert (await client.get("/readyz")).status_code == 200
    assert system.exited() is None and system.restarts == {"gateway": 0, "validator-1": 0}


def test_a_gateway_task_that_fails_is_logged_restarted_and_reported_while_down(infra, monkeypatch, caplog):
    # A long first wait, so the down state is easy to observe.
    monkeypatch.setattr("tracker.gateway.TASK_RESTARTS", RestartPolicy(limit=None, window_s=60, first_delay_s=2))
    app = create_app(infra.replace(namespace=f"sup{time.monotonic_ns()}."), consume=False)
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        await asyncio.Event().wait()

    async def add_task() -> None:
        app.state.gateway.supervise("flaky", flaky)

    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        assert client.portal is not None  # inside `with TestClient(...)`
        client.portal.call(add_task)
        down = client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"]["flaky"] is False
        assert down.json()["tasks_down"] == {"flaky": "RuntimeError"}  # the error's text is in the log only
        assert 'tracker_gateway_task_restarts_total{task="flaky"} 0.0' in client.get("/metrics").text

        eventually_sync(lambda: len(runs) >= 2, timeout_s=10, what="the flaky task's second run")
        assert len(runs) == 2 and runs[1] - runs[0] >= 2
        up = client.get("/readyz")
        assert up.status_code == 200 and up.json()["checks"]["flaky"] is True
        assert 'tracker_gateway_task_restarts_total{task="flaky"} 1.0' in client.get("/metrics").text
    [logged] = [r for r in caplog.records if r.levelname == "ERROR" and "flaky" in r.getMessage()]
    assert "restarting in 2 s" in logged.getMessage() and logged.exc_info is not None


async def test_the_sweep_expires_couriers_silent_past_the_ttl_from_redis(settings, store):
    ttl_s = 60
    now = int(time.time() * 1000)
    # 300 couriers (more than Redis keeps in one compact listpack, so ZSCAN walks it in several chunks).
    ages_s = {f"c{i:03d}": (120 if i % 2 else 10) for i in range(300)}
    slices = []
    for partner_id, age_s in ages_s.items():
        ts = now - age_s * 1000
        encoded = json.dumps({"id": partner_id, "lat": BLR[0], "lon": BLR[1], "ts": ts, "accepted_at_ms": ts})
        point = json.dumps([ts, BLR[0], BLR[1], None])
        position = (partner_id, ts, BLR[0], BLR[1], encoded)
        trail: tuple[str, list[int | str]] = (partner_id, [ts, point])
        slices.append(Slice(store.partition_of(partner_id), -2, 0, 0, [position], [trail], {}))
    await store.apply("expiry-test", slices)
    # a GEO member without its hash
    await store.redis.geoadd(store.keys(0).geo, (BLR[1], BLR[0], "no-position"))

    expired = await expiry.sweep_redis(store, expiry.cutoff_ms(ttl_s), chunk=50)

    silent = {partner_id for partner_id, age_s in ages_s.items() if age_s > ttl_s}
    assert expired == len(silent) + 1
    assert set(await store.partner_ids()) == set(ages_s) - silent
    for partner_id in ("c000", "c001"):
        kept = partner_id not in silent
        assert (await store.position_json(partner_id) is not None) == kept
        assert (await store.trail(partner_id) != []) == kept
    assert await expiry.sweep_redis(store, expiry.cutoff_ms(ttl_s)) == 0


def test_a_task_that_will_not_stop_does_not_keep_the_gateway_from_stopping(infra, caplog):
    app = create_app(infra.replace(namespace=f"sup{time.monotonic_ns()}.", shutdown_timeout_s=1.0), consume=False)

    async def stubborn() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # swallows the gateway's cancellation, as a bug might
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)  # the event loop's own shutdown cancels it again, and then it ends

    async def add_task() -> None:
        app.state.gateway.supervise("stubborn", stubborn)

    with TestClient(app) as client:
        assert client.portal is not None  # inside `with TestClient(...)`
        client.portal.call(add_task)
        assert client.get("/readyz").status_code == 200
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 10  # the lifespan's shutdown finished: one timeout, then on
    [logged] = [r for r in caplog.records if r.levelname == "ERROR" and "stubborn" in r.getMessage()]
    assert "did not stop within 1 s" in logged.getMessage()
