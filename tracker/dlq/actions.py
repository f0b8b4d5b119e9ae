"""What an operator does to a rejected ping: replay it (as it was, or corrected) or discard it.

Shared by the HTTP API and ``tracker dlq``. A replay is refused before anything changes when replays are
disabled (no ``TRACKER_REPLAY_SECRET``: validators could not tell it from a forgery), when the entry keeps
only part of the original, when the cap is reached, or when an edited payload would be rejected by the
validator's own parser. It then moves the entry from ``new`` to ``replayed`` (compare-and-set, so two
operators cannot replay it twice) and produces, signed; if producing fails the entry goes back to ``new``.
"""

from __future__ import annotations

import logging

import msgspec

from tracker import rules
from tracker.dlq.entry import PayloadRejected, Status, checked_payload, replay_record
from tracker.dlq.index import DlqIndex
from tracker.kafka import Producer
from tracker.models import Reason
from tracker.settings import Settings

log = logging.getLogger(__name__)
REPLAYS_DISABLED = "replays are disabled: no TRACKER_REPLAY_SECRET is configured"


class ReplaysDisabled(Exception):
    """No replay secret is configured (HTTP 403, CLI exit 1)."""

    def __init__(self) -> None:
        super().__init__(REPLAYS_DISABLED)


class ReplayResult(msgspec.Struct, frozen=True):
    id: str
    status: str
    replay_count: int
    partition: int
    offset: int


def check_replays_enabled(settings: Settings) -> str:
    """The secret that signs replays; ReplaysDisabled when none is set."""
    if not settings.replay_secret:
        raise ReplaysDisabled
    return settings.replay_secret


def check_edited(settings: Settings, edited: str | bytes) -> tuple[bytes, str]:
    """The edited payload's bytes and partner_id, or :class:`PayloadRejected` with the reject code."""
    try:
        return checked_payload(edited, rules.Limits.from_settings(settings))
    except PayloadRejected:
        raise
    except Exception as exc:  # the parser must be total; if it is not, the operator still gets an answer
        log.error("the parser failed on an edited replay payload", exc_info=exc)
        raise PayloadRejected(Reason.MALFORMED_PAYLOAD.value, "the payload could not be checked") from None


async def replay(
    settings: Settings,
    index: DlqIndex,
    producer: Producer,
    entry_id: str,
    *,
    actor: str,
    edited: str | bytes | None = None,
) -> ReplayResult:
    secret = check_replays_enabled(settings)
    row = await index.get(entry_id)
    payload, partner_id = check_edited(settings, edited) if edited is not None else (None, None)
    record = replay_record(row.entry, cap=settings.replay_cap, secret=secret, payload=payload, partner_id=partner_id)
    await index.set_status(entry_id, Status.NEW, Status.REPLAYED, actor)
    try:
        [future] = await producer.send_many(settings.location_topic, [record])
        metadata = await future
    except BaseException:
        await index.set_status(entry_id, Status.REPLAYED, Status.NEW, actor)
        raise
    return ReplayResult(
        entry_id, Status.REPLAYED.value, row.entry.replay_count + 1, metadata.partition, metadata.offset
    )


async def discard(index: DlqIndex, entry_id: str, *, actor: str) -> None:
    await index.set_status(entry_id, Status.NEW, Status.DISCARDED, actor)
