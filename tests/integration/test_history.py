"""History through the real validator, broker and Redis, read back through the gateway's routes.

One courier's pings, and a signed replay of an older fix (kept as history only), go through the validator;
``/api/couriers/{id}/trail`` answers exactly the fixes of a window, oldest first, past the trail's cap; the
fleet window has every courier. Then the validator group's offsets are rewound and everything is delivered
again: history does not change."""

from __future__ import annotations

import base64
import json
import struct
import time

import pytest
from starlette.testclient import TestClient

from tests.helpers import eventually
from tests.integration.kafka_helpers import validate_until_idle
from tracker.gateway import create_app
from tracker.history import plan
from tracker.kafka import Consumer
from tracker.models import OutRecord
from tracker.replay_sig import replay_headers

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

BASE = "http://localhost:8000"


def ping(partner_id: str, ts: int, lat: float, lon: float) -> bytes:
    return json.dumps({"partner_id": partner_id, "lat": lat, "lon": lon, "ts": ts, "vehicle": "bike"}).encode()


async def rewind(settings) -> None:
    """Join the validator group and commit offset 0 everywhere: the next validator gets everything again."""
    assigned: list[tuple[str, int]] = []

    async def on_assign(partitions) -> None:
        assigned.extend(partitions)

    async def polled() -> list[tuple[str, int]]:
        await consumer.poll(timeout_ms=200)  # the group is joined and partitions assigned while polling
        return assigned

    consumer = Consumer(settings, [settings.location_topic], group_id=settings.validator_group, on_assign=on_assign)
    await consumer.start()
    try:
        await eventually(polled, timeout_s=30, interval_s=0, what="partitions assigned to the rewinding member")
        await consumer.commit(dict.fromkeys(assigned, 0))
    finally:
        await consumer.stop()


async def test_a_window_is_exactly_its_fixes_oldest_first_and_redelivery_changes_nothing(settings, store, producer):
    settings = settings.replace(trail_max=5)
    now = int(time.time() * 1000)
    fixes = [(now - 90_000 + 2_000 * i, 12.9716 + i * 1e-5, 77.5946 + i * 2e-5) for i in range(40)]
    records = [OutRecord(ping("c-1", *fix), b"c-1") for fix in fixes]
    records.append(OutRecord(ping("team/trail", now - 5_000, 12.95, 77.62), b"team/trail"))
    # A genuine replay of a fix older than c-1's latest: history only (the live position stays).
    older = ping("c-1", fixes[10][0] + 1_000, 12.9800, 77.6000)
    records.append(OutRecord(older, b"c-1", headers=replay_headers(settings.replay_secret or "", "0:1", 1, older)))
    for future in await producer.send_many(settings.location_topic, records):
        await future
    await validate_until_idle(settings)
    counters = await store.counters()
    assert (counters["accepted"], counters["accepted:history"]) == (42, 1)

    app = create_app(settings, consume=False)
    with TestClient(app, base_url=BASE) as client:

        def trail(**params) -> dict:
            response = client.get("/api/couriers/c-1/trail", params=params)
            assert response.status_code == 200, response.text
            return response.json()

        low, high = fixes[5][0], fixes[30][0]
        window = trail(**{"from": low, "to": high})
        expected = [[ts, round(lat, 6), round(lon, 6)] for ts, lat, lon in fixes[5:31]]
        expected.insert(6, [fixes[10][0] + 1_000, 12.98, 77.6])  # the replay, in its place in time
        assert window["points"] == expected
        assert (window["from"], window["to"], window["downsampled_before"]) == (low, high, None)
        assert len(trail()["points"]) == 41  # the default: the last hour
        assert len(client.get("/api/couriers/c-1").json()["trail"]) == 5  # the trail keeps its cap

        # An id ending in "/trail" is an id when that slash was sent as %2F; its trail is one more "/trail" on.
        assert client.get("/api/couriers/team%2Ftrail").json()["position"]["id"] == "team/trail"
        assert [p[0] for p in client.get("/api/couriers/team%2Ftrail/trail").json()["points"]] == [now - 5_000]
        assert client.get("/api/couriers/nobody/trail").json()["points"] == []

        for params, message in [
            ({"from": "yesterday"}, plan.BAD_TIME),
            ({"from": "5", "to": "4"}, plan.FROM_AFTER_TO),
            ({"from": "0", "to": str(now)}, plan.too_long(settings.history_s * 1000)),
        ]:
            response = client.get("/api/couriers/c-1/trail", params=params)
            assert (response.status_code, response.json()) == (400, {"error": message})
        assert client.get("/api/couriers/%20/trail").status_code == 404

        fleet = client.get("/api/history/fleet", params={"from": now - 100_000, "to": now}).json()
        by_id = {track["id"]: track for track in fleet["couriers"]}
        assert sorted(by_id) == ["c-1", "team/trail"]
        step = settings.history_step_s * 1000
        # The replay's slot already had c-1's fix: the script's check kept it out of the step tier.
        hours = sorted({ts - ts % plan.STEP_BUCKET_MS for ts, _, _ in fixes})
        _, step_values = await store.history_buckets("c-1", [], [plan.suffix(hour, "c-1") for hour in hours])
        stepped = [
            ts for hour, blob in zip(hours, step_values, strict=True) for ts, _, _ in plan.unpack(blob or b"", hour)
        ]
        assert stepped == sorted(stepped) and fixes[10][0] + 1_000 not in stepped
        assert stepped == [ts for ts, _, _ in fixes if ts == min(t for t, _, _ in fixes if t // step == ts // step)]
        packed = base64.b64decode(by_id["c-1"]["points"])  # the fleet's answer is that tier
        assert [fleet["from"] + t for t, _, _ in struct.iter_unpack("<iii", packed)] == stepped
        response = client.get("/api/history/fleet", params={"from": "0", "to": str(now)})
        assert (response.status_code, response.json()) == (400, {"error": plan.too_long(plan.FLEET_WINDOW_MAX_MS)})

        before = trail(**{"from": now - 100_000, "to": now})
        await rewind(settings)
        again = await validate_until_idle(settings)
        assert again["skipped"] == len(records) and again["accepted"] == 0
        assert trail(**{"from": now - 100_000, "to": now}) == before
