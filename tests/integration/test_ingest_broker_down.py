"""The ingest with its broker stopped: it answers 503 with Retry-After and acknowledges nothing it did not
write; once the broker is back, the phone's retry lands on the map exactly once.

A broker of this test's own (the session's is shared), Apache Kafka only: a restarted Tansu has no data.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import msgspec
import pytest

from tests.helpers import BROKER, REPLAY_SECRET, eventually
from tests.integration.ingest_helpers import LAT, LON, now_ms, running_ingest
from tests.integration.kafka_helpers import read_topic, validate_until_idle
from tracker.kafka import ensure_topics
from tracker.local.embedded import EmbeddedStack
from tracker.settings import Settings
from tracker.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.mark.skipif(BROKER == "tansu", reason="Tansu keeps its records in memory: a restarted Tansu has none")
async def test_a_stopped_broker_gets_503_and_the_retry_lands_once(infra: Settings, tmp_path) -> None:
    base = msgspec.structs.replace(
        infra,
        kafka_bootstrap_servers=None,  # a broker of our own; the session's Redis
        embedded_broker="kafka",
        kafka_idempotence=True,
        data_dir=str(tmp_path),
        namespace=f"t{uuid.uuid4().hex[:10]}.",
        replay_secret=REPLAY_SECRET,
        ingest_auth="open",
        ingest_produce_timeout_s=2.0,
    )
    stack = EmbeddedStack(base)
    own = await asyncio.to_thread(stack.start)
    try:
        await ensure_topics(own)
        ts = now_ms()
        first = {"partner_id": "c-outage", "lat": LAT, "lon": LON, "ts": ts}
        second = {**first, "lat": LAT + 0.0001, "ts": ts + 1000}  # 11 m on
        async with running_ingest(own) as (_, client):
            assert (await client.post("/v1/pings", json=first)).status_code == 200

            await asyncio.to_thread(stack.stop_broker)
            refused = await client.post("/v1/pings", json=second)
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "2"
            assert "error" in refused.json()
            assert (await client.get("/readyz")).status_code == 503

            await asyncio.to_thread(stack.start_broker)

            async def retried() -> bool:  # what the phone does: the same request again, until it gets its 2xx
                return (await client.post("/v1/pings", json=second)).status_code == 200

            await eventually(retried, what="the phone's retry to be acknowledged", timeout_s=60, interval_s=1)
            assert (await client.get("/readyz")).status_code == 200

        totals = await validate_until_idle(own, idle_s=1.0)
        produced = await read_topic(own, own.location_topic, idle_s=1.0)
        async with Store(own) as store:
            stored = json.loads(await store.position_json("c-outage") or b"{}")
            trail = await store.trail("c-outage")
            counters = await store.counters()
    finally:
        await asyncio.to_thread(stack.stop)
    # The first fix and the retried one are on the map, each once; a copy the broker took before the 503, if
    # any, was dropped as a duplicate; every record the ingest wrote is accounted for.
    assert (stored["ts"], stored["lat"]) == (second["ts"], second["lat"])
    assert sorted(point[0] for point in trail) == [first["ts"], second["ts"]]
    assert counters.get("accepted") == 2 and counters.get("rejected", 0) == 0, counters
    assert counters.get("accepted", 0) + counters.get("duplicates", 0) == len(produced), (counters, totals)
    print(f"\n{len(produced)} records for 2 fixes ({counters.get('duplicates', 0)} dropped as duplicates)")
