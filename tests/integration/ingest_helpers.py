"""Helpers for the ingest's integration tests: an in-process ingest with an HTTP client, phones' credentials."""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import AsyncIterator

import httpx

from tracker.ingest.app import Ingest, create_app
from tracker.settings import Settings

# A point in the service area (Bengaluru) and one a few hundred metres on.
LAT, LON = 12.9716, 77.5946


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def basic(user: str, password: str) -> dict[str, str]:
    """An ``Authorization: Basic`` header, as OwnTracks and GPSLogger send it."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings) -> AsyncIterator[tuple[Ingest, httpx.AsyncClient]]:
    """The ingest app in this process (its lifespan run as uvicorn would) and a client that talks to it."""
    ingest = Ingest(settings)
    app = create_app(settings, ingest)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
            yield ingest, client
