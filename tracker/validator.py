"""The validator: one member of consumer group ``location-validator``.

A batch goes through two stages. **Prepare** (CPU): drop records whose effects are already in Redis,
parse, load the last accepted fix of couriers not in the in-memory cache, judge every record in offset
order, and hand the dead letters and accepted positions to the producer. **Finish** (I/O): wait for the
broker's acks, apply each partition's slice to Redis with one atomic script, then commit the offsets.
Prepare runs ahead while up to ``MAX_IN_FLIGHT`` batches finish; finishes are chained so they run
strictly in order, and a commit never covers a record whose dead letter, position and Redis effects are
not acknowledged. Commits are coalesced (at most one per ``COMMIT_INTERVAL_S``, and always before a
rebalance or a stop): Redis, not the committed offset, is what makes re-delivery harmless.

Why this is exactly-once in effect on an at-least-once pipe:

- A crash before a slice reaches Redis re-delivers its records, which re-produces their dead letters and
  positions (readers dedupe dead letters by original partition/offset; positions are newer-wins).
- A crash after a slice reached Redis but before the commit costs nothing: ``progress:<topic>`` in Redis
  records the last offset applied per partition, and the next owner skips records up to it.
- Each slice carries ``prev``, the progress it was judged on; Redis applies it only if that is still the
  recorded progress (compare-and-set). If another member wrote meanwhile (we lost the partition, or it
  did), the slice is refused ("fenced"): we start a new *epoch* for the partition — batches prepared in
  the old one are dropped unapplied and uncommitted — re-read the progress and seek back to the first
  unapplied offset, to judge those records again on fresh state.

Prepare judges a batch on the fixes that earlier, still-finishing batches accepted. If a batch's Redis
write fails through every retry, its accepted pings are dead-lettered as ``processing_failed`` (its
rejects and duplicates are already settled) and it is committed; the partition starts a new epoch from
the offset after it, and its next slice is applied without the compare-and-set, since Redis progress now
lags by that batch. Broker failures that outlast the retries stop the validator without committing:
nothing is lost, the next owner re-delivers.

No record can stop the validator:

- Judging is total (rules.py never raises on any bytes). If judging one record raises anyway (a bug),
  that record alone is dead-lettered as ``processing_failed`` with the exception in ``dlq.detail``, logged at
  ERROR with its topic, partition and offset, and the partition moves on.
- If a process *dies* on a record (a crash in C code, the kernel's OOM killer), exceptions can't help, and
  the next owner would die on it too. So before judging a batch, the validator records per partition the
  last offset it is about to judge (``highwater:<topic>`` in Redis). A validator that is assigned a
  partition whose applied progress is behind that mark knows its predecessor died mid-batch, and judges
  those records one at a time, counting in Redis (``deaths:<topic>``) how many validators started judging
  each one; a record that ``crash_loop_limit`` validators started and never finished is dead-lettered as
  ``processing_failed`` without being judged again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import cast

import msgspec

from tracker import constants as c
from tracker import replay_sig, rules
from tracker.constants import H_REPLAY_OF as REPLAY_OF
from tracker.constants import H_UNREADABLE
from tracker.dlq import letter
from tracker.geo import ServiceArea
from tracker.history import plan as history
from tracker.kafka import BrokerError, Consumer, Producer
from tracker.models import LastFix, Outcome, OutRecord, Ping, Position, Reason, Record, Verdict
from tracker.partitions import Partitions
from tracker.retry import RetriesExhausted, retry
from tracker.settings import Settings
from tracker.store import FENCED, Slice, Store, StoreError

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
MAX_IN_FLIGHT = 4  # batches finishing while the next is prepared
COMMIT_INTERVAL_S = 0.2
# The cache of couriers' last fixes is dropped (and re-read from Redis as needed) past this many couriers,
# so that minting new ids can't grow a validator's memory forever (~150 bytes per courier).
FIXES_CACHE_MAX = 500_000
DETAIL_MAX_CHARS = 500


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
    """One partition's share of a batch: records to produce, and the slice for Redis."""

    __slots__ = (
        "partition",
        "epoch",
        "prev",
        "first",
        "last",
        "latest",
        "trails",
        "counts",
        "accepted_records",
        "careful",
        "history",
    )

    def __init__(self, partition: int, epoch: int, prev: int, first: int, last: int, careful: bool = False) -> None:
        self.partition = partition
        self.epoch = epoch
        self.prev = prev
        self.first = first
        self.last = last
        self.latest: dict[str, tuple[Ping, bytes]] = {}  # newest accepted fix and its encoded Position
        self.trails: dict[str, list[Ping]] = {}
        self.counts: Counter[str] = Counter()
        self.accepted_records: list[Record] = []
        self.careful = careful  # one record judged after a crash (see the module docstring)
        # Every fix kept (history.plan's input order), with the time of the courier's fix before it (None:
        # none known; history.OLDER: a replay kept as history only).
        self.history: list[tuple[Ping, int | None]] = []

    def slice(self, trail_max: int, retention: history.Retention, now_ms: int) -> tuple[Slice, list[bytes]]:
        # ~1 µs per accepted ping, which is a tenth of the validator's CPU at 20,000 pings/s: coordinates
        # travel as floats (Redis writes script numbers back with 17 significant digits, so float() of
        # them is exact), and trail points are encoded by msgspec, not formatted in Python.
        latest = [
            (pid, ping.ts_ms, ping.lat, ping.lon, encoded.decode()) for pid, (ping, encoded) in self.latest.items()
        ]
        trails = [
            (
                pid,
                [
                    item
                    for ping in pings[-trail_max:]
                    for item in (ping.ts_ms, _encode_point((ping.ts_ms, ping.lat, ping.lon, ping.speed)))
                ],
            )
            for pid, pings in self.trails.items()
        ]
        writes = history.plan(
            ((ping.partner_id, ping.ts_ms, ping.lat, ping.lon, prev_ts) for ping, prev_ts in self.history),
            now_ms,
            retention,
        )
        built = Slice(
            self.partition,
            self.prev,
            self.first,
            self.last,
            latest,
            trails,
            dict(self.counts),
            writes.full,
            writes.step,
        )
        return built, writes.blobs


