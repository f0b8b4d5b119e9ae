"""The validator: one member of consumer group ``location-validator``.

Per batch, in this order (the order is the delivery guarantee):

1. Drop records whose effects are already in Redis (offset <= the partition's recorded progress; a
   previous owner applied them and died before committing).
2. Parse every record, load the last accepted fix of couriers not in the in-memory cache (one Redis
   round trip), then judge records in offset order, updating a batch-local view of each courier's fix.
3. Produce dead letters and accepted positions, and wait for the broker's acks.
4. Apply each partition's slice to Redis with one atomic script (positions newer-wins, trails, counters,
   progress). A refused (fenced) slice means another member owns the partition now: skip its commit.
5. Commit the offsets after the last record of each applied partition.

A crash between 3 and 4 re-produces some dead letters and positions on redelivery (both idempotent for
readers: dead letters carry their original partition/offset, positions are newer-wins); a crash between 4
and 5 costs nothing, thanks to step 1. So produced = accepted + rejected + duplicates holds exactly in the
Redis counters whatever the crash point.

Redis failures that outlast the retry budget dead-letter the batch's accepted pings with
``processing_failed`` (their rejects and duplicates are already settled), then commit. Broker failures
that outlast it stop the validator without committing: nothing is lost, the next owner redelivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable

import msgspec

from tracker import dlq, rules
from tracker.geo import ServiceArea
from tracker.kafka import BrokerError, Consumer, OutRecord, Producer, Record
from tracker.models import LastFix, Outcome, Position, Reason, Verdict
from tracker.retry import RetriesExhausted, retry
from tracker.settings import Settings
from tracker.store import FENCED, Slice, Store, StoreError

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class BatchResult(msgspec.Struct):
    """What one batch did, for counters, logs and tests."""

    consumed: int = 0
    skipped: int = 0  # already applied by a previous owner
    accepted: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = msgspec.field(default_factory=dict)
    fenced_partitions: list[int] = msgspec.field(default_factory=list)
    commit: dict[TopicPartition, int] = msgspec.field(default_factory=dict)


class _PartitionWork:
    """Verdicts of one partition's records in one batch, turned into records to produce and a Redis slice."""

    __slots__ = ("partition", "first", "last", "positions", "latest", "trails", "counts", "accepted_pings",
                 "dead_letters")

    def __init__(self, partition: int, first: int, last: int) -> None:
        self.partition = partition
        self.first = first
        self.last = last
        self.positions: list[OutRecord] = []
        self.latest: dict[str, tuple[str, int, str, str, str]] = {}
        self.trails: dict[str, list[str]] = {}
        self.counts: Counter[str] = Counter()
        self.accepted_pings: list[Record] = []
        self.dead_letters: list[OutRecord] = []

    def slice(self, trail_max: int) -> Slice:
        return Slice(self.partition, self.first, self.last, list(self.latest.values()),
                     [(pid, points[-trail_max:]) for pid, points in self.trails.items()], dict(self.counts))


def _trail_point(position: Position) -> str:
    speed = "null" if position.speed is None else repr(position.speed)
    return f"[{position.ts},{position.lat!r},{position.lon!r},{speed}]"


