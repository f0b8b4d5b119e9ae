"""The review index of dead letters in Redis, written by the DLQ indexer and read by the API and the CLI.

Both the page and ``tracker dlq`` read counts and lists through this one class, so they always agree.
The index keeps the newest entries within two caps, ``dlq_index_max`` entries and ``dlq_index_max_bytes``
bytes of entry JSON (a running total in ``dlq:bytes``); counts by reason are cumulative, and so are counts
by partner, kept for the ``dlq_partners_top`` busiest couriers only. Writes go through the Lua scripts
beside this module (index_entry.lua, set_status.lua) so that each is atomic; every key name they touch is
passed in from here. This module holds the rules (filters, cursors, pages, caps); every Redis call is a
method of :class:`~tracker.store.Store` (its "review index" section).
"""

from __future__ import annotations

import builtins
import time

import msgspec

from tracker.dlq.entry import Entry, Row, Status
from tracker.store import Store, lua

_INDEX_SCRIPT = lua("index_entry.lua", __package__)
_STATUS_SCRIPT = lua("set_status.lua", __package__)
MINUTE_MS = 60_000
MINUTE_TTL_S = 2 * 3600
_ROW_FIELDS = ("entry", "status", "status_by", "status_at")


class Filters(msgspec.Struct, frozen=True):
    reason: str | None = None
    partner: str | None = None
    status: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


class Page(msgspec.Struct, frozen=True):
    rows: list[Row]
    total: int
    next_cursor: str | None


class StatusConflict(Exception):
    def __init__(self, entry_id: str, current: str) -> None:
        super().__init__(f"entry {entry_id} is {current}, not new")
        self.current = current


class UnknownEntry(KeyError):
    pass


BAD_CURSOR = "cursor is not one this listing gave"


class BadCursor(ValueError):
    """A ``cursor`` that is not a ``next_cursor`` this listing gave."""

    def __init__(self) -> None:
        super().__init__(BAD_CURSOR)


_decode_entry = msgspec.json.Decoder(Entry).decode
_encode = msgspec.json.Encoder().encode


