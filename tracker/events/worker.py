"""The events worker: consumer group ``zone-events`` on ``courier-positions``, producing ``courier-events``.

A batch goes: decode the positions, find each fix's zones (one vectorised query, zones.py), fold each fix
into its partition's :class:`~tracker.events.decide.PartitionFold` in offset order, produce the events,
wait for the broker's acks, apply each partition's new courier states to Redis with one Lua script
(apply_events.lua), then commit the offsets. Batches run one at a time.

Exactly once in effect, on an at-least-once pipe (the validator's argument, tracker/validator.py):

- State is advanced only after the events are acknowledged. A crash before that re-delivers the records,
  and the next owner folds them from the same state into the same events, with the same ids
  (decide.event_id): the index (and anything else that stores events) keeps each id once.
- ``events:progress:<topic>`` records per partition the last offset whose decisions are applied, in the
  same script as the states; a crash after it and before the commit costs nothing, as the next owner
  skips what is applied.
- Each partition's write names the progress it was decided on and is refused ("fenced") if Redis holds
  another: another member wrote the partition meanwhile. The worker then reloads that partition from
  Redis and reads it again from there. Within the script, each courier's state is compare-and-set by event
  time: written only over an older one.
- A redelivered, duplicated or replayed fix is at or before its courier's clock, so it makes no event at
  all (decide.py). Positions the validator re-produced after a crash are such fixes.

The clock that makes couriers stale and offline: time passes with no fix, so nothing in the topic says
when. Each partition's event-time clock is the newest fix time read from it; every courier whose next
status change is before the clock gets it, at that change's own time (fix time + threshold). That clock
comes from the records alone, so the same records make the same events whoever reads them, however they
are batched. A partition with no traffic would stop its clock, so when the worker has read everything
(consumer lag 0 by the broker's end offsets), it moves every clock it owns on to its wall clock less the
most a fix can be late and still be accepted (``TRACKER_MAX_AGE_S`` + ``TRACKER_MAX_SKEW_S``). On a broker
whose end offsets are not true (Tansu: ``TRACKER_REPORT_LAG=false``) it does not, and a quiet partition's
couriers change status when its next fix arrives, with the same events and times.

Why a consumer of its own, not the validator: the validator's throughput and its exactly-once machinery
stay as they are (zones cost CPU per ping, and the stale/offline sweep needs a clock the validator has no
use for); events fail, restart and scale on their own; and they are decided from the positions every
reader sees, one hop after the map. The cost is that hop (one more produce and fetch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec

from tracker.events.decide import STATUSES, Courier, Event, Fix, Params, PartitionFold
from tracker.events.index import encoded
from tracker.events.orders import OrderFolder
from tracker.events.zones import Zones
from tracker.kafka import BrokerError, Consumer, Producer
from tracker.models import OutRecord, Record
from tracker.retry import retry
from tracker.settings import Settings
from tracker.store import FENCED, Store, StoreError, lua

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
SWEEP_INTERVAL_S = 1.0  # how often a quiet worker moves its clocks on
_APPLY_SCRIPT = lua("apply_events.lua", __package__)
_decode_fix = msgspec.json.Decoder(Fix).decode
_decode_state = msgspec.json.Decoder(Courier).decode
_encode_state = msgspec.json.Encoder().encode
_pack = msgspec.msgpack.Encoder().encode


class Decided:
    """A batch folded in memory: what to produce, what to apply, what to commit after both."""

    __slots__ = ("events", "slices", "commit", "fixes")

    def __init__(self) -> None:
        self.fixes: list[Fix] = []  # the batch's new fixes, in offset order per partition (order events)
        self.events: list[Event] = []
        self.slices: list[EventSlice] = []
        self.commit: dict[TopicPartition, int] = {}


class EventSlice(msgspec.Struct, frozen=True):
    """One partition's share of a batch, for apply_events.lua."""

    p: int
    prev: int  # the progress it was decided on
    last: int
    clock: int
    put: list[tuple[str, int, str]]  # partner_id, clock, "<clock> <state JSON>"
    drop: list[tuple[str, int]]  # partner_id, clock: forget the courier unless it has a newer state


def read_fix(record: Record) -> Fix | str:
    """A ``courier-positions`` value as a fix, or what is wrong with it."""
    if record.value is None:
        return "no value"
    try:
        return _decode_fix(record.value)
    except (msgspec.DecodeError, ValueError) as exc:
        return f"not a position: {exc}"[:300]


def read_state(value: bytes) -> Courier | None:
    """A stored ``<clock> <state JSON>`` as a state, or None when it cannot be read."""
    try:
        state = _decode_state(value.partition(b" ")[2])
    except (msgspec.DecodeError, ValueError):
        return None
    return state if state.status in STATUSES else None


def stored(state: Courier) -> str:
    return f"{state.clock} {_encode_state(state).decode()}"


