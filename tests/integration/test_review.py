"""Rejected-ping review end to end: validator + gateway (with its DLQ indexer) as child processes, the HTTP
API and the CLI, on the real broker and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time

import httpx
import pytest
from starlette.testclient import TestClient

from tests.helpers import eventually, subprocess_env
from tracker import constants as c
from tracker import replay_sig
from tracker.gateway import create_app
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

TOKEN = "test-token-3f9a"
BLR = (12.9716, 77.5946)


def ping(partner_id, lat, lon, ts, **extra) -> OutRecord:
    body = {"partner_id": partner_id, "lat": lat, "lon": lon, "ts": ts, "vehicle": "car", **extra}
    return OutRecord(value=json.dumps(body).encode(), key=partner_id.encode())


async def produce(producer, settings, *records):
    await asyncio.gather(*await producer.send_many(settings.location_topic, list(records)))


@pytest.fixture
async def system(settings, tmp_path):
    system_settings = settings.replace(http_port=free_port(), admin_token=TOKEN)
    with LocalSystem(system_settings, tmp_path, validators=1, token=TOKEN) as running:
        yield running


@pytest.fixture
async def api(system):
    async with httpx.AsyncClient(base_url=system.base_url, timeout=10) as client:
        yield client


def auth(token=TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def entry_for(api, partner_id, reason):
    listing = (await api.get("/api/dlq", params={"partner": partner_id, "reason": reason})).json()
    return listing["items"][0] if listing["items"] else None


async def test_review_fix_and_replay(system, api, settings, producer, store):
    now = int(time.time() * 1000)
    latest = (BLR[0] + 0.001, BLR[1])
    await produce(
        producer,
        settings,
        ping("courier-a", *BLR, now - 30_000),
        ping("courier-a", *latest, now - 1_000),  # the live fix: 111 m in 29 s
        ping("courier-a", BLR[0] - 0.002, BLR[1], now - 600_000),  # stale
        ping("courier-b", 95.0, 77.60, now - 2_000),  # invalid coordinates
        ping("courier-c", *BLR, "soon"),  # invalid timestamp
        OutRecord(value=b"\xff\xfe not json", key=b"courier-d"),
    )

    listing = await eventually(lambda: _listing_with(api, 4), what="4 indexed dead letters")
    assert {item["reason"] for item in listing["items"]} == {
        "stale_timestamp",
        "invalid_coordinates",
        "invalid_timestamp",
        "malformed_payload",
    }
    stats = (await api.get("/api/dlq/stats")).json()
    assert stats["by_reason"] == {
        "stale_timestamp": 1,
        "invalid_coordinates": 1,
        "invalid_timestamp": 1,
        "malformed_payload": 1,
    }
    assert stats["by_status"]["new"] == 4
    assert (await api.get("/api/dlq", params={"reason": "stale_timestamp"})).json()["total"] == 1
    for hostile in ("9" * 400, "9" * 5000, "1e9", "\x00"):  # a bad filter is a 400, never a 500
        assert (await api.get("/api/dlq", params={"since": hostile})).status_code == 400

    broken = await entry_for(api, "courier-b", "invalid_coordinates")
    detail = (await api.get(f"/api/dlq/{broken['id']}")).json()
    assert detail["payload_json"]["lat"] == 95.0
    assert dict(detail["headers"])[c.H_REASON] == "invalid_coordinates"

    # Writes need the token: without it, or with a wrong one, 401 and nothing changes.
    assert (await api.post(f"/api/dlq/{broken['id']}/replay")).status_code == 401
    assert (await api.post(f"/api/dlq/{broken['id']}/replay", headers=auth("wrong"))).status_code == 401
    assert (await api.post("/api/dlq/discard", json={"ids": [broken["id"]]}, headers=auth("nope"))).status_code == 401
    assert (await api.get(f"/api/dlq/{broken['id']}")).json()["status"] == "new"

    # Correct the coordinates and replay: accepted, in the courier's trail, entry marked replayed.
    fixed = dict(detail["payload_json"], lat=12.95)
    response = await api.post(f"/api/dlq/{broken['id']}/replay", json={"payload": fixed}, headers=auth())
    assert response.status_code == 200, response.text
    assert response.json()["replay_count"] == 1
    trail = await eventually(lambda: _trail(api, "courier-b"), what="courier-b's replayed fix")
    assert trail[0][1:3] == [12.95, 77.60]
    assert (await api.get(f"/api/dlq/{broken['id']}")).json()["status"] == "replayed"
    assert (await api.post(f"/api/dlq/{broken['id']}/replay", headers=auth())).status_code == 409

    # Replay the stale ping as it was: history only; the live marker stays on the newer fix.
    stale = await entry_for(api, "courier-a", "stale_timestamp")
    assert (await api.post(f"/api/dlq/{stale['id']}/replay", headers=auth())).status_code == 200
    await eventually(lambda: _trail_has(api, "courier-a", now - 600_000), what="the stale fix in history")
    live = (await api.get("/api/couriers/courier-a")).json()["position"]
    assert (live["lat"], live["ts"]) == (latest[0], now - 1_000)
    position = json.loads(await store.position_json("courier-a"))
    assert (position["lat"], position["ts"]) == (latest[0], now - 1_000)
    counters = await store.counters()
    assert counters["accepted:history"] == 1

    # Discard in bulk; the CLI agrees with the page on every count.
    rest = [item["id"] for item in (await api.get("/api/dlq", params={"status": "new"})).json()["items"]]
    response = await api.post("/api/dlq/discard", json={"ids": rest}, headers=auth())
    assert all(result["ok"] for result in response.json()["results"])
    page_stats = (await api.get("/api/dlq/stats")).json()
    assert page_stats["by_status"] == {"new": 0, "replayed": 2, "discarded": 2}
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "dlq", "stats", "--json"],
        env=subprocess_env(settings),
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr.decode()
    cli_stats = json.loads(cli.stdout)
    for key in ("total", "by_reason", "by_status", "by_partner"):
        assert cli_stats[key] == page_stats[key], key


async def test_replay_cap_and_refused_replays(system, api, settings, producer):
    now = int(time.time() * 1000)
    body = json.dumps({"partner_id": "courier-z", "lat": 95, "lon": 77.6, "ts": now}).encode()
    # A genuine third replay (signed with the deployment's secret) that is still wrong: its count is read.
    tired = OutRecord(
        value=body, key=b"courier-z", headers=replay_sig.replay_headers(settings.replay_secret, "0:1", 3, body)
    )
    # Anyone can add replay headers; unsigned ones count for nothing (not -1000, not 3).
    forged = OutRecord(
        value=json.dumps({"partner_id": "courier-f", "lat": 95, "lon": 77.6, "ts": now}).encode(),
        key=b"courier-f",
        headers=((c.H_REPLAY_OF, b"0:1"), (c.H_REPLAY_COUNT, b"-1000")),
    )
    big = ping("courier-big", *BLR, now, pad="x" * 6000)  # over the 4 KiB payload limit
    await produce(producer, settings, tired, forged, big)
    entry = await eventually(lambda: entry_for(api, "courier-z", "invalid_coordinates"), what="the replayed reject")
    assert entry["replay_count"] == 3
    fixed = {"partner_id": "courier-z", "lat": 12.95, "lon": 77.6, "ts": now}
    response = await api.post(f"/api/dlq/{entry['id']}/replay", json={"payload": fixed}, headers=auth())
    assert response.status_code == 422
    assert "cap is 3" in response.json()["error"]
    assert (await api.get(f"/api/dlq/{entry['id']}")).json()["status"] == "new"
    unsigned = await eventually(lambda: entry_for(api, "courier-f", "invalid_coordinates"), what="the forged one")
    assert unsigned["replay_count"] == 0

    # A payload too large to replay as is: the page gets a preview with the size, and only an edit replays.
    large = await eventually(lambda: entry_for(api, "courier-big", "malformed_payload"), what="the large ping")
    detail = (await api.get(f"/api/dlq/{large['id']}")).json()
    assert detail["payload_truncated"] and not detail["replay_as_is"] and detail["payload_json"] is None
    assert big.value is not None
    assert (detail["payload_shown"], detail["payload_size"]) == (settings.max_payload_bytes, len(big.value))
    assert detail["payload_sha256"] == hashlib.sha256(big.value).hexdigest()
    response = await api.post(f"/api/dlq/{large['id']}/replay", headers=auth())
    assert response.status_code == 422
    assert response.json()["error"] == "too large to replay as is; replay an edited payload"

    # Edited payloads the validator would reject are refused with its reason, before anything changes.
    for payload, reason in [
        ({"partner_id": "courier-big", "lat": 10**400, "lon": 77.6, "ts": now}, "invalid_coordinates"),
        ('{"partner_id": "courier-big", "lat": 1' + "0" * 400 + ', "lon": 77.6, "ts": 1}', "invalid_coordinates"),
        ({"partner_id": "courier-big", "deep": json.loads("[" * 500 + "]" * 500)}, "malformed_payload"),
        ({"partner_id": "courier-big", "lat": 12.9, "lon": 77.6}, "invalid_timestamp"),
    ]:
        response = await api.post(f"/api/dlq/{large['id']}/replay", json={"payload": payload}, headers=auth())
        assert response.status_code == 422, response.text
        assert response.json()["reason"] == reason, response.text
        assert response.json()["error"].startswith(f"the edited payload would be rejected: {reason}: ")
    response = await api.post(
        f"/api/dlq/{large['id']}/replay", content=b'{"payload": ' + b"[" * 5000 + b"]" * 5000 + b"}", headers=auth()
    )
    assert response.status_code == 422 and response.json()["reason"] == "malformed_payload"
    assert (await api.get(f"/api/dlq/{large['id']}")).json()["status"] == "new"
    # The CLI says the same in one line, exit code 1.
    edit = json.dumps({"partner_id": "courier-big", "lat": 10**400, "lon": 77.6, "ts": now})
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "dlq", "replay", large["id"], "--edit", "-"],
        input=edit.encode(),
        env=subprocess_env(settings),
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 1
    [line] = cli.stderr.decode().splitlines()
    assert line.startswith(f"{large['id']}: the edited payload would be rejected: invalid_coordinates: ")
    # A corrected one goes through.
    fixed = {"partner_id": "courier-big", "lat": 12.95, "lon": 77.6, "ts": now}
    response = await api.post(f"/api/dlq/{large['id']}/replay", json={"payload": fixed}, headers=auth())
    assert response.status_code == 200, response.text
    await eventually(lambda: _trail(api, "courier-big"), what="courier-big's corrected fix")


async def test_replays_are_refused_without_a_replay_secret(infra):
    unsigned = infra.replace(namespace=f"nosecret{int(time.time() * 1000)}.", admin_token=TOKEN)
    assert unsigned.replay_secret is None
    app = create_app(unsigned, consume=False)
    with TestClient(app, base_url="http://localhost") as client:
        for url, body in [
            ("/api/dlq/0:1/replay", None),
            ("/api/dlq/0:1/replay", {"payload": {"a": 1}}),
            ("/api/dlq/replay", {"ids": ["0:1"]}),
        ]:
            response = client.post(url, json=body, headers=auth())
            assert response.status_code == 403
            assert response.json()["error"] == "replays are disabled: no TRACKER_REPLAY_SECRET is configured"
        assert client.post("/api/dlq/0:1/discard", headers=auth()).status_code == 404  # discards still work
    env = subprocess_env(unsigned)
    env.pop("TRACKER_REPLAY_SECRET", None)
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "dlq", "replay", "0:1"],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 1
    assert cli.stderr.decode() == "replays are disabled: no TRACKER_REPLAY_SECRET is configured\n"


def test_writes_are_refused_without_a_configured_token(infra):
    app = create_app(infra.replace(namespace="notoken.", admin_token=None), consume=False)
    with TestClient(app, base_url="http://localhost") as client:
        response = client.post("/api/dlq/0:1/replay", headers=auth())
        assert response.status_code == 403
        assert "TRACKER_ADMIN_TOKEN" in response.json()["error"]
        assert client.post("/api/dlq/discard", json={"ids": ["0:1"]}).status_code == 403


async def _listing_with(api, count):
    listing = (await api.get("/api/dlq")).json()
    return listing if listing["total"] >= count else None


async def _trail(api, partner_id):
    response = await api.get(f"/api/couriers/{partner_id}")
    return response.json()["trail"] if response.status_code == 200 and response.json()["trail"] else None


async def _trail_has(api, partner_id, ts):
    trail = await _trail(api, partner_id) or []
    return any(point[0] == ts for point in trail)
