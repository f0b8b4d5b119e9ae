"""The DLQ indexer: consumer group ``dlq-indexer`` (Kafka's pub/sub model: a group of its own next to the
validators) turning dead letters into review entries. It runs inside each gateway process; several
gateways share the DLQ's partitions. Offsets are committed after the entries are in Redis, and indexing
is idempotent, so a redelivered batch changes nothing.

It is total, and it does not give up: every record becomes an entry (a minimal one when its fields cannot
be read, entry.entry_from_record), and a broker or Redis failure is retried with backoff for as long as it
lasts, holding on to the batch in hand and committing nothing that is not indexed. The first failure of a
streak is logged at ERROR, the rest at WARNING, the recovery at INFO. :func:`run_indexer` returns only when
its stop event is set.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tracker.dlq.entry import Entry, entry_from_record
from tracker.dlq.index import DlqIndex
from tracker.kafka import BrokerError, Consumer
from tracker.models import Record
from tracker.settings import Settings
from tracker.store import Store, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")
POLL_TIMEOUT_MS = 500
MAX_POLL_RECORDS = 1000


class _Stopped(Exception):
    """The stop event was set while waiting to retry."""


class _Backoff:
    """Pauses between retries of one failing operation: doubling from ``retry_backoff_ms`` up to
    ``retry_max_backoff_ms``, cut short by the stop event."""

    def __init__(self, settings: Settings, stop: asyncio.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.failures = 0

    async def failed(self, what: str, exc: BaseException, *, unexpected: bool = False) -> None:
        self.failures += 1
        delay_ms = min(
            self.settings.retry_backoff_ms * 2 ** min(self.failures - 1, 30), self.settings.retry_max_backoff_ms
        )
        if self.failures == 1 or unexpected:
            # An unexpected error is a bug: its traceback is logged every time.
            log.error(
                "DLQ indexer: %s failed: %r; retrying with backoff until it works",
                what,
                exc,
                exc_info=exc if unexpected else None,
            )
        else:
            log.warning(
                "DLQ indexer: %s failed again (%d in a row): %r; retrying in %d ms", what, self.failures, exc, delay_ms
            )
        try:
            await asyncio.wait_for(self.stop.wait(), delay_ms / 1000)
        except TimeoutError:
            return
        raise _Stopped

    def succeeded(self, what: str) -> None:
        if self.failures:
            log.info("DLQ indexer: %s works again after %d failures", what, self.failures)
        self.failures = 0


async def _until_done(operation: Callable[[], Awaitable[T]], what: str, backoff: _Backoff) -> T:
    while True:
        try:
            result = await operation()
        except (BrokerError, StoreError, OSError) as exc:
            await backoff.failed(what, exc)
        else:
            backoff.succeeded(what)
            return result


def entries_of(records: list[Record], settings: Settings) -> list[Entry]:
    return [
        entry_from_record(
            record,
            replay_secret=settings.replay_secret,
            payload_max_bytes=settings.max_payload_bytes,
            headers_max_bytes=settings.dlq_headers_max_bytes,
        )
        for record in records
    ]


async def run_indexer(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    index = DlqIndex(store)
    backoff = _Backoff(settings, stop)
    try:
        while not stop.is_set():
            # A fresh consumer each time round: one that failed to start, or failed in a way its own retries
            # do not cover, is not reused. Nothing was committed past what is indexed, so nothing is lost.
            consumer = Consumer(
                settings,
                [settings.dlq_topic],
                group_id=settings.dlq_indexer_group,
                start="earliest",
                max_poll_records=MAX_POLL_RECORDS,
                session_timeout_ms=settings.kafka_session_timeout_ms,
            )
            try:
                await consumer.start()
                backoff.succeeded("joining the DLQ consumer group")
                await _consume(settings, consumer, index, backoff, stop)
            except (BrokerError, StoreError, OSError) as exc:
                await backoff.failed("joining the DLQ consumer group", exc)
            except _Stopped:
                raise
            except Exception as exc:  # noqa: BLE001 - a bug must not end the review index silently: log it, start afresh
                await backoff.failed("indexing", exc, unexpected=True)
            finally:
                await _stop_quietly(consumer)
    except _Stopped:
        pass
    log.info("DLQ indexer stopped")


async def _stop_quietly(consumer: Consumer) -> None:
    try:
        await consumer.stop()
    except Exception as exc:  # noqa: BLE001 - it failed already; the next consumer starts clean
        log.warning("DLQ indexer: stopping its consumer failed: %r", exc)


async def _consume(
    settings: Settings, consumer: Consumer, index: DlqIndex, backoff: _Backoff, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        polled = await _until_done(lambda: consumer.poll(timeout_ms=POLL_TIMEOUT_MS), "reading the DLQ", backoff)
        records = [record for batch in polled.values() for record in batch]
        if not records:
            continue
        entries = entries_of(records, settings)
        added = await _until_done(functools.partial(index.add, entries), "writing the review index", backoff)
        log.debug("indexed %d dead letters (%d new)", len(entries), added)
        try:
            await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch})
        except BrokerError as exc:
            # Not retried: after a rebalance the commit can never succeed, and the records it covers are
            # indexed already; whoever reads them next indexes them again, which changes nothing.
            log.warning("DLQ indexer: commit failed (these dead letters will be indexed again, harmlessly): %r", exc)
