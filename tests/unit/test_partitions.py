"""The validator's per-partition state (tracker/partitions.py): each transition on its own, then the
validator's fencing, resync, failed writes and crash-loop guard driven with an in-memory store and producer
(the same paths run against the real broker and Redis in tests/integration/test_failure_paths.py and
tests/integration/test_poison.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest

from tracker.geo import load_service_area
from tracker.kafka import Producer
from tracker.models import OutRecord, Record
from tracker.partitions import UNVERIFIED, Partitions
from tracker.settings import Settings
from tracker.store import FENCED, Slice, Store, StoreError
from tracker.validator import Validator

# -- the transitions -------------------------------------------------------------------------------------


def test_take_hands_out_the_progress_a_slice_was_judged_on_and_moves_it():
    partitions = Partitions()
    assert partitions.assign({0: 9, 1: -1}, {}) == {}
    assert partitions.owned == {0, 1}
    assert partitions.take(0, 19) == 9
    assert partitions.take(0, 29) == 19
    assert partitions.progress(0) == 29


def test_a_fence_ends_the_epoch_and_resumes_after_what_redis_recorded():
    partitions = Partitions()
    partitions.assign({0: -1}, {})
    partitions.take(0, 9)
    partitions.take(0, 19)
    epoch = partitions.epoch(0)
    partitions.fence(0, 4)
    assert partitions.epoch(0) == epoch + 1  # batches prepared so far are dropped
    assert partitions.progress(0) == 19  # ... but nothing moves until the next prepare applies the resync
    assert partitions.resync() == [(0, 5)]
    assert partitions.take(0, 9) == 4  # judged again on what Redis holds, with the compare-and-set
    assert partitions.resync() == []


def test_a_failed_write_resumes_after_the_batch_unverified_once():
    partitions = Partitions()
    partitions.assign({0: -1}, {})
    partitions.take(0, 9)
    partitions.fail(0, 9)
    assert partitions.resync() == [(0, 10)]
    assert partitions.take(0, 19) == UNVERIFIED  # Redis progress lags by the failed batch
    assert partitions.take(0, 29) == 19  # and only that once


def test_revoke_forgets_the_partition_but_not_its_epoch():
    partitions = Partitions()
    partitions.assign({0: 5}, {})
    epoch = partitions.epoch(0)
    partitions.fence(0, 7)
    partitions.revoke({0})
    assert not partitions.owns(0) and partitions.resync() == []
    partitions.assign({0: 7}, {})
    assert partitions.epoch(0) > epoch + 1  # a batch from before the revoke can never match again


def test_a_high_water_mark_beyond_progress_means_the_previous_owner_died():
    partitions = Partitions()
    assert partitions.assign({0: 9, 1: 9, 2: 9}, {0: 14, 1: 9, 2: 3}) == {0: (10, 14)}
    assert partitions.any_careful
    assert partitions.careful(0) and not partitions.careful(1) and not partitions.careful(2)
    partitions.take(0, 13)
    assert partitions.careful(0)
    partitions.take(0, 14)
    assert not partitions.careful(0) and not partitions.any_careful


# -- the validator with in-memory fakes --------------------------------------------------------------------

NOW = 1_795_000_000_000
TOPIC = Settings().location_topic


class FakeStore:
    """The store's contract in memory: Store.apply's compare-and-set on the recorded progress included."""

    def __init__(self) -> None:
        self.recorded: dict[int, int] = {}
        self.high: dict[int, int] = {}
        self.attempts: dict[tuple[int, int], int] = {}
        self.counters: dict[str, int] = {}
        self.slices: list[Slice] = []
        self.failures = 0  # apply raises this many more times

    async def progress(self, topic, partitions):
        return {p: self.recorded.get(p, -1) for p in partitions}

    async def high_water(self, topic, partitions):
        return {p: self.high.get(p, -1) for p in partitions}

    async def mark_high_water(self, topic, offsets):
        self.high.update(offsets)

    async def note_attempt(self, topic, partition, offset):
        self.attempts[partition, offset] = self.attempts.get((partition, offset), 0) + 1
        return self.attempts[partition, offset]

    async def clear_attempts(self, topic, records):
        for key in records:
            self.attempts.pop(key, None)

    async def last_fixes(self, partner_ids):
        return dict.fromkeys(partner_ids)

    async def apply(self, topic, slices, blobs=None):  # blobs: the history points, not looked at here
        if self.failures:
            self.failures -= 1
            raise StoreError("OOM command not allowed")
        outcomes = []
        for piece in slices:
            if piece.prev != UNVERIFIED and self.recorded.get(piece.p, -1) != piece.prev:
                outcomes.append(FENCED)
                continue
            self.slices.append(piece)
            for name, count in piece.cnt.items():
                self.counters[name] = self.counters.get(name, 0) + count
            self.recorded[piece.p] = piece.last
            outcomes.append(1)
        return outcomes


class FakeProducer:
    def __init__(self) -> None:
        self.sent: dict[str, list[OutRecord]] = {}

    async def send_many(self, topic, records):
        records = list(records)
        self.sent.setdefault(topic, []).extend(records)
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return [future]


def record(offset: int, partition: int = 0, **fields) -> Record:
    doc: dict[str, Any] = {"partner_id": f"c{offset}", "lat": 12.97, "lon": 77.59, "ts": NOW - 1000} | fields
    return Record(TOPIC, partition, offset, NOW, doc["partner_id"].encode(), json.dumps(doc).encode(), ())


def batch(first: int, last: int, partition: int = 0) -> dict:
    return {(TOPIC, partition): [record(offset, partition) for offset in range(first, last + 1)]}


class RecordingValidator(Validator):
    """A validator whose seeks and commits (a consumer's work) are recorded by the fixture below."""

    seeks: list[tuple[int, int]]
    committed: dict


@pytest.fixture
def validator():
    settings = Settings(retry_attempts=2, retry_backoff_ms=1, retry_max_backoff_ms=1, crash_loop_limit=3)
    made = RecordingValidator(
        settings,
        load_service_area(None),
        cast(Store, FakeStore()),
        cast(Producer, FakeProducer()),
        clock_ms=lambda: NOW,
    )
    made.seeks = []
    made.seek = lambda partition, offset: made.seeks.append((partition, offset))
    made.committed = {}

    async def commit(offsets):
        made.committed.update(offsets)

    made.commit = commit
    return made


async def run(validator, *polls) -> None:
    for polled in polls:
        await validator.start_finishing(await validator.prepare(polled))
    await validator.drain()


async def test_a_fenced_slice_is_dropped_with_the_batches_after_it_and_read_again(validator):
    store = validator.store
    await validator.on_assign([(TOPIC, 0)])
    store.recorded[0] = 4  # another member applied offsets 0-4 after we read the progress
    # Two batches prepared before the first one finishes: both were judged on a history that isn't Redis's.
    first = await validator.prepare(batch(0, 9))
    second = await validator.prepare(batch(10, 14))
    await validator.start_finishing(first)
    await validator.start_finishing(second)
    await validator.drain()
    assert store.slices == [] and store.recorded[0] == 4
    assert validator.committed == {}  # nothing of ours was applied, so nothing is committed
    # The next prepare seeks back after what Redis recorded; the re-read records are applied exactly once.
    await run(validator, batch(15, 19), batch(5, 14))
    assert validator.seeks == [(0, 5)]
    assert [(s.prev, s.first, s.last) for s in store.slices] == [(4, 5, 14)]
    assert store.counters["accepted"] == 10 and validator.committed == {(TOPIC, 0): 15}


async def test_our_own_slice_applied_by_a_timed_out_attempt_is_committed_not_read_again(validator):
    store = validator.store
    await validator.on_assign([(TOPIC, 0)])
    store.recorded[0] = 9  # the first attempt ran after all: Redis already records this batch as applied
    await run(validator, batch(0, 9))
    assert validator.seeks == [] and validator.committed == {(TOPIC, 0): 10}


async def test_a_write_that_fails_every_retry_dead_letters_the_accepted_and_goes_on_unverified(validator):
    store = validator.store
    await validator.on_assign([(TOPIC, 0)])
    store.failures = validator.settings.retry_attempts
    await run(validator, batch(0, 4))
    letters = validator.producer.sent[validator.settings.dlq_topic]
    assert len(letters) == 5
    assert {dict(letter.headers)["dlq.reason"] for letter in letters} == {b"processing_failed"}
    assert validator.committed == {(TOPIC, 0): 5}  # settled: every ping of the batch has its verdict
    await run(validator, batch(5, 9), batch(5, 9))  # the first was fetched before the seek: dropped
    assert validator.seeks == [(0, 5)]
    # Redis progress lags by the failed batch, so the next slice skips the compare-and-set, once.
    assert [(s.prev, s.first, s.last) for s in store.slices] == [(UNVERIFIED, 5, 9)]
    await run(validator, batch(10, 12))
    assert store.slices[-1].prev == 9


async def test_after_a_crash_records_are_judged_one_at_a_time_until_past_the_mark(validator):
    store = validator.store
    store.high[0] = 2  # the previous owner marked offsets up to 2 and died before applying any
    await validator.on_assign([(TOPIC, 0)])
    await run(validator, batch(0, 9))
    assert validator.seeks == [(0, 1)]  # one record judged; the consumer reads the rest again
    assert [(s.first, s.last) for s in store.slices] == [(0, 0)]
    assert store.attempts == {}  # judged and applied: its attempt is cleared
    await run(validator, batch(1, 9), batch(2, 9), batch(3, 9))
    assert [(s.first, s.last) for s in store.slices] == [(0, 0), (1, 1), (2, 2), (3, 9)]  # past the mark


async def test_a_record_validators_keep_dying_on_is_dead_lettered_unjudged(validator):
    store = validator.store
    store.high[0] = 0
    store.attempts[0, 0] = validator.settings.crash_loop_limit - 1  # two owners died judging offset 0
    await validator.on_assign([(TOPIC, 0)])
    await run(validator, batch(0, 0))
    [letter] = validator.producer.sent[validator.settings.dlq_topic]
    headers = dict(letter.headers)
    assert headers["dlq.reason"] == b"processing_failed"
    assert b"3 validators started judging this record and died" in headers["dlq.detail"]
    assert {name: count for name, count in store.counters.items() if count} == {
        "rejected": 1,
        "rejected:processing_failed": 1,
    }
    assert store.recorded[0] == 0  # the partition moves on past it
