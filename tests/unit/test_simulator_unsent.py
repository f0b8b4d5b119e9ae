"""Pings the producer gives up on are counted as unsent, with the reason, and the run goes on."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from typing import cast

import msgspec
import pytest
from aiokafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

from simulator.cli import ProgressLine, format_progress
from simulator.config import SimConfig
from simulator.faults import DUPLICATE
from simulator.run import SimStats, run_simulation
from tracker.constants import H_SIM_EXPECT
from tracker.kafka import Producer
from tracker.models import OutRecord
from tracker.settings import Settings

SETTINGS = Settings()
COUNT = 10_000
CONFIG = SimConfig(couriers=200, count=COUNT, burst=True, bad_rate=0.1, duplicate_rate=0.02, seed=11)


class FlakyProducer:
    """Stands in for tracker.kafka.Producer; ``fail(partition, request)`` says how a share fares: None (acked),
    an exception for its ack future (the producer gave up), or ``("raise", error)`` (refused when queued)."""

    def __init__(self, fail) -> None:
        self.fail = fail
        self.requests = 0
        self.acked: list[OutRecord] = []
        self.given_up: list[OutRecord] = []

    async def partition_count(self, topic):
        return SETTINGS.location_partitions

    async def send_many(self, topic, records):
        records = list(records)
        partition = records[0].partition
        assert {record.partition for record in records} == {partition}  # one share per partition
        outcome = self.fail(partition, self.requests)
        if isinstance(outcome, tuple):
            self.given_up.extend(records)
            raise outcome[1]
        future = asyncio.get_running_loop().create_future()
        if outcome is None:
            self.acked.extend(records)
            future.set_result(None)
        else:
            self.given_up.extend(records)
            future.set_exception(outcome)
        return [future]

    async def flush(self) -> None:
        pass

    def counts(self, records) -> Counter[str]:
        return Counter((dict(record.headers).get(H_SIM_EXPECT) or b"good").decode() for record in records)


def stats_counts(stats: SimStats) -> Counter[str]:
    return Counter({"good": stats.good, DUPLICATE: stats.duplicates, **stats.bad_by_reason}) - Counter()


async def run(producer: FlakyProducer) -> SimStats:
    def next_request(stats: SimStats) -> None:  # progress comes once per batch, after its acks (or errors)
        producer.requests += 1

    return await run_simulation(SETTINGS, CONFIG, cast(Producer, producer), progress=next_request)


async def test_a_share_whose_ack_fails_is_unsent_and_the_run_goes_on():
    # Partition 3 is unreachable for the first two batches: the producer times its shares out.
    producer = FlakyProducer(
        lambda partition, request: (
            KafkaTimeoutError("batch expired after 40000 ms") if partition == 3 and request < 2 else None
        )
    )
    stats = await run(producer)

    assert stats.unsent == len(producer.given_up) > 0
    assert stats.unsent_by_reason == {"KafkaTimeoutError: batch expired after 40000 ms": stats.unsent}
    assert stats.produced == len(producer.acked)  # produced counts what the broker acknowledged, nothing else
    assert stats.produced + stats.unsent == COUNT  # every ping is one or the other
    assert stats_counts(stats) == producer.counts(producer.acked)  # the tallies follow the acked pings
    assert all(record.partition == 3 for record in producer.given_up)


async def test_a_share_refused_when_queued_is_unsent_too():
    producer = FlakyProducer(
        lambda partition, request: ("raise", KafkaTimeoutError()) if partition in (0, 7) and request == 1 else None
    )
    stats = await run(producer)
    assert stats.unsent == len(producer.given_up) > 0
    assert stats.unsent_by_reason == {"KafkaTimeoutError": stats.unsent}
    assert stats.produced == len(producer.acked) == COUNT - stats.unsent


async def test_reasons_are_counted_apart():
    def fail(partition, request):
        if request == 0 and partition == 1:
            return NotLeaderForPartitionError()
        if request == 1 and partition == 2:
            return KafkaTimeoutError("no ack within 40000 ms")
        return None

    producer = FlakyProducer(fail)
    stats = await run(producer)
    in_partition = Counter(record.partition for record in producer.given_up)
    assert stats.unsent_by_reason == {
        "[Error 6] NotLeaderForPartitionError": in_partition[1],
        "KafkaTimeoutError: no ack within 40000 ms": in_partition[2],
    }


async def test_a_producer_that_gives_up_on_everything_does_not_stop_the_run():
    producer = FlakyProducer(lambda partition, request: KafkaTimeoutError("broker down"))
    stats = await run(producer)
    assert (stats.produced, stats.unsent) == (0, COUNT)


async def test_an_error_that_is_no_delivery_failure_is_not_swallowed():
    producer = FlakyProducer(
        lambda partition, request: ("raise", ValueError("record does not fit in a batch")) if partition == 5 else None
    )
    with pytest.raises(ValueError, match="does not fit"):
        await run(producer)


def test_unsent_pings_show_in_the_progress_line_and_the_summary():
    stats = SimStats(
        produced=12_345,
        good=11_600,
        bad=617,
        duplicates=128,
        bad_by_reason={"out_of_order": 617},
        elapsed_s=6.02,
        pings_per_s=2050.7,
        seed=1,
        unsent=1_500,
        unsent_by_reason={"KafkaTimeoutError: broker down": 1_200, "NotLeaderForPartitionError": 300},
    )
    assert format_progress(stats, 2050.7) == (
        "sent 12,345 | 2,051 pings/s | bad 617 (5.0%) | duplicates 128 | unsent 1,500 (KafkaTimeoutError) | 6 s"
    )
    summary = json.loads(msgspec.json.encode(stats))
    assert (summary["unsent"], summary["unsent_by_reason"]) == (1_500, stats.unsent_by_reason)
    nothing_lost = msgspec.structs.replace(stats, unsent=0, unsent_by_reason={})
    assert "unsent" not in format_progress(nothing_lost, 2050.7)
    assert json.loads(msgspec.json.encode(nothing_lost))["unsent"] == 0


class SlowBroker(FlakyProducer):
    """Acks the first batch only after ``delay_s``, like a broker that is restarting."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(lambda partition, request: None)
        self.delay_s = delay_s

    async def send_many(self, topic, records):
        futures = await super().send_many(topic, records)
        if self.requests:
            return futures
        late = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.delay_s, late.set_result, None)
        return [late]


