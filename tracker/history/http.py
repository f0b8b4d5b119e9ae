"""History's HTTP routes: one courier's fixes in a window, and every courier's for fleet playback.

``GET /api/couriers/{id}/trail?from=&to=`` answers ``points`` (``[ts, lat, lon]``, oldest first): exactly the
fixes history keeps with ``from <= ts <= to`` (epoch ms; ``to`` defaults to now, ``from`` to an hour before
it, and they may be ``TRACKER_HISTORY_S`` apart at most). ``downsampled_before`` says up to when the answer
has one fix per ``step_ms`` instead of every fix (null: every fix throughout).

``GET /api/history/fleet?from=&to=`` (at most an hour) answers every courier with history in the window at the
step tier's resolution, each as ``{"id", "points"}``: base64 of little-endian int32 triples (ms after ``from``,
latitude and longitude in micro-degrees), oldest first (:class:`~tracker.history.plan.Track` says why packed).

Both are ``/api/`` routes, so the access middleware asks for the viewer token when one is set. Bad input gets
400 with a fixed one-line message; Redis failing, 503.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker.history import plan
from tracker.store import Store, StoreError

log = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]
STORE_UNAVAILABLE = "the history store is unavailable; try again"
NO_STORE = {"Cache-Control": "no-store"}  # positions are personal data (access.py adds it under /api/couriers)
_encode = msgspec.json.Encoder().encode


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _retention(request: Request) -> plan.Retention:
    return plan.Retention.from_settings(request.app.state.gateway.settings)


def _store(request: Request) -> Store:
    return request.app.state.gateway.store


def _window(request: Request, max_ms: int) -> tuple[int, int] | str:
    params = request.query_params
    return plan.parse_window(params.get("from"), params.get("to"), _now_ms(), max_ms)


async def courier_trail(request: Request, partner_id: str) -> Response:
    retention = _retention(request)
    window = _window(request, max(retention.history_ms, plan.FLEET_WINDOW_MAX_MS))
    if isinstance(window, str):
        return _error(400, window)
    from_ms, to_ms = window
    minutes, hours = plan.window_buckets(from_ms, to_ms)
    try:
        full, step = await _store(request).history_buckets(
            partner_id,
            [plan.suffix(minute, partner_id) for minute in minutes],
            [plan.suffix(hour, partner_id) for hour in hours],
        )
    except (StoreError, OSError) as exc:
        log.warning("reading the history of %r failed: %r", partner_id, exc)
        return _error(503, STORE_UNAVAILABLE)
    found = plan.read_window(from_ms, to_ms, minutes, full, hours, step)
    body = {
        "partner_id": partner_id,
        "from": from_ms,
        "to": to_ms,
        "step_ms": retention.step_ms,
        "downsampled_before": found.downsampled_before,
        "points": found.points,
    }
    return Response(_encode(body), media_type="application/json")  # no-store: the access middleware's /api/couriers


async def fleet(request: Request) -> Response:
    retention = _retention(request)
    window = _window(request, plan.FLEET_WINDOW_MAX_MS)
    if isinstance(window, str):
        return _error(400, window)
    from_ms, to_ms = window
    _, hours = plan.window_buckets(from_ms, to_ms)
    store = _store(request)
    try:
        partner_ids = await store.history_fleet(hours)
        step = await store.history_steps(
            partner_ids, [[plan.suffix(hour, pid) for hour in hours] for pid in partner_ids]
        )
    except (StoreError, OSError) as exc:
        log.warning("reading the fleet's history failed: %r", exc)
        return _error(503, STORE_UNAVAILABLE)
    tracks = plan.fleet_tracks(from_ms, to_ms, partner_ids, hours, step)
    body = {"from": from_ms, "to": to_ms, "step_ms": retention.step_ms, "couriers": tracks}
    return Response(_encode(body), media_type="application/json", headers=NO_STORE)


def routes(courier: Endpoint, is_partner_id: Callable[[str], bool]) -> list[Route]:
    """The history routes, to go before ``/api/couriers/{partner_id:path}`` (which would take ``x/trail`` as the
    id ``x/trail``). ``courier`` answers that route: a path whose last ``/trail`` was sent as ``%2Ftrail`` is
    part of an id and goes there; ``is_partner_id`` is the gateway's test of an id."""

    async def trail(request: Request) -> Response:
        raw_path = request.scope.get("raw_path")
        if isinstance(raw_path, bytes) and not raw_path.split(b"?", 1)[0].endswith(b"/trail"):
            request.path_params["partner_id"] += "/trail"
            return await courier(request)
        partner_id = request.path_params["partner_id"]
        if not is_partner_id(partner_id):
            return await courier(request)  # its 404, in the gateway's words for an id no courier can have
        return await courier_trail(request, partner_id)

    return [
        Route("/api/couriers/{partner_id:path}/trail", trail),
        Route("/api/history/fleet", fleet),
    ]
