"""HTTP API of the rejected-ping review: ``/api/dlq...`` routes and the write-token check.

Writes need ``Authorization: Bearer <TRACKER_ADMIN_TOKEN>``, compared in constant time. Without a token
configured the write endpoints answer 403 (writes disabled); a missing or wrong token gets 401. Replays
also need ``TRACKER_REPLAY_SECRET`` (403 without it), and an edited payload the validator's parser rejects
gets 422 with its reject code, before anything is produced or changes status.
"""

from __future__ import annotations

import hmac
import logging
import math

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker.dlq import actions
from tracker.dlq.entry import PayloadRejected, ReplayRefused, payload_of, row_json
from tracker.dlq.index import Filters, StatusConflict, UnknownEntry
from tracker.kafka import BrokerError
from tracker.models import Verdict
from tracker.rules import decode_json, parse_timestamp
from tracker.store import StoreError

log = logging.getLogger(__name__)
MAX_LIMIT = 500
MAX_BULK = 500
MAX_BODY_BYTES = 64 * 1024


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    value = int(raw)  # a ValueError (400) for text, and for more digits than Python will read
    if not -(10**15) < value < 10**15:  # Redis reads scores as doubles: keep them exact
        raise ValueError(f"{name} is out of range")
    return value


async def list_entries(request: Request) -> Response:
    gateway = request.app.state.gateway
    params = request.query_params
    try:
        filters = Filters(
            reason=params.get("reason") or None,
            partner=params.get("partner") or None,
            status=params.get("status") or None,
            since_ms=_int_param(request, "since"),
            until_ms=_int_param(request, "until"),
        )
        limit = min(max(_int_param(request, "limit") or 50, 1), MAX_LIMIT)
        page = await gateway.dlq_index.list(filters, limit=limit, cursor=params.get("cursor") or None)
    except ValueError as exc:
        return _error(400, str(exc))
    return JSONResponse(
        {"items": [row_json(row) for row in page.rows], "next_cursor": page.next_cursor, "total": page.total}
    )


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


JS_SAFE_INT = 2**53  # beyond it a browser's JSON.parse changes the number


def _shown_exactly(value: object) -> bool:
    """Whether a browser shows ``value`` as it is: strings JSON can carry (no lone surrogates), numbers it
    reads without change (no NaN/Infinity, no integers past 2**53). The depth is bounded by decode_json."""
    if isinstance(value, dict):
        return all(_shown_exactly(k) and _shown_exactly(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_shown_exactly(item) for item in value)
    if isinstance(value, str):
        return value.isprintable() or all(not 0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -JS_SAFE_INT <= value <= JS_SAFE_INT
    return True


def payload_json(entry, max_bytes: int) -> object | None:
    """The payload as JSON for the page, when it is a whole JSON document (not a preview) within the
    decoder's bounds that the page can show exactly; None otherwise (the page shows the text)."""
    if entry.payload_truncated:
        return None
    doc = decode_json(payload_of(entry), max_bytes)
    return None if isinstance(doc, Verdict) or not _shown_exactly(doc) else doc


async def entry_detail(request: Request) -> Response:
    gateway = request.app.state.gateway
    try:
        row = await gateway.dlq_index.get(request.path_params["entry_id"])
    except UnknownEntry:
        return _error(404, f"no rejected ping {request.path_params['entry_id']!r}")
    entry = row.entry
    payload = payload_of(entry)
    doc = payload_json(entry, gateway.settings.max_payload_bytes)
    ts = parse_timestamp(doc.get("ts")) if isinstance(doc, dict) else None
    body = row_json(row) | {
        "key": entry.key,
        "headers": [list(pair) for pair in entry.headers],
        "payload_text": payload.decode("utf-8", "replace"),
        "payload_json": doc,
        "payload_size": entry.payload_size if entry.payload_truncated else len(payload),
        "payload_shown": len(payload),
        "payload_sha256": entry.payload_sha256,
        "last_fix": await last_fix_before(gateway.store, entry.partner_id, ts if isinstance(ts, int) else None),
        "validator": entry.validator,
        "attempts": entry.attempts,
    }
    # msgspec, not json.dumps: it writes a payload's huge integers and NaN as JSON can carry them.
    return Response(msgspec.json.encode(body), media_type="application/json")


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
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _error(400, "request body is not JSON")
    except RecursionError:
        # Only an edited payload has any depth to speak of: it is the payload the validator would reject.
        return JSONResponse(
            {
                "error": "the edited payload would be rejected: malformed_payload: JSON nested too deeply",
                "reason": "malformed_payload",
                "detail": "JSON nested too deeply",
            },
            status_code=422,
        )
    return body if isinstance(body, dict) else _error(400, "request body must be a JSON object")


async def _replay_one(request: Request, entry_id: str, edited) -> tuple[int, dict]:
    gateway = request.app.state.gateway
    if edited is not None and not isinstance(edited, (str, dict)):
        return 422, {"error": "payload must be a JSON object (or its text)"}
    text = msgspec.json.encode(edited) if isinstance(edited, dict) else edited
    try:
        result = await actions.replay(
            gateway.settings, gateway.dlq_index, gateway.producer, entry_id, actor=_actor(request), edited=text
        )
    except actions.ReplaysDisabled as exc:
        return 403, {"error": str(exc)}
    except UnknownEntry:
        return 404, {"error": f"no rejected ping {entry_id!r}"}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    except PayloadRejected as exc:
        return 422, {"error": str(exc), "reason": exc.reason, "detail": exc.detail}
    except ReplayRefused as exc:
        return 422, {"error": str(exc)}
    except (BrokerError, StoreError) as exc:
        log.warning("replay of %s failed: %r", entry_id, exc)
        return 503, {"error": f"replay failed, try again: {type(exc).__name__}"}
    return 200, msgspec.to_builtins(result)


async def _discard_one(request: Request, entry_id: str) -> tuple[int, dict]:
    try:
        await actions.discard(request.app.state.gateway.dlq_index, entry_id, actor=_actor(request))
    except UnknownEntry:
        return 404, {"error": f"no rejected ping {entry_id!r}"}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    return 200, {"id": entry_id, "status": "discarded"}


def _actor(request: Request) -> str:
    client = request.client.host if request.client else "unknown"
    return f"api@{client}"


def check_replays(request: Request) -> Response | None:
    """None when replays may be signed; else the 403 response (validators would treat them as forgeries)."""
    try:
        actions.check_replays_enabled(request.app.state.gateway.settings)
    except actions.ReplaysDisabled as exc:
        return _error(403, str(exc))
    return None


async def replay(request: Request) -> Response:
    if (refused := check_token(request) or check_replays(request)) is not None:
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
    if (refused := check_token(request) or check_replays(request)) is not None:
        return refused
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