async def test_a_batch_waiting_for_the_broker_is_reported_every_second_and_then_counted():
    producer, waits = SlowBroker(delay_s=2.5), list[float]()
    config = SimConfig(couriers=100, count=4_000, burst=True, seed=2)

    def next_request(stats: SimStats) -> None:
        producer.requests += 1

    stats = await run_simulation(
        SETTINGS, config, cast(Producer, producer), progress=next_request, waiting=waits.append
    )
    assert [round(seconds) for seconds in waits] == [1, 2]
    assert (stats.produced, stats.unsent) == (4_000, 0)


def test_the_progress_line_says_how_long_it_has_been_waiting_for_the_broker():
    now = [0.0]
    stream = io.StringIO()
    progress = ProgressLine(stream, clock=lambda: now[0])  # not a terminal: a line every 5 s at most
    for second in range(1, 4):
        now[0] = float(second)
        progress.waiting(float(second))
    stats = SimStats(
        produced=600,
        good=540,
        bad=54,
        duplicates=6,
        bad_by_reason={"out_of_order": 54},
        elapsed_s=7.0,
        pings_per_s=85.7,
        seed=1,
    )
    now[0] = 7.0
    progress(stats)
    for second in range(1, 12):
        now[0] = 7.0 + second
        progress.waiting(float(second))
    assert stream.getvalue().splitlines() == [
        "waiting 1 s for the broker's first ack",
        "sent 600 | 100 pings/s | bad 54 (9.0%) | duplicates 6 | 7 s",
        "sent 600 | 0 pings/s | bad 54 (9.0%) | duplicates 6 | 7 s | waiting 5 s for the broker",
        "sent 600 | 0 pings/s | bad 54 (9.0%) | duplicates 6 | 7 s | waiting 10 s for the broker",
    ]
