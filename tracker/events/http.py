"""HTTP API of the events: ``GET /api/events`` and ``GET /api/events/stats`` (wired into the gateway's routes).

``/api/events?partner=&zone=&type=&since=&until=&limit=`` answers a JSON list of events, newest first by
event time: objects with ``id``, ``type`` (``zone_enter``, ``zone_exit``, ``status_change``,
``order_picked_up``, ``order_arriving``, ``order_delivered``), ``partner_id``, ``zone`` (null but for zone
events), ``ts`` (event time, epoch ms), ``lat``, ``lon``, ``from`` / ``to`` (the statuses, or the order's
states; null for zone events) and ``order_id`` (null but for order events). ``since`` and ``until`` are
epoch ms, inclusive; ``limit`` is 1-1000 (default 100). Bad parameters get 400 with ``error``; Redis down gets 503.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker.events.index import MAX_LIMIT, EventFilters, EventIndex
from tracker.store import StoreError

log = logging.getLogger(__name__)
DEFAULT_LIMIT = 100
STORE_UNAVAILABLE = "the event index is unavailable; try again"


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number (epoch ms for since and until)") from None
    if not -(10**15) < value < 10**15:  # Redis reads scores as doubles: keep them exact
        raise ValueError(f"{name} is out of range")
    return value


def _index(request: Request) -> EventIndex:
    gateway = request.app.state.gateway
    return EventIndex(gateway.store, gateway.settings.events_index_max)


async def list_events(request: Request) -> Response:
    params = request.query_params
    try:
        filters = EventFilters(
            partner=params.get("partner") or None,
            zone=params.get("zone") or None,
            type=params.get("type") or None,
            since_ms=_int_param(request, "since"),
            until_ms=_int_param(request, "until"),
        )
        limit = _int_param(request, "limit")
    except ValueError as exc:
        return _error(400, str(exc))
    problems = filters.problems()
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        problems.append(f"limit must be 1-{MAX_LIMIT}, got {limit}")
    if problems:
        return _error(400, "; ".join(problems))
    try:
        events = await _index(request).list(filters, limit or DEFAULT_LIMIT)
    except (StoreError, OSError) as exc:
        log.warning("reading events from Redis failed: %r", exc)
        return _error(503, STORE_UNAVAILABLE)
    return JSONResponse(events)


async def stats(request: Request) -> Response:
    try:
        return JSONResponse(await _index(request).stats())
    except (StoreError, OSError) as exc:
        log.warning("reading event counts from Redis failed: %r", exc)
        return _error(503, STORE_UNAVAILABLE)


routes = [
    Route("/api/events", list_events),
    Route("/api/events/stats", stats),
]