class Prepared:
    """A judged batch whose records are with the producer, waiting to be finished."""

    __slots__ = ("result", "works", "futures")

    def __init__(self, result: BatchResult, works: list[_PartitionWork], futures: list[asyncio.Future]) -> None:
        self.result = result
        self.works = works
        self.futures = futures


def _has_replay_header(record: Record) -> bool:
    return any(name == REPLAY_OF for name, _ in record.headers)


def _exception_text(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # noqa: BLE001 - an exception whose str() fails still gets a verdict
        text = type(exc).__name__
    return text[:DETAIL_MAX_CHARS]


def _unreadable_verdict(record: Record) -> Verdict | None:
    """The verdict on a record the Kafka client could not parse (kafka.unreadable), else None."""
    if record.value is None and record.headers and record.headers[0][0] == H_UNREADABLE:
        reason = (record.headers[0][1] or b"").decode("utf-8", "replace")
        return rules.reject(Reason.MALFORMED_PAYLOAD, f"unreadable record: {reason}")
    return None


_point_encoder = msgspec.json.Encoder().encode


def _encode_point(point: tuple[int, float, float, float | None]) -> str:
    """A trail member, ``[ts,lat,lon,speed]`` (a str: Redis's cmsgpack reads no msgpack bin type)."""
    return _point_encoder(point).decode()


class Validator:
    def __init__(
        self,
        settings: Settings,
        area: ServiceArea,
        store: Store,
        producer: Producer,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.area = area
        self.store = store
        self.producer = producer
        self.limits = rules.Limits.from_settings(settings)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.topic = settings.location_topic
        self.retention = history.Retention.from_settings(settings)
        self.lock = asyncio.Lock()
        # Progress, epoch, resync point, unverified and careful flags of each owned partition; changed only
        # through its named transitions (tracker/partitions.py).
        self.partitions = Partitions()
        self.fixes: dict[str, LastFix | None] = {}
        self.totals: Counter[str] = Counter()
        self.in_flight: collections.deque[asyncio.Task] = collections.deque()
        self.pending_commit: dict[TopicPartition, int] = {}
        self.last_commit_at = 0.0
        # Set by run_validator: the consumer's commit and seek, and the observer of finished batches.
        self.commit: Callable[[dict[TopicPartition, int]], Awaitable[None]] = _no_commit
        self.seek: Callable[[int, int], None] = lambda partition, offset: None
        self.on_batch: Callable[[BatchResult], None] | None = None
        self.busy_since: float | None = None
        self._encode = msgspec.json.Encoder().encode
        self.poison: tuple[str, bytes] | None = None  # Settings.test_poison, split: (action, text)
        if settings.test_poison:
            action, _, text = settings.test_poison.partition(":")
            self.poison = (action, text.encode())

    @property
    def assigned(self) -> set[int]:
        return self.partitions.owned

    # -- rebalance ---------------------------------------------------------------------------------
    # Both callbacks take the lock and wait for every batch in flight to be finished and committed, so a
    # rebalance never races a commit and the next owner starts from what is in Redis.

    async def on_assign(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            await self.drain()
            numbers = sorted(p for t, p in partitions if t == self.topic)
            progress = await self._redis("read progress", lambda: self.store.progress(self.topic, numbers))
            high = await self._redis("read high water", lambda: self.store.high_water(self.topic, numbers))
            for partition, (first, last) in sorted(self.partitions.assign(progress, high).items()):
                log.warning(
                    "partition %d: the previous owner died judging offsets %d-%d; judging them one at a time",
                    partition,
                    first,
                    last,
                )
            self.fixes.clear()  # a courier's fix may have moved on while another member owned it
            log.info("assigned partitions %s of %s", numbers, self.topic)

    async def on_revoke(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            await self.drain()
            revoked = {p for t, p in partitions if t == self.topic}
            self.partitions.revoke(revoked)
            self.fixes.clear()
            if revoked:
                log.info("revoked partitions %s of %s", sorted(revoked), self.topic)

    async def drain(self) -> None:
        """Finish every batch in flight, then commit what they covered."""
        while self.in_flight:
            await self.in_flight.popleft()
        await self.flush_commits()

    async def flush_commits(self) -> None:
        offsets, self.pending_commit = self.pending_commit, {}
        self.last_commit_at = time.monotonic()
        if not offsets:
            return
        try:
            await self.commit(offsets)
        except BrokerError as exc:
            # Usually a rebalance took the partitions; their new owner skips what we applied.
            log.warning("offset commit failed, records will be redelivered: %r", exc)

    # -- prepare -----------------------------------------------------------------------------------

    def _apply_resyncs(self, polled: dict[TopicPartition, list[Record]]) -> None:
        """Seek partitions that started a new epoch back to where they resume; drop what ``polled`` holds
        for them (it was fetched from the old position)."""
        seeks = self.partitions.resync()
        for partition, offset in seeks:
            self.seek(partition, offset)
            polled.pop((self.topic, partition), None)
        if seeks:
            self.fixes.clear()

    async def prepare(self, polled: dict[TopicPartition, list[Record]]) -> Prepared:
        if self.partitions.any_careful:
            # After a crash, a record is judged only once the one before it is applied and its attempt count
            # cleared: a death must be charged to the record that caused it, not to its predecessor.
            await self.drain()
        self._apply_resyncs(polled)
        result = BatchResult()
        now_ms = self.clock_ms()
        batches: list[tuple[_PartitionWork, list[tuple[Record, Ping | Verdict]]]] = []
        wanted: set[str] = set()
        limits = self.limits
        chosen: list[tuple[int, int, list[Record], bool]] = []
        marks: dict[int, int] = {}
        owned = self.partitions
        for (topic, partition), records in polled.items():
            if topic != self.topic or not owned.owns(partition) or not records:
                continue
            done = owned.progress(partition)
            fresh = records if records[0].offset > done else [r for r in records if r.offset > done]
            careful = owned.careful(partition)
            taken = records
            if careful and fresh:
                # One record now; the consumer reads the rest again, one batch each.
                taken = [r for r in records if r.offset <= fresh[0].offset]
                fresh = fresh[:1]
                self.seek(partition, fresh[0].offset + 1)
            result.consumed += len(taken)
            result.skipped += len(taken) - len(fresh)
            if not fresh:
                continue  # applied before; the next batch's commit covers these offsets
            if not careful:
                marks[partition] = fresh[-1].offset
            # The epoch is read now, before any await: a fence that lands while this batch waits for Redis
            # must find the batch in the old epoch, or it would be applied on top of the resync.
            chosen.append((partition, owned.epoch(partition), fresh, careful))
        if marks:
            try:
                await self.store.mark_high_water(self.topic, marks)
            except (StoreError, OSError) as exc:
                # Redis refuses writes: the batch's own writes will be retried (and dead-lettered as
                # processing_failed if they never succeed); only the crash guard is off for this batch.
                log.warning("could not record the high-water mark (crash-loop guard off for this batch): %r", exc)
        for partition, epoch, fresh, careful in chosen:
            if careful:
                parsed = [(fresh[0], await self._judge_after_crash(partition, fresh[0]))]
            else:
                try:
                    parsed = [(record, rules.parse(record.value, limits)) for record in fresh]
                except Exception:  # noqa: BLE001 - a bug; find the record and dead-letter only that one
                    parsed = [(record, self._parse_guarded(record)) for record in fresh]
            for _, item in parsed:
                if type(item) is Ping and item.partner_id not in self.fixes:
                    wanted.add(item.partner_id)
            prev = owned.take(partition, fresh[-1].offset)
            batches.append((_PartitionWork(partition, epoch, prev, fresh[0].offset, fresh[-1].offset, careful), parsed))
        if len(self.fixes) > FIXES_CACHE_MAX:
            self.fixes.clear()
            wanted = {item.partner_id for _, parsed in batches for _, item in parsed if type(item) is Ping}
        if wanted:
            self.fixes.update(await self._redis("load last fixes", lambda: self.store.last_fixes(sorted(wanted))))

        dead_letters: list[OutRecord] = []
        positions: list[OutRecord] = []
        for work, parsed in batches:
            self._judge(work, parsed, now_ms, dead_letters, positions)
        futures = await self._produce(dead_letters, positions)
        return Prepared(result, [work for work, _ in batches], futures)

    def _parse_guarded(self, record: Record) -> Ping | Verdict:
        try:
            return rules.parse(record.value, self.limits)
        except Exception as exc:  # noqa: BLE001
            return self._failed(record, exc)

    def _failed(self, record: Record, exc: BaseException) -> Verdict:
        """Judging ``record`` raised (a bug): dead-letter it alone, and say so loudly."""
        log.error(
            "judging %s/%d@%d raised; dead-lettering it as processing_failed",
            record.topic,
            record.partition,
            record.offset,
            exc_info=exc,
        )
        return rules.reject(Reason.PROCESSING_FAILED, f"judging this record raised {_exception_text(exc)}")

    async def _judge_after_crash(self, partition: int, record: Record) -> Ping | Verdict:
        """Parse one record of a partition whose previous owner died, unless validators keep dying on it."""
        attempts = await self._redis(
            "count attempts", lambda: self.store.note_attempt(self.topic, partition, record.offset)
        )
        if attempts >= self.settings.crash_loop_limit:
            log.error(
                "%s/%d@%d: %d validators started judging this record and died; dead-lettering it as processing_failed",
                record.topic,
                partition,
                record.offset,
                attempts,
            )
            return rules.reject(Reason.PROCESSING_FAILED, f"{attempts} validators started judging this record and died")
        return self._parse_guarded(record)

    def _poisoned(self, action: str) -> None:
        """Settings.test_poison: behave as a bug (raise) or as a crash (exit at once) would."""
        if action == "exit":
            log.error("test_poison: exiting at once, as a crash would")
            logging.shutdown()
            os._exit(70)
        raise RuntimeError("test_poison: a record this validator was told to fail on")

    def _judge(
        self,
        work: _PartitionWork,
        parsed: list[tuple[Record, Ping | Verdict]],
        now_ms: int,
        dead_letters: list[OutRecord],
        positions: list[OutRecord],
    ) -> None:
        # The hot loop: about 95 % of pings are accepted, so that branch does as little as it can and the
        # per-courier Redis entries are built once per batch in _PartitionWork.slice.
        settings, limits, area, fixes = self.settings, self.limits, self.area, self.fixes
        latest, trails, accepted_records, kept = work.latest, work.trails, work.accepted_records, work.history
        encode, judge, accepted = self._encode, rules.judge, rules.ACCEPTED
        duplicates = 0
        poison = self.poison
        for record, item in parsed:
            # A try block costs nothing until something raises; if judging one record does (a bug), that
            # record alone is dead-lettered (processing_failed) and the rest of the batch goes on.
            try:
                if type(item) is Ping:
                    if poison is not None and poison[1] in (record.value or b""):
                        self._poisoned(poison[0])
                    partner_id = item.partner_id
                    last = fixes.get(partner_id)
                    if (
                        record.headers
                        and _has_replay_header(record)
                        and replay_sig.verified_count(record.headers, record.value, settings.replay_secret) is not None
                    ):
                        verdict = rules.judge_replay(item, last, now_ms, limits, area)
                        if verdict is rules.HISTORY_ONLY:
                            trails.setdefault(partner_id, []).append(item)
                            kept.append((item, history.OLDER))
                            accepted_records.append(record)
                            work.counts[c.C_ACCEPTED_HISTORY] += 1
                            continue
                    else:
                        verdict = judge(item, last, now_ms, limits, area)
                    if verdict is accepted:
                        encoded = encode(Position.from_ping(item, now_ms))
                        positions.append(
                            OutRecord(encoded, record.key if record.key is not None else partner_id.encode())
                        )
                        latest[partner_id] = (item, encoded)
                        trail = trails.get(partner_id)
                        if trail is None:
                            trails[partner_id] = [item]
                        else:
                            trail.append(item)
                        accepted_records.append(record)
                        kept.append((item, None if last is None else last.ts_ms))
                        fixes[partner_id] = LastFix(item.ts_ms, item.lat, item.lon)
                        continue
                    if verdict.outcome is Outcome.DUPLICATE:
                        duplicates += 1
                        continue
                else:
                    verdict = _unreadable_verdict(record) or cast(Verdict, item)  # not a Ping: a Verdict
            except Exception as exc:  # noqa: BLE001
                verdict = self._failed(record, exc)
            reason = verdict.reason
            assert reason is not None  # what is neither accepted nor a duplicate is a reject, with its reason
            dead_letters.append(self._dead_letter(record, reason, verdict.detail, now_ms))
            work.counts[c.C_REJECTED] += 1
            work.counts[c.C_REJECTED_BY + reason.value] += 1
        work.counts[c.C_ACCEPTED] += len(accepted_records)
        work.counts[c.C_DUPLICATES] += duplicates

    async def _produce(self, dead_letters: list[OutRecord], positions: list[OutRecord]) -> list[asyncio.Future]:
        async def send() -> list[asyncio.Future]:
            futures = await self.producer.send_many(self.settings.dlq_topic, dead_letters)
            return futures + await self.producer.send_many(self.settings.positions_topic, positions)

        return await self._broker("queue dead letters and positions", send)

    # -- finish ------------------------------------------------------------------------------------

    async def start_finishing(self, prepared: Prepared) -> None:
        """Queue ``prepared`` behind the batches in flight; waits while ``MAX_IN_FLIGHT`` are pending."""
        previous = self.in_flight[-1] if self.in_flight else None
        self.in_flight.append(asyncio.create_task(self.finish(prepared, previous), name="finish-batch"))
        while len(self.in_flight) > MAX_IN_FLIGHT or (self.in_flight and self.in_flight[0].done()):
            await self.in_flight.popleft()  # re-raises a failed finish

    async def finish(self, prepared: Prepared, previous: asyncio.Task | None) -> BatchResult:
        if previous is not None:
            await asyncio.shield(previous)  # in order; if it failed, so do we, uncommitted
        # The producer retries within its delivery timeout; an error here stops the validator with the
        # batch uncommitted, to be re-delivered to whoever owns the partitions next.
        await asyncio.gather(*prepared.futures)
        result = prepared.result
        # Batches prepared in an epoch that has since ended are dropped: unapplied, uncommitted.
        works = [work for work in prepared.works if work.epoch == self.partitions.epoch(work.partition)]
        now_ms = self.clock_ms()
        if works:
            built = [work.slice(self.settings.trail_max, self.retention, now_ms) for work in works]
            slices, blobs = [item for item, _ in built], [packed for _, packed in built]
            try:
                outcomes = await self._redis("apply batch", lambda: self.store.apply(self.topic, slices, blobs))
            except RetriesExhausted as exc:
                outcomes = [None] * len(works)
                await self._dead_letter_accepted(works, exc, now_ms)
            for work, outcome in zip(works, outcomes, strict=True):
                if outcome == FENCED:
                    stored = (
                        await self._redis(
                            "read progress", lambda p=work.partition: self.store.progress(self.topic, [p])
                        )
                    )[work.partition]
                    if stored == work.last:
                        # Our own earlier attempt, which timed out against a hung Redis, ran when Redis woke
                        # up: the slice is applied (a script is atomic), and this retry was refused for that;
                        # it is committed like any applied slice.
                        log.info(
                            "partition %d: an earlier attempt at offsets %d-%d, timed out, was applied after all",
                            work.partition,
                            work.first,
                            work.last,
                        )
                        self.fixes.clear()  # re-read what Redis holds, whoever wrote it
                    else:
                        result.fenced_partitions.append(work.partition)
                        log.warning(
                            "partition %d was written by another member (or by an earlier attempt of "
                            "ours that timed out); resuming after offset %d",
                            work.partition,
                            stored,
                        )
                        self.partitions.fence(work.partition, stored)
                        continue
                if outcome is None:
                    self.partitions.fail(work.partition, work.last)
                result.commit[(self.topic, work.partition)] = work.last + 1
                result.accepted += work.counts[c.C_ACCEPTED]
                result.duplicates += work.counts[c.C_DUPLICATES]
                for name, count in work.counts.items():
                    if name.startswith(c.C_REJECTED_BY):
                        reason = name.removeprefix(c.C_REJECTED_BY)
                        result.rejected[reason] = result.rejected.get(reason, 0) + count
        judged_after_crash = [
            (work.partition, work.first)
            for work in works
            if work.careful and (self.topic, work.partition) in result.commit
        ]
        if judged_after_crash:
            await self._redis("clear attempts", lambda: self.store.clear_attempts(self.topic, judged_after_crash))
        self.pending_commit.update(result.commit)
        if time.monotonic() - self.last_commit_at >= COMMIT_INTERVAL_S:
            await self.flush_commits()
        self._count(result)
        if self.busy_since is not None:
            # From the first record received to the last batch finished: what throughput is measured over.
            self.totals["busy_ms"] = round((time.monotonic() - self.busy_since) * 1000)
        if self.on_batch is not None:
            self.on_batch(result)
        return result

    async def _dead_letter_accepted(self, works: list[_PartitionWork], exc: RetriesExhausted, now_ms: int) -> None:
        log.error("%s; dead-lettering the batch's accepted pings as processing_failed", exc)
        failed: list[OutRecord] = []
        error = exc.last_error
        detail = f"Redis write failed after {exc.attempts} attempts: {type(error).__name__}: {error}"
        for work in works:
            failed.extend(
                self._dead_letter(record, Reason.PROCESSING_FAILED, detail, now_ms, attempts=exc.attempts)
                for record in work.accepted_records
            )
            # Nothing of this batch reached Redis: count it here and forget what we thought we knew.
            processing_failed = len(work.accepted_records)
            work.counts[c.C_ACCEPTED] = 0
            work.counts[c.C_REJECTED] += processing_failed
            work.counts[c.C_REJECTED_BY + Reason.PROCESSING_FAILED.value] += processing_failed
        self.fixes.clear()

        async def send() -> None:
            await asyncio.gather(*await self.producer.send_many(self.settings.dlq_topic, failed))

        await self._broker("produce processing_failed dead letters", send)

    def _dead_letter(
        self, record: Record, reason: Reason, detail: str, now_ms: int, attempts: int | None = None
    ) -> OutRecord:
        settings = self.settings
        return letter.dead_letter(
            record,
            reason,
            detail,
            group=settings.validator_group,
            validator_id=settings.validator_id,
            rejected_at_ms=now_ms,
            attempts=attempts,
            value_max_bytes=settings.dlq_value_max_bytes,
            headers_max_bytes=settings.dlq_headers_max_bytes,
        )

    async def _broker(self, what: str, operation):
        return await retry(
            operation,
            what=what,
            attempts=self.settings.retry_attempts,
            backoff_ms=self.settings.retry_backoff_ms,
            max_backoff_ms=self.settings.retry_max_backoff_ms,
            retry_on=(BrokerError,),
        )

    async def _redis(self, what: str, operation):
        return await retry(
            operation,
            what=what,
            attempts=self.settings.retry_attempts,
            backoff_ms=self.settings.retry_backoff_ms,
            max_backoff_ms=self.settings.retry_max_backoff_ms,
            retry_on=(StoreError, OSError),
        )

    def _count(self, result: BatchResult) -> None:
        self.totals["consumed"] += result.consumed
        self.totals["skipped"] += result.skipped
        self.totals[c.C_ACCEPTED] += result.accepted
        self.totals[c.C_DUPLICATES] += result.duplicates
        for reason, count in result.rejected.items():
            self.totals[c.C_REJECTED] += count
            self.totals[c.C_REJECTED_BY + reason] += count


async def run_validator(
    settings: Settings,
    area: ServiceArea,
    stop: asyncio.Event,
    *,
    idle_exit_s: float | None = None,
    clock_ms: Callable[[], int] | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
    on_assign: Callable[[set[int]], None] | None = None,
) -> Counter[str]:
    """Consume until ``stop`` is set (or, with ``idle_exit_s``, until the topic has been quiet that long).

    On the way out every batch in flight is finished and committed and the consumer leaves the group, so
    its partitions move to the other members at once instead of after the session timeout.
    """
    store = Store(settings)
    producer = Producer(settings)
    await producer.start()
    validator = Validator(settings, area, store, producer, clock_ms)
    validator.on_batch = on_batch
    quiet_since = time.monotonic()

    async def assigned(partitions: list[tuple[str, int]]) -> None:
        nonlocal quiet_since
        await validator.on_assign(partitions)
        quiet_since = time.monotonic()  # joining the group is not idleness
        if on_assign is not None:
            on_assign(set(validator.assigned))

    consumer = Consumer(
        settings,
        [settings.location_topic],
        group_id=settings.validator_group,
        start="earliest",
        on_assign=assigned,
        on_revoke=validator.on_revoke,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    validator.commit = consumer.commit
    validator.seek = lambda partition, offset: consumer.seek(settings.location_topic, partition, offset)
    try:
        await consumer.start()
        while not stop.is_set():
            try:
                polled = await consumer.poll(timeout_ms=settings.poll_timeout_ms, max_records=settings.max_batch)
            except BrokerError as exc:
                # The client retries connections by itself; what reaches here (a rebalance racing a seek, a
                # broker restarting) passes. Nothing is lost: uncommitted records are fetched again.
                log.warning("poll failed: %r; polling again", exc)
                await asyncio.sleep(settings.retry_backoff_ms / 1000)
                continue
            if not any(polled.values()):
                async with validator.lock:
                    await validator.drain()
                if idle_exit_s is not None and validator.assigned and time.monotonic() - quiet_since >= idle_exit_s:
                    break
                continue
            validator.busy_since = validator.busy_since or time.monotonic()
            async with validator.lock:
                await validator.start_finishing(await validator.prepare(polled))
            quiet_since = time.monotonic()
        async with validator.lock:
            await validator.drain()
    finally:
        try:
            for task in validator.in_flight:
                task.cancel()
        finally:
            await consumer.stop()
            await producer.stop()
            await store.close()
    return validator.totals


async def _no_commit(offsets: dict[TopicPartition, int]) -> None:
    raise RuntimeError("the validator has no consumer to commit with")
