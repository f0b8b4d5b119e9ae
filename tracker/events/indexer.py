"""The event indexer: consumer group ``event-indexer`` on ``courier-events``, filling the index behind
``/api/events`` (index.py). Offsets are committed after the events are in Redis, and indexing is idempotent
(by event id), so a redelivered batch, or an event a crashed worker produced twice, changes nothing.

It is total: a record that is not an event (no value, not JSON, a wrong field) is counted, logged with its
topic, partition and offset, and skipped. Redis or broker failures are retried within the retry budget;
past it the error is raised and nothing unindexed is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import msgspec

from tracker.events.decide import Event
from tracker.events.index import EventIndex, encoded
from tracker.kafka import BrokerError, Consumer
from tracker.models import Record
from tracker.retry import retry
from tracker.settings import Settings
from tracker.store import Store, StoreError

log = logging.getLogger(__name__)
POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 1000
_decode_event = msgspec.json.Decoder(Event).decode


def read_event(record: Record) -> Event | str:
    """A ``courier-events`` value as an event, or what is wrong with it."""
    if record.value is None:
        return "no value"
    try:
        return _decode_event(record.value)
    except (msgspec.DecodeError, ValueError) as exc:
        return f"not an event: {exc}"[:300]


def events_of(records: list[Record], totals: Counter[str]) -> list[tuple[Event, bytes]]:
    found = []
    for record in records:
        event = read_event(record)
        if isinstance(event, str):
            totals["bad_records"] += 1
            log.warning("skipping event record %s/%d@%d: %s", record.topic, record.partition, record.offset, event)
            continue
        found.append((event, encoded(event)))
    return found


async def run_event_indexer(
    settings: Settings,
    store: Store,
    stop: asyncio.Event,
    *,
    idle_exit_s: float | None = None,
    idle_after: asyncio.Event | None = None,
) -> Counter[str]:
    """Index ``courier-events`` until ``stop`` is set, or until the topic has been quiet for ``idle_exit_s``
    (counted from when ``idle_after`` is set, if given: the worker that produces the events is done)."""
    index = EventIndex(store)
    totals: Counter[str] = Counter()
    quiet_since = time.monotonic()
    assigned: list[bool] = []  # idleness counts from the first assignment on
    counting = False

    async def on_assign(partitions: list[tuple[str, int]]) -> None:
        nonlocal quiet_since
        if not assigned:
            quiet_since = time.monotonic()
        assigned[:] = [True]

    consumer = Consumer(
        settings,
        [settings.events_topic],
        group_id=settings.event_indexer_group,
        start="earliest",
        max_poll_records=MAX_POLL_RECORDS,
        on_assign=on_assign,
        session_timeout_ms=settings.kafka_session_timeout_ms,
    )

    async def redis_retried(operation, what: str):
        return await retry(
            operation,
            what=what,
            attempts=settings.retry_attempts,
            backoff_ms=settings.retry_backoff_ms,
            max_backoff_ms=settings.retry_max_backoff_ms,
            retry_on=(StoreError, OSError),
        )

    try:
        await consumer.start()
        while not stop.is_set():
            try:
                polled = await consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
            except BrokerError as exc:
                log.warning("event indexer: poll failed: %r; polling again", exc)
                await asyncio.sleep(settings.retry_backoff_ms / 1000)
                continue
            records = [record for batch in polled.values() for record in batch]
            if not records:
                if idle_exit_s is not None and assigned and (idle_after is None or idle_after.is_set()):
                    if idle_after is not None and not counting:
                        counting, quiet_since = True, time.monotonic()  # what the worker produced last, too
                    if time.monotonic() - quiet_since >= idle_exit_s:
                        break
                continue
            quiet_since = time.monotonic()
            events = events_of(records, totals)
            added = await redis_retried(lambda events=events: index.add(events), "index events")
            totals["read"] += len(records)
            totals["indexed"] += added
            try:
                await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch})
            except BrokerError as exc:
                # After a rebalance the commit cannot succeed; whoever reads these again indexes nothing twice.
                log.warning("event indexer: commit failed (these events will be indexed again, harmlessly): %r", exc)
    finally:
        await consumer.stop()
    return totals
