"""The DLQ indexer: consumer group ``dlq-indexer`` (Kafka's pub/sub model: a group of its own next to the
validators) turning dead letters into review entries. It runs inside each gateway process; several
gateways share the DLQ's partitions. Offsets are committed after the entries are in Redis, and indexing
is idempotent, so a redelivered batch changes nothing.
"""

from __future__ import annotations

import asyncio
import logging

from tracker.dlq_index import DlqIndex
from tracker.kafka import BrokerError, Consumer
from tracker.retry import retry
from tracker.review import entry_from_record
from tracker.settings import Settings
from tracker.store import Store, StoreError

log = logging.getLogger(__name__)


async def run_indexer(settings: Settings, store: Store, stop: asyncio.Event) -> None:
    index = DlqIndex(store, settings.dlq_index_max)
    consumer = Consumer(settings, [settings.dlq_topic], group_id=settings.dlq_indexer_group, start="earliest",
                        max_poll_records=1000, session_timeout_ms=settings.kafka_session_timeout_ms)
    await consumer.start()
    try:
        while not stop.is_set():
            try:
                polled = await consumer.poll(timeout_ms=500)
            except BrokerError as exc:
                log.warning("DLQ indexer: %r; retrying", exc)
                await asyncio.sleep(1)
                continue
            records = [record for batch in polled.values() for record in batch]
            if not records:
                continue
            entries = [entry_from_record(record) for record in records]
            added = await retry(lambda batch=entries: index.add(batch), what="index dead letters",
                                attempts=settings.retry_attempts, backoff_ms=settings.retry_backoff_ms,
                                retry_on=(StoreError, OSError))
            log.debug("indexed %d dead letters (%d new)", len(entries), added)
            try:
                await consumer.commit({tp: batch[-1].offset + 1 for tp, batch in polled.items() if batch})
            except BrokerError as exc:
                log.warning("DLQ indexer commit failed (records will be indexed again, harmlessly): %r", exc)
    finally:
        await consumer.stop()
