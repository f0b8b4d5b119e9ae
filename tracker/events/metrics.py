"""Prometheus counters of the events, by type: what the index has counted (each event once, by id).

The gateway registers :class:`EventMetrics` in its registry and refreshes it with its once-a-second
Redis read; it exports ``tracker_events_total{type}`` for every type, 0 until one happens.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily

from tracker.events.decide import EVENT_TYPES
from tracker.store import Store


class EventMetrics:
    def __init__(self) -> None:
        self.by_type: dict[str, int] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        events = CounterMetricFamily(
            "tracker_events", "Zone, status and order events indexed, by type (each event once)", labels=["type"]
        )
        for kind in EVENT_TYPES:
            events.add_metric([kind], self.by_type.get(kind, 0))
        yield events

    async def refresh(self, store: Store) -> None:
        self.by_type, _ = await store.event_counts()
