"""What an operator does to a rejected ping: replay it (as it was, or corrected) or discard it.

Shared by the HTTP API and ``tracker dlq``. A replay first moves the entry from ``new`` to ``replayed``
(compare-and-set, so two operators cannot replay it twice), then produces; if producing fails the entry
goes back to ``new``.
"""

from __future__ import annotations

import msgspec

from tracker.dlq_index import DlqIndex
from tracker.kafka import Producer
from tracker.review import Status, edited_payload, replay_record
from tracker.settings import Settings


class ReplayResult(msgspec.Struct, frozen=True):
    id: str
    status: str
    replay_count: int
    partition: int
    offset: int


async def replay(settings: Settings, index: DlqIndex, producer: Producer, entry_id: str, *, actor: str,
                 edited: str | bytes | None = None) -> ReplayResult:
    row = await index.get(entry_id)
    payload, partner_id = edited_payload(edited) if edited is not None else (None, None)
    record = replay_record(row.entry, cap=settings.replay_cap, payload=payload, partner_id=partner_id)
    await index.set_status(entry_id, Status.NEW, Status.REPLAYED, actor)
    try:
        [future] = await producer.send_many(settings.location_topic, [record])
        metadata = await future
    except BaseException:
        await index.set_status(entry_id, Status.REPLAYED, Status.NEW, actor)
        raise
    return ReplayResult(entry_id, Status.REPLAYED.value, row.entry.replay_count + 1, metadata.partition,
                        metadata.offset)


async def discard(index: DlqIndex, entry_id: str, *, actor: str) -> None:
    await index.set_status(entry_id, Status.NEW, Status.DISCARDED, actor)

