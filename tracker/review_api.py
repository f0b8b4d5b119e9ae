"""HTTP API of the rejected-ping review: ``/api/dlq...`` routes and the write-token check.

Writes need ``Authorization: Bearer <TRACKER_ADMIN_TOKEN>``, compared in constant time. Without a token
configured the write endpoints answer 403 (writes disabled); a missing or wrong token gets 401.
"""

from __future__ import annotations

import hmac
import logging

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker import operator
from tracker.dlq_index import Filters, Row, StatusConflict, UnknownEntry
from tracker.kafka import BrokerError
from tracker.review import ReplayRefused, payload_of
from tracker.rules import parse_timestamp
from tracker.store import StoreError

log = logging.getLogger(__name__)
MAX_LIMIT = 500
MAX_BULK = 500
MAX_BODY_BYTES = 64 * 1024


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def row_json(row: Row) -> dict:
    entry = row.entry
    return {
        "id": entry.id, "reason": entry.reason, "detail": entry.detail, "partner_id": entry.partner_id,
        "rejected_at": entry.rejected_at, "status": row.status, "status_by": row.status_by,
        "status_at": row.status_at, "original": msgspec.to_builtins(entry.original), "lat": entry.lat,
        "lon": entry.lon, "replay_count": entry.replay_count,
    }


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    return int(raw)


async def list_entries(request: Request) -> Response:
    gateway = request.app.state.gateway
    params = request.query_params
    try:
        filters = Filters(reason=params.get("reason") or None, partner=params.get("partner") or None,
                          status=params.get("status") or None, since_ms=_int_param(request, "since"),
                          until_ms=_int_param(request, "until"))
        limit = min(max(_int_param(request, "limit") or 50, 1), MAX_LIMIT)
        page = await gateway.dlq_index.list(filters, limit=limit, cursor=params.get("cursor") or None)
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse({"items": [row_json(row) for row in page.rows], "next_cursor": page.next_cursor,
                         "total": page.total})


async def stats(request: Request) -> Response:
    return JSONResponse(await request.app.state.gateway.dlq_index.stats())


async def last_fix_before(store, partner_id: str | None, ts: object) -> dict | None:
    """The courier's last accepted fix before ``ts`` (from its trail), for drawing a rejected jump."""
    if partner_id is None or not isinstance(ts, int):
        return None
    for point in await store.trail(partner_id):
        if point[0] <= ts:
            return {"ts": point[0], "lat": point[1], "lon": point[2]}
    return None


async def entry_detail(request: Request) -> Response:
    gateway = request.app.state.gateway
    try:
        row = await gateway.dlq_index.get(request.path_params["entry_id"])
    except UnknownEntry:
        return _error(404, f"no rejected ping {request.path_params['entry_id']!r}")
    payload = payload_of(row.entry)
    try:
        payload_json = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):
        payload_json = None
    ts = parse_timestamp(payload_json.get("ts")) if isinstance(payload_json, dict) else None
    body = row_json(row) | {
        "key": row.entry.key, "headers": [list(pair) for pair in row.entry.headers],
        "payload_text": payload.decode("utf-8", "replace"), "payload_json": payload_json,
        "last_fix": await last_fix_before(gateway.store, row.entry.partner_id, ts),
        "validator": row.entry.validator, "attempts": row.entry.attempts,
    }
    return JSONResponse(body)


def check_token(request: Request) -> Response | None:
    """None when the request may write; else the 401/403 response."""
    expected = request.app.state.gateway.settings.admin_token
    if not expected:
        return _error(403, "writes are disabled: no TRACKER_ADMIN_TOKEN is configured on the server")
    scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected.encode()):
        return _error(401, "missing or wrong bearer token")
    return None


async def _body(request: Request) -> dict | Response:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _error(400, "request body is not JSON")
    return body if isinstance(body, dict) else _error(400, "request body must be a JSON object")


async def _replay_one(request: Request, entry_id: str, edited) -> tuple[int, dict]:
    gateway = request.app.state.gateway
    if edited is not None and not isinstance(edited, (str, dict)):
        return 422, {"error": "payload must be a JSON object (or its text)"}
    text = msgspec.json.encode(edited) if isinstance(edited, dict) else edited
    try:
        result = await operator.replay(gateway.settings, gateway.dlq_index, gateway.producer, entry_id,
                                       actor=_actor(request), edited=text)
    except UnknownEntry:
        return 404, {"error": f"no rejected ping {entry_id!r}"}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    except ReplayRefused as exc:
        return 422, {"error": str(exc)}
    except (BrokerError, StoreError) as exc:
        log.warning("replay of %s failed: %r", entry_id, exc)
        return 503, {"error": f"replay failed, try again: {type(exc).__name__}"}
    return 200, msgspec.to_builtins(result)


async def _discard_one(request: Request, entry_id: str) -> tuple[int, dict]:
    try:
        await operator.discard(request.app.state.gateway.dlq_index, entry_id, actor=_actor(request))
    except UnknownEntry:
        return 404, {"error": f"no rejected ping {entry_id!r}"}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    return 200, {"id": entry_id, "status": "discarded"}


def _actor(request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    return f"api@{client}"


async def replay(request: Request) -> Response:
    if (refused := check_token(request)) is not None:
        return refused
    body = await _body(request)
    if isinstance(body, Response):
        return body
    status, payload = await _replay_one(request, request.path_params["entry_id"], body.get("payload"))
    return JSONResponse(payload, status_code=status)


async def discard(request: Request) -> Response:
    if (refused := check_token(request)) is not None:
        return refused
    status, payload = await _discard_one(request, request.path_params["entry_id"])
    return JSONResponse(payload, status_code=status)


async def _bulk(request: Request, action) -> Response:
    if (refused := check_token(request)) is not None:
        return refused
    body = await _body(request)
    if isinstance(body, Response):
        return body
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids) or len(ids) > MAX_BULK:
        return _error(400, f"ids must be a list of 1-{MAX_BULK} entry ids")
    results = []
    for entry_id in dict.fromkeys(ids):
        status, payload = await action(request, entry_id)
        results.append({"id": entry_id, "ok": status == 200, "error": payload.get("error")})
    return JSONResponse({"results": results})


async def bulk_replay(request: Request) -> Response:
    return await _bulk(request, lambda req, entry_id: _replay_one(req, entry_id, None))


async def bulk_discard(request: Request) -> Response:
    return await _bulk(request, _discard_one)


routes = [
    Route("/api/dlq", list_entries),
    Route("/api/dlq/stats", stats),
    Route("/api/dlq/replay", bulk_replay, methods=["POST"]),
    Route("/api/dlq/discard", bulk_discard, methods=["POST"]),
    Route("/api/dlq/{entry_id:str}", entry_detail),
    Route("/api/dlq/{entry_id:str}/replay", replay, methods=["POST"]),
    Route("/api/dlq/{entry_id:str}/discard", discard, methods=["POST"]),
]
