"""The ingest's pure parts and its batcher (unit): device buckets, the record a fix becomes, the metrics'
exposition, and how requests share produce calls and time out."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
from typing import cast

import pytest

from tracker.constants import H_INGEST_PROTOCOL
from tracker.ingest.batcher import Batcher, ProduceFailed, ProduceTimeout
from tracker.ingest.limits import DeviceBuckets
from tracker.ingest.metrics import IngestMetrics
from tracker.ingest.records import Protocol, encode, record
from tracker.kafka import Producer, partition_for
from tracker.models import OutRecord
from tracker.rules import decode_json
from tracker.settings import Settings
from tracker.supervision import child_env


def test_a_device_bursts_up_to_its_bucket_then_waits_at_its_rate() -> None:
    buckets = DeviceBuckets(rate=2.0, burst=4)
    assert [buckets.take("a", 1, 0.0) for _ in range(4)] == [0.0] * 4
    assert buckets.take("a", 1, 0.0) == pytest.approx(0.5)  # the 429's Retry-After: one ping at 2/s
    assert buckets.take("b", 4, 0.0) == 0.0  # devices do not share a bucket
    assert buckets.take("a", 1, 0.5) == 0.0  # refilled meanwhile
    assert buckets.take("a", 100, 10.0) == 0.0  # a request larger than the bucket costs the whole bucket
    assert buckets.take("a", 1, 10.0) == pytest.approx(0.5)


def test_the_buckets_of_idle_devices_are_dropped_past_the_cap() -> None:
    buckets = DeviceBuckets(rate=1.0, burst=1, max_devices=3)
    for n in range(10):
        buckets.take(f"d{n}", 1, float(n))
    assert len(buckets) == 3
    assert buckets.take("d0", 1, 10.0) == 0.0  # forgotten, so full again


def test_the_record_is_the_ping_of_the_authenticated_courier_keyed_by_it() -> None:
    ping = {"partner_id": "mallory", "lat": 12.97, "lon": 77.59, "ts": 1795000000000, "app": {"batt": 80}}
    made = record(ping, "alice", Protocol.OWNTRACKS, 4096)
    assert json.loads(made.value or b"") == {**ping, "partner_id": "alice"}
    assert made.key == b"alice"
    assert made.headers == ((H_INGEST_PROTOCOL, b"owntracks"),)
    assert made.partition is None  # the producer's murmur2 rule, as for every other producer
    assert record(ping, "alice", Protocol.OWNTRACKS, 4096) == made  # a retry makes the same bytes


def test_values_the_app_sent_malformed_reach_the_validator_as_they_came() -> None:
    ping = {"lat": math.nan, "lon": math.inf, "ts": 10**30, "speed": None, "vehicle": "\ud800"}
    value = record(ping, "c", Protocol.NATIVE, 4096).value or b""
    decoded = decode_json(value, 4096)  # the validator's decoder
    assert isinstance(decoded, dict)
    assert math.isnan(decoded["lat"]) and decoded["lon"] == math.inf
    assert (decoded["ts"], decoded["speed"], decoded["vehicle"]) == (10**30, None, "\ud800")
    assert encode({"a": 1}) == b'{"a":1}'  # the usual case: msgspec's compact JSON


def test_a_ping_over_the_payload_limit_goes_without_its_app_fields() -> None:
    ping = {"lat": 12.97, "lon": 77.59, "ts": 1795000000000, "app": {"note": "x" * 500}}
    assert "app" not in json.loads(record(ping, "c", Protocol.OSMAND, 300).value or b"")
    assert "app" in json.loads(record(ping, "c", Protocol.OSMAND, 4096).value or b"")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_the_metrics_pass_promtool() -> None:
    metrics = IngestMetrics()
    metrics.requests.labels(protocol="osmand", status="200").inc()
    metrics.auth_failures.labels(reason="missing").inc()
    metrics.produce_latency.observe(0.004)
    metrics.batch_pings.observe(12)
    metrics.batches.inc()
    checked = subprocess.run(["promtool", "check", "metrics"], input=metrics.render(), capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


class FakeProducer:
    """Stands in for Producer: every send_many call is kept with futures the test resolves."""

    def __init__(self, partitions: int = 4) -> None:
        self.partitions = partitions
        self.calls: list[list[OutRecord]] = []
        self.acks: list[asyncio.Future] = []
        self.refuse: set[int] = set()

    async def partition_count(self, topic: str) -> int:
        return self.partitions

    async def send_many(self, topic: str, records) -> list[asyncio.Future]:
        records = list(records)
        if records[0].partition in self.refuse:
            raise ValueError("record too large")
        self.calls.append(records)
        ack: asyncio.Future = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return [ack]

    def ack_all(self) -> None:
        for ack in self.acks:
            if not ack.done():
                ack.set_result(None)


def rec(courier: str) -> OutRecord:
    return OutRecord(b"{}", courier.encode())


async def started(producer: FakeProducer, **kwargs) -> Batcher:
    batcher = Batcher(cast("Producer", producer), "t", IngestMetrics(), **kwargs)
    await batcher.start()
    return batcher


async def test_requests_that_arrive_while_a_flush_is_in_flight_share_the_next_one() -> None:
    producer = FakeProducer(partitions=1)
    batcher = await started(producer, max_in_flight=1)
    first = asyncio.create_task(batcher.produce([rec("a")], 5))
    await asyncio.sleep(0.01)
    assert len(producer.calls) == 1  # alone: sent at once
    rest = [asyncio.create_task(batcher.produce([rec(f"c{n}")], 5)) for n in range(50)]
    await asyncio.sleep(0.01)
    assert len(producer.calls) == 1  # waiting for the first acknowledgement
    assert not first.done()
    producer.ack_all()
    await first
    await asyncio.sleep(0.01)
    assert [len(call) for call in producer.calls] == [1, 50]  # everyone who waited, in one call
    producer.ack_all()
    await asyncio.gather(*rest)
    await batcher.stop()


async def test_a_request_that_times_out_before_its_flush_is_never_produced() -> None:
    producer = FakeProducer(partitions=1)
    batcher = await started(producer, max_in_flight=1)
    stuck = asyncio.create_task(batcher.produce([rec("a")], 0.05))
    await asyncio.sleep(0.01)
    with pytest.raises(ProduceTimeout):
        await batcher.produce([rec("late")], 0.05)  # queued behind the unacknowledged flush: withdrawn
    with pytest.raises(ProduceTimeout):
        await stuck  # handed over but not acknowledged: a 503 too (it may still be written; a retry is a duplicate)
    producer.ack_all()
    await asyncio.sleep(0.01)
    assert [[r.key for r in call] for call in producer.calls] == [[b"a"]]
    await batcher.stop()


async def test_one_partition_refused_fails_only_the_requests_that_wrote_to_it() -> None:
    producer = FakeProducer(partitions=8)
    bad = partition_for(b"bad", 8)
    producer.refuse = {bad}
    good = next(f"g{n}" for n in range(100) if partition_for(f"g{n}".encode(), 8) != bad)
    batcher = await started(producer)
    outcome = asyncio.gather(batcher.produce([rec(good)], 1), batcher.produce([rec("bad")], 1), return_exceptions=True)
    await asyncio.sleep(0.01)
    producer.ack_all()
    ok, refused = await outcome
    assert ok is None
    assert isinstance(refused, ProduceFailed) and "too large" in str(refused)
    await batcher.stop()


def test_the_ingest_child_of_tracker_up_gets_no_operator_viewer_or_replay_secret() -> None:
    settings = Settings(admin_token="admin-token-1", viewer_token="viewer-token-1", replay_secret="replay-secret-1")
    env = child_env(settings, "ingest", "admin-token-1")
    assert not {"TRACKER_ADMIN_TOKEN", "TRACKER_VIEWER_TOKEN", "TRACKER_REPLAY_SECRET"} & set(env)
    assert env["TRACKER_INGEST_PORT"] == "5055"