class EventWorker:
    def __init__(self, settings: Settings, zones: Zones, store: Store, producer: Producer) -> None:
        self.settings = settings
        self.zones = zones
        self.store = store
        self.producer = producer
        self.params = Params.from_settings(settings)
        self.topic = settings.positions_topic
        self.lateness_ms = round((settings.max_age_s + settings.max_skew_s) * 1000)
        self.lock = asyncio.Lock()
        self.folds: dict[int, PartitionFold] = {}
        self.progress: dict[int, int] = {}
        self.totals: Counter[str] = Counter()
        # Set by run_events: the consumer's commit and seek.
        self.commit: Callable[[dict[TopicPartition, int]], Awaitable[None]] = _no_commit
        self.seek: Callable[[int, int], None] = lambda partition, offset: None
        self.orders = OrderFolder(settings, store, producer, self._redis, self._broker)  # tracker/events/orders.py

    # -- rebalance ---------------------------------------------------------------------------------------

    async def on_assign(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:
            numbers = sorted(p for t, p in partitions if t == self.topic)
            await self._load(numbers)
            log.info("assigned partitions %s of %s", numbers, self.topic)

    async def on_revoke(self, partitions: list[TopicPartition]) -> None:
        async with self.lock:  # a batch in hand is finished first
            for topic, partition in partitions:
                if topic == self.topic:
                    self.folds.pop(partition, None)
                    self.progress.pop(partition, None)

    async def _load(self, partitions: list[int]) -> None:
        """Read the partitions' progress, clocks and courier states from Redis (what the last owner applied)."""
        if not partitions:
            return
        progress = await self._redis("read progress", lambda: self.store.event_progress(self.topic, partitions))
        clocks = await self._redis("read clocks", lambda: self.store.event_clocks(partitions))
        for partition in partitions:
            raw = await self._redis("read states", lambda p=partition: self.store.event_states(p))
            couriers: dict[str, Courier] = {}
            unreadable = []
            for partner_id, value in raw.items():
                state = read_state(value)
                if state is None:
                    unreadable.append(partner_id)
                else:
                    couriers[partner_id] = state
            if unreadable:
                log.warning(
                    "partition %d: the stored states of %d couriers are unreadable (e.g. %r); they start afresh",
                    partition,
                    len(unreadable),
                    unreadable[0],
                )
            self.folds[partition] = PartitionFold(self.params, couriers, clocks[partition])
            self.progress[partition] = progress[partition]

    # -- a batch -----------------------------------------------------------------------------------------

    async def handle(self, polled: dict[TopicPartition, list[Record]]) -> list[Event]:
        """Decide, produce, apply and commit one polled batch; returns the events it produced."""
        async with self.lock:
            decided = self.decide(polled)
            await self.produce(decided.events)
            await self.orders.run(decided.fixes)  # order events: produced, then states moved, before progress
            fenced = await self.apply(decided.slices)
            commit = {tp: offset for tp, offset in decided.commit.items() if tp[1] not in fenced}
            if commit:
                try:
                    await self.commit(commit)
                except BrokerError as exc:
                    # A rebalance took the partitions; their next owner skips what is applied.
                    log.warning("offset commit failed, records will be redelivered: %r", exc)
            return decided.events

    def decide(self, polled: dict[TopicPartition, list[Record]]) -> Decided:
        """Fold a polled batch into the owned partitions (in memory only): its events, the slices that
        record it in Redis, and the offsets to commit once both are done."""
        decided = Decided()
        work: list[tuple[int, PartitionFold, list[Fix], int]] = []
        for (topic, partition), records in polled.items():
            fold = self.folds.get(partition)
            if topic != self.topic or fold is None or not records:
                continue
            done = self.progress[partition]
            fresh = [record for record in records if record.offset > done]
            self.totals["consumed"] += len(records)
            self.totals["skipped"] += len(records) - len(fresh)
            decided.commit[(topic, partition)] = records[-1].offset + 1
            if fresh:
                work.append(
                    (partition, fold, [fix for fix in map(self._fix, fresh) if fix is not None], fresh[-1].offset)
                )
        # The zones of the whole batch in one query; then each partition's fixes in offset order.
        fixes = [fix for _, _, partition_fixes, _ in work for fix in partition_fixes]
        inside = iter(self.zones.containing([fix.lat for fix in fixes], [fix.lon for fix in fixes]))
        events = decided.events
        for partition, fold, partition_fixes, last in work:
            decided.fixes += partition_fixes
            for fix in partition_fixes:
                events.extend(fold.on_fix(fix, next(inside)))
            decided.slices.append(self._slice(partition, fold, last))
        return decided

    async def sweep(self, now_ms: int) -> list[Event]:
        """The worker has read everything: move each clock on to ``now_ms`` less the lateness allowance."""
        async with self.lock:
            clock = now_ms - self.lateness_ms
            events: list[Event] = []
            slices: list[EventSlice] = []
            for partition, fold in self.folds.items():
                events.extend(fold.advance_to(clock))
                if fold.changes:
                    slices.append(self._slice(partition, fold, self.progress[partition]))
            await self.produce(events)
            await self.apply(slices)
            return events

    def _fix(self, record: Record) -> Fix | None:
        fix = read_fix(record)
        if isinstance(fix, str):
            self.totals["bad_records"] += 1
            log.warning("skipping position record %s/%d@%d: %s", record.topic, record.partition, record.offset, fix)
            return None
        return fix

    def _slice(self, partition: int, fold: PartitionFold, last: int) -> EventSlice:
        put: list[tuple[str, int, str]] = []
        drop: list[tuple[str, int]] = []
        for partner_id, state in fold.take_changes().items():
            if state is None:
                drop.append((partner_id, fold.clock))
            else:
                put.append((partner_id, state.clock, stored(state)))
        prev, self.progress[partition] = self.progress[partition], last
        return EventSlice(partition, prev, last, fold.clock, put, drop)

    async def produce(self, events: list[Event]) -> None:
        """Produce ``events`` to ``courier-events``, keyed by courier, and wait for the broker's acks."""
        if not events:
            return
        records = [OutRecord(encoded(event), event.partner_id.encode()) for event in events]

        async def send() -> list[asyncio.Future]:
            return await self.producer.send_many(self.settings.events_topic, records)

        await asyncio.gather(*await self._broker("produce events", send))
        for event in events:
            self.totals["events:" + event.type] += 1

    async def apply(self, slices: list[EventSlice]) -> list[int]:
        """Apply ``slices`` to Redis (after their events are acknowledged); returns the fenced partitions,
        reloaded from Redis and sought back to the first record it has not applied."""
        if not slices:
            return []
        calls = [[*self.store.event_slice_keys(self.topic, item.p), _pack(item)] for item in slices]
        outcomes = await self._redis("apply states", lambda: self.store.run_script(_APPLY_SCRIPT, calls, keys=3))
        fenced = [item.p for item, outcome in zip(slices, outcomes, strict=True) if int(outcome) == FENCED]
        for partition in fenced:
            log.warning("partition %d was written by another member; reloading it from Redis", partition)
            self.totals["fenced"] += 1
        await self._load(fenced)
        for partition in fenced:
            self.seek(partition, self.progress[partition] + 1)
        return fenced

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


async def run_events(
    settings: Settings,
    zones: Zones,
    stop: asyncio.Event,
    *,
    idle_exit_s: float | None = None,
    clock_ms: Callable[[], int] | None = None,
) -> Counter[str]:
    """Decide events until ``stop`` is set (or, with ``idle_exit_s``, until the topic has been quiet that long).

    Retries that run out (Redis or the broker down for longer than the retry budget) raise: nothing was
    applied or committed that is not acknowledged, so whoever runs next carries on.
    """
    now_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
    store = Store(settings)
    producer = Producer(settings)
    await producer.start()
    worker = EventWorker(settings, zones, store, producer)
    quiet_since = time.monotonic()

    async def assigned(partitions: list[TopicPartition]) -> None:
        nonlocal quiet_since
        await worker.on_assign(partitions)
        quiet_since = time.monotonic()

    consumer = Consumer(
        settings,
        [settings.positions_topic],
        group_id=settings.zone_events_group,
        start="earliest",
        on_assign=assigned,
        on_revoke=worker.on_revoke,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )
    worker.commit = consumer.commit
    worker.seek = lambda partition, offset: consumer.seek(settings.positions_topic, partition, offset)
    last_sweep = 0.0
    try:
        await consumer.start()
        while not stop.is_set():
            try:
                polled = await consumer.poll(timeout_ms=settings.poll_timeout_ms, max_records=settings.max_batch)
            except BrokerError as exc:
                log.warning("poll failed: %r; polling again", exc)
                await asyncio.sleep(settings.retry_backoff_ms / 1000)
                continue
            if any(polled.values()):
                await worker.handle(polled)
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - last_sweep >= SWEEP_INTERVAL_S and worker.folds:
                last_sweep = time.monotonic()
                if settings.report_lag and await _caught_up(consumer):
                    await worker.sweep(now_ms())
            if idle_exit_s is not None and worker.folds and time.monotonic() - quiet_since >= idle_exit_s:
                break
    finally:
        try:
            await consumer.stop()
        finally:
            await producer.stop()
            await store.close()
    return worker.totals


async def _caught_up(consumer: Consumer) -> bool:
    try:
        return await consumer.lag() == 0
    except BrokerError as exc:
        log.debug("lag unavailable: %r", exc)
        return False


async def _no_commit(offsets: dict[TopicPartition, int]) -> None:
    raise RuntimeError("the events worker has no consumer to commit with")