class DlqIndex:
    def __init__(self, store: Store, max_entries: int | None = None) -> None:
        settings = store.settings
        self.store = store
        self.max_entries = max_entries if max_entries is not None else settings.dlq_index_max
        self.max_bytes = settings.dlq_index_max_bytes
        self.partners_top = settings.dlq_partners_top

    async def add(self, entries: list[Entry]) -> int:
        """Index entries (idempotent); returns how many were new."""
        if not entries:
            return 0
        keys = self.store.review
        fixed = [keys.entry, keys.seen, keys.index, keys.reasons, keys.statuses, keys.partners]
        calls = []
        for entry in entries:
            original = _dedupe_key(entry)
            minute = entry.rejected_at - entry.rejected_at % MINUTE_MS
            calls.append(
                [
                    *fixed,
                    keys.minute + str(minute),
                    keys.bytes,
                    entry.id,
                    original,
                    _encode(entry),
                    entry.rejected_at,
                    entry.reason,
                    entry.partner_id or "",
                    self.max_entries,
                    self.max_bytes,
                    self.partners_top,
                    MINUTE_TTL_S,
                    Status.NEW.value,
                ]
            )
        return sum(int(result) for result in await self.store.run_script(_INDEX_SCRIPT, calls, keys=8))

    async def get(self, entry_id: str) -> Row:
        [fields] = await self.store.review_fields([entry_id], *_ROW_FIELDS)
        if fields[0] is None:
            raise UnknownEntry(entry_id)
        return _row(fields)

    async def list(self, filters: Filters, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Entries newest first. ``cursor`` is the ``next_cursor`` of the previous page."""
        scored = await self.store.review_ids(filters.since_ms, filters.until_ms)
        wanted = filters.reason is not None or filters.partner is not None or filters.status is not None
        if wanted:
            matches = []
            fields = await self.store.review_fields([entry_id for entry_id, _ in scored], "reason", "partner", "status")
            for (entry_id, score), (reason, partner, status) in zip(scored, fields, strict=True):
                if reason is None or partner is None or status is None:
                    continue  # evicted between the two reads (the fields are written together)
                if filters.reason is not None and reason.decode() != filters.reason:
                    continue
                if filters.partner is not None and partner.decode() != filters.partner:
                    continue
                if filters.status is not None and status.decode() != filters.status:
                    continue
                matches.append((entry_id, score))
        else:
            matches = scored
        # Newest first; ties (same millisecond) by id, descending, so that the order is total and stable.
        matches.sort(key=lambda item: (item[1], _sort_key(item[0])), reverse=True)
        start = 0
        if cursor:
            position = _decode_cursor(cursor)
            start = next(
                (i for i, (entry_id, score) in enumerate(matches) if (score, _sort_key(entry_id)) < position),
                len(matches),
            )
        chunk = matches[start : start + limit]
        rows = await self._rows([entry_id for entry_id, _ in chunk])
        next_cursor = None
        if start + limit < len(matches) and chunk:
            last_id, last_score = chunk[-1]
            next_cursor = f"{int(last_score)}_{last_id}"
        return Page(rows, len(matches), next_cursor)

    async def _rows(self, ids: builtins.list[str]) -> builtins.list[Row]:  # list: the method above
        return [_row(fields) for fields in await self.store.review_fields(ids, *_ROW_FIELDS) if fields[0] is not None]

    async def set_status(
        self, entry_id: str, from_status: Status, to_status: Status, by: str, at_ms: int | None = None
    ) -> None:
        at_ms = at_ms if at_ms is not None else time.time_ns() // 1_000_000
        keys = self.store.review
        [result] = await self.store.run_script(
            _STATUS_SCRIPT,
            [[keys.entry + entry_id, keys.statuses, from_status.value, to_status.value, by, at_ms]],
            keys=2,
        )
        result = result.decode() if isinstance(result, bytes) else result
        if result == "missing":
            raise UnknownEntry(entry_id)
        if result != "ok":
            raise StatusConflict(entry_id, result)

    async def stats(self, now_ms: int | None = None, top_partners: int = 20) -> dict:
        now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
        this_minute = now_ms - now_ms % MINUTE_MS
        minutes = [this_minute - i * MINUTE_MS for i in range(59, -1, -1)]
        counts = await self.store.review_counts(minutes, top_partners)
        by_reason = dict(sorted(counts.by_reason.items()))
        return {
            "total": sum(by_reason.values()),
            "indexed": counts.indexed,
            "indexed_bytes": counts.indexed_bytes,
            "by_reason": by_reason,
            "by_status": {s.value: counts.by_status.get(s.value, 0) for s in Status},
            "by_partner": [[partner, count] for partner, count in counts.by_partner],
            "per_minute": [[m, count] for m, count in zip(minutes, counts.per_minute, strict=True)],
        }


def _dedupe_key(entry: Entry) -> str:
    """What makes two dead letters the same rejected ping: its original topic/partition/offset. A dead letter
    that does not say where it came from (written by another producer, or with garbled dlq.original.*
    headers) is only ever the same as itself."""
    original = entry.original
    if original.topic and original.partition >= 0 and original.offset >= 0:
        return f"{original.topic}/{original.partition}/{original.offset}"
    return f"dlq/{entry.id}"


def _row(fields: list) -> Row:
    entry, status, status_by, status_at = fields
    return Row(
        _decode_entry(entry),
        status.decode(),
        status_by.decode() if status_by else None,
        int(status_at) if status_at else None,
    )


def _sort_key(entry_id: str) -> tuple[int, int]:
    partition, _, offset = entry_id.partition(":")
    return int(partition), int(offset)


def _decode_cursor(cursor: str) -> tuple[float, tuple[int, int]]:
    try:
        score, _, entry_id = cursor.partition("_")
        return float(score), _sort_key(entry_id)
    except ValueError:
        raise BadCursor from None
