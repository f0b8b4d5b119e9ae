"""The index of events behind ``/api/events``, in Redis, filled from ``courier-events`` (tracker/events/indexer.py).

Each event is kept once, by its id (index_event.lua: a re-produced event finds its id taken and changes
nothing), in a hash of JSON and three sorted sets by event time: every event, each courier's, each zone's.
The newest ``TRACKER_EVENTS_INDEX_MAX`` events are kept; adding one more evicts the oldest from all of them.
Counts by type are cumulative (events ever indexed). This module holds the rules (which index answers a
filter, paging through it, the caps); every Redis call is a method of :class:`~tracker.store.Store`.
"""

from __future__ import annotations

import msgspec

from tracker.events.decide import EVENT_TYPES, Event
from tracker.store import Store, lua

_INDEX_SCRIPT = lua("index_event.lua", __package__)
_encode = msgspec.json.Encoder().encode
MAX_LIMIT = 1000
TEXT_MAX = 200  # the longest partner or zone a filter may name (ids are 64 characters; zone names are free)


class EventFilters(msgspec.Struct, frozen=True):
    partner: str | None = None
    zone: str | None = None
    type: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None

    def problems(self) -> list[str]:
        """What is wrong with these filters, in words (the API's 400)."""
        problems = []
        if self.type is not None and self.type not in EVENT_TYPES:
            problems.append(f"type must be one of {', '.join(EVENT_TYPES)}, got {self.type[:TEXT_MAX]!r}")
        for name in ("partner", "zone"):
            value = getattr(self, name)
            if value is not None and len(value) > TEXT_MAX:
                problems.append(f"{name} is longer than {TEXT_MAX} characters")
        if self.since_ms is not None and self.until_ms is not None and self.since_ms > self.until_ms:
            problems.append("since is after until")
        return problems


def encoded(event: Event) -> bytes:
    """The event's JSON: the value of a ``courier-events`` record and of its index entry."""
    return _encode(event)


class EventIndex:
    def __init__(self, store: Store, max_events: int | None = None) -> None:
        self.store = store
        self.max_events = max_events if max_events is not None else store.settings.events_index_max

    async def add(self, events: list[tuple[Event, bytes]]) -> int:
        """Index events with their JSON, idempotently; returns how many were new."""
        if not events:
            return 0
        keys = self.store.events
        fixed = [keys.data, keys.index, keys.partner, keys.zone, keys.counts, self.max_events]
        calls = [
            [*fixed, event.id, raw, event.ts, event.partner_id, event.zone or "", event.type] for event, raw in events
        ]
        return sum(int(result) for result in await self.store.run_script(_INDEX_SCRIPT, calls, keys=5))

    async def list(self, filters: EventFilters, limit: int) -> list[dict]:
        """Events matching ``filters``, newest first (ties by id), at most ``limit``, as JSON objects.

        The most selective sorted set answers (the courier's, else the zone's, else all events); the other
        filters are applied to what it gives, a page at a time, until ``limit`` are found or it runs out.
        """
        keys = self.store.events
        checks: tuple[str, ...]
        if filters.partner is not None:
            key, checks = keys.partner + filters.partner, ("zone", "type")
        elif filters.zone is not None:
            key, checks = keys.zone + filters.zone, ("type",)
        else:
            key, checks = keys.index, ("type",)
        wanted = {name: getattr(filters, name) for name in checks if getattr(filters, name) is not None}
        found: list[dict] = []
        seen: set[str] = set()  # events added meanwhile shift later pages down: an id may come twice
        start = 0
        page = limit if not wanted else max(limit * 4, 100)
        while len(found) < limit:
            ids = await self.store.event_ids(key, filters.since_ms, filters.until_ms, start, page)
            start += len(ids)
            for raw in await self.store.event_docs(ids):
                if raw is None:
                    continue  # evicted between the two reads
                doc = msgspec.json.decode(raw)
                if doc.get("id") in seen:
                    continue
                seen.add(doc.get("id"))
                if all(doc.get(name) == value for name, value in wanted.items()):
                    found.append(doc)
                    if len(found) == limit:
                        break
            if len(ids) < page:
                break
        return found

    async def stats(self) -> dict:
        by_type, indexed = await self.store.event_counts()
        return {
            "total": sum(by_type.values()),
            "indexed": indexed,
            "by_type": {kind: by_type.get(kind, 0) for kind in EVENT_TYPES},
        }
