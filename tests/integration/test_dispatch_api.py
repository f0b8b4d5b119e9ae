"""The events as the gateway serves them (TestClient, real Redis): /api/events behind the viewer token, and
tracker_events_total in /metrics, counted from the index the events indexer fills."""

from __future__ import annotations

import time
import uuid

import pytest
from starlette.testclient import TestClient

from tests.helpers import eventually_sync
from tracker.events.decide import Event, event_id
from tracker.events.index import EventIndex, encoded
from tracker.gateway import create_app

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

VIEWER = "viewer-token-events"


def test_the_gateway_serves_events_and_counts_them(infra):
    settings = infra.replace(namespace=f"dispatch{uuid.uuid4().hex[:8]}.", viewer_token=VIEWER)
    app = create_app(settings, consume=False)
    with TestClient(app, base_url="http://localhost") as client:
        ts = int(time.time() * 1000)
        enter = Event(
            event_id("c1", "zone_enter", ts, "Koramangala", None, None),
            "zone_enter",
            "c1",
            ts,
            "Koramangala",
            12.93,
            77.62,
        )
        index = EventIndex(app.state.gateway.store)
        assert client.portal is not None
        assert client.portal.call(index.add, [(enter, encoded(enter))]) == 1

        assert client.get("/api/events").status_code == 401  # courier positions: the viewer token's
        listed = client.get("/api/events", params={"limit": 10}, headers={"authorization": f"Bearer {VIEWER}"})
        assert listed.status_code == 200
        assert [(e["type"], e["partner_id"], e["zone"], e["ts"]) for e in listed.json()] == [
            ("zone_enter", "c1", "Koramangala", ts)
        ]
        bad = client.get("/api/events", params={"since": "soon"}, headers={"authorization": f"Bearer {VIEWER}"})
        assert bad.status_code == 400 and set(bad.json()) == {"error"}

        def counted() -> bool:
            text = client.get("/metrics").text
            return 'tracker_events_total{type="zone_enter"} 1.0' in text and (
                'tracker_events_total{type="zone_exit"} 0.0' in text
            )

        eventually_sync(counted, timeout_s=10, what="tracker_events_total in /metrics")