class Validator:
    def __init__(self, settings: Settings, area: ServiceArea, store: Store, producer: Producer,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.settings = settings
        self.area = area
        self.store = store
        self.producer = producer
        self.limits = rules.Limits.from_settings(settings)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.topic = settings.location_topic
        self.lock = asyncio.Lock()
        self.assigned: set[int] = set()
        self.progress: dict[int, int] = {}
        self.fixes: dict[str, LastFix | None] = {}
        self.totals: Counter[str] = Counter()
        self._encode = msgspec.json.Encoder().encode

    # -- rebalance ---------------------------------------------------------------------------------
    # Both callbacks take the lock, so a rebalance waits for the batch in flight to be committed.

    async def on_assign(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            numbers = sorted(p for t, p in partitions if t == self.topic)
            self.progress = await self.store.progress(self.topic, numbers)
            self.assigned = set(numbers)
            self.fixes.clear()  # a courier's fix may have moved on while another member owned it
            log.info("assigned partitions %s of %s", numbers, self.topic)

    async def on_revoke(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            revoked = {p for t, p in partitions if t == self.topic}
            self.assigned -= revoked
            for partition in revoked:
                self.progress.pop(partition, None)
            self.fixes.clear()
            if revoked:
                log.info("revoked partitions %s of %s", sorted(revoked), self.topic)

    # -- one batch ---------------------------------------------------------------------------------

    async def process(self, polled: dict[TopicPartition, list[Record]]) -> BatchResult:
        """Validate, write and account for one polled batch; returns the offsets to commit."""
        result = BatchResult()
        now_ms = self.clock_ms()
        parsed_by_partition: list[tuple[_PartitionWork, list[tuple[Record, object]]]] = []
        wanted: set[str] = set()
        for (topic, partition), records in polled.items():
            if topic != self.topic or partition not in self.assigned or not records:
                continue
            result.consumed += len(records)
            done = self.progress.get(partition, -1)
            fresh = [r for r in records if r.offset > done]
            result.skipped += len(records) - len(fresh)
            if not fresh:
                result.commit[(topic, partition)] = records[-1].offset + 1
                continue
            parsed = [(record, rules.parse(record.value, self.limits)) for record in fresh]
            for _, item in parsed:
                if not isinstance(item, Verdict) and item.partner_id not in self.fixes:
                    wanted.add(item.partner_id)
            parsed_by_partition.append((_PartitionWork(partition, fresh[0].offset, fresh[-1].offset), parsed))
        if wanted:
            self.fixes.update(await self._redis("load last fixes", lambda: self.store.last_fixes(sorted(wanted))))

        batch_fixes: dict[str, LastFix] = {}
        for work, parsed in parsed_by_partition:
            self._judge_partition(work, parsed, batch_fixes, now_ms)

        await self._produce(parsed_by_partition)
        await self._apply(parsed_by_partition, result, now_ms)
        for work, _ in parsed_by_partition:
            if work.partition in result.fenced_partitions:
                continue
            result.commit[(self.topic, work.partition)] = work.last + 1
            result.accepted += work.counts["accepted"]
            result.duplicates += work.counts["duplicates"]
            for name, count in work.counts.items():
                if name.startswith("rejected:"):
                    reason = name.removeprefix("rejected:")
                    result.rejected[reason] = result.rejected.get(reason, 0) + count
        self.fixes.update(batch_fixes)
        self._count(result)
        return result

    def _judge_partition(self, work: _PartitionWork, parsed: list[tuple[Record, object]],
                         batch_fixes: dict[str, LastFix], now_ms: int) -> None:
        settings = self.settings
        for record, item in parsed:
            if isinstance(item, Verdict):
                verdict = item
            else:
                last = batch_fixes.get(item.partner_id) or self.fixes.get(item.partner_id)
                verdict = rules.judge(item, last, now_ms, self.limits, self.area)
            if verdict.outcome is Outcome.ACCEPTED:
                ping = verdict.ping
                position = Position.from_ping(ping, now_ms)
                encoded = self._encode(position)
                key = ping.partner_id.encode()
                work.positions.append(OutRecord(value=encoded, key=key))
                work.latest[ping.partner_id] = (ping.partner_id, ping.ts_ms, repr(ping.lat), repr(ping.lon),
                                                encoded.decode())
                work.trails.setdefault(ping.partner_id, []).append(_trail_point(position))
                work.accepted_pings.append(record)
                work.counts["accepted"] += 1
                batch_fixes[ping.partner_id] = LastFix(ping.ts_ms, ping.lat, ping.lon)
            elif verdict.outcome is Outcome.DUPLICATE:
                work.counts["duplicates"] += 1
            else:
                work.dead_letters.append(dlq.dead_letter(
                    record, verdict.reason, verdict.detail, group=settings.validator_group,
                    validator_id=settings.validator_id, rejected_at_ms=now_ms))
                work.counts["rejected"] += 1
                work.counts["rejected:" + verdict.reason.value] += 1

    async def _produce(self, parsed_by_partition: list[tuple[_PartitionWork, list]]) -> None:
        dead_letters = [r for work, _ in parsed_by_partition for r in work.dead_letters]
        positions = [r for work, _ in parsed_by_partition for r in work.positions]

        async def send() -> None:
            futures = await self.producer.send_many(self.settings.dlq_topic, dead_letters)
            futures += await self.producer.send_many(self.settings.positions_topic, positions)
            await asyncio.gather(*futures)

        if dead_letters or positions:
            await retry(send, what="produce dead letters and positions", attempts=self.settings.retry_attempts,
                        backoff_ms=self.settings.retry_backoff_ms, retry_on=(BrokerError,))

    async def _apply(self, parsed_by_partition: list[tuple[_PartitionWork, list]], result: BatchResult,
                     now_ms: int) -> None:
        if not parsed_by_partition:
            return
        slices = [work.slice(self.settings.trail_max) for work, _ in parsed_by_partition]
        try:
            outcomes = await self._redis("apply batch", lambda: self.store.apply(self.topic, slices))
        except RetriesExhausted as exc:
            await self._dead_letter_accepted(parsed_by_partition, exc, now_ms)
            return
        for (work, _), outcome in zip(parsed_by_partition, outcomes):
            if outcome == FENCED:
                # Another member applied part of this range: it owns the partition now.
                log.warning("partition %d offsets %d-%d were already applied elsewhere; not committing",
                            work.partition, work.first, work.last)
                result.fenced_partitions.append(work.partition)
                self.progress[work.partition] = (await self.store.progress(self.topic, [work.partition]))[
                    work.partition]
            else:
                self.progress[work.partition] = work.last

    async def _dead_letter_accepted(self, parsed_by_partition: list[tuple[_PartitionWork, list]],
                                    exc: RetriesExhausted, now_ms: int) -> None:
        log.error("%s; dead-lettering the batch's accepted pings as processing_failed", exc)
        failed = []
        for work, _ in parsed_by_partition:
            failed.extend(dlq.dead_letter(
                record, Reason.PROCESSING_FAILED, f"Redis write failed: {exc.last_error!r}",
                group=self.settings.validator_group, validator_id=self.settings.validator_id,
                rejected_at_ms=now_ms, attempts=exc.attempts) for record in work.accepted_pings)
            # Nothing of this batch reached Redis: count it here and forget what we thought we knew.
            processing_failed = len(work.accepted_pings)
            work.counts["accepted"] = 0
            work.counts["rejected"] += processing_failed
            work.counts["rejected:processing_failed"] += processing_failed
            self.progress.pop(work.partition, None)
        self.fixes.clear()

        async def send() -> None:
            await asyncio.gather(*await self.producer.send_many(self.settings.dlq_topic, failed))

        await retry(send, what="produce processing_failed dead letters", attempts=self.settings.retry_attempts,
                    backoff_ms=self.settings.retry_backoff_ms, retry_on=(BrokerError,))

    async def _redis(self, what: str, operation):
        return await retry(operation, what=what, attempts=self.settings.retry_attempts,
                           backoff_ms=self.settings.retry_backoff_ms, retry_on=(StoreError, OSError))

    def _count(self, result: BatchResult) -> None:
        self.totals["consumed"] += result.consumed
        self.totals["skipped"] += result.skipped
        self.totals["accepted"] += result.accepted
        self.totals["duplicates"] += result.duplicates
        for reason, count in result.rejected.items():
            self.totals["rejected"] += count
            self.totals["rejected:" + reason] += count


async def run_validator(settings: Settings, area: ServiceArea, stop: asyncio.Event, *,
                        idle_exit_s: float | None = None, clock_ms: Callable[[], int] | None = None,
                        on_batch: Callable[[BatchResult], None] | None = None,
                        on_assign: Callable[[set[int]], None] | None = None) -> Counter[str]:
    """Consume until ``stop`` is set (or, with ``idle_exit_s``, until the topic has been quiet that long).

    On the way out the last batch is finished and committed and the consumer leaves the group, so its
    partitions move to the other members at once instead of after the session timeout.
    """
    store = Store(settings)
    producer = Producer(settings)
    await producer.start()
    validator = Validator(settings, area, store, producer, clock_ms)

    async def assigned(partitions: list[tuple[str, int]]) -> None:
        await validator.on_assign(partitions)
        if on_assign is not None:
            on_assign(set(validator.assigned))

    consumer = Consumer(settings, [settings.location_topic], group_id=settings.validator_group,
                        start="earliest", on_assign=assigned, on_revoke=validator.on_revoke,
                        session_timeout_ms=settings.kafka_session_timeout_ms)
    try:
        await consumer.start()
        quiet_since = time.monotonic()
        while not stop.is_set():
            polled = await consumer.poll(timeout_ms=settings.poll_timeout_ms, max_records=settings.max_batch)
            if not any(polled.values()):
                if idle_exit_s is not None and time.monotonic() - quiet_since >= idle_exit_s:
                    break
                continue
            quiet_since = time.monotonic()
            async with validator.lock:
                result = await validator.process(polled)
                try:
                    await consumer.commit(result.commit)
                except BrokerError as exc:
                    # Usually a rebalance took the partitions; their new owner skips what we applied.
                    log.warning("offset commit failed, records will be redelivered: %r", exc)
            if on_batch is not None:
                on_batch(result)
    finally:
        await consumer.stop()
        await producer.stop()
        await store.close()
    return validator.totals
