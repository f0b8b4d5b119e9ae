"""HTTP API of the rejected-ping review: ``/api/dlq...`` routes and the operator-token check.

Writes need ``Authorization: Bearer <an operator's token>`` (``TRACKER_OPERATOR_TOKENS``' ``label:token``
pairs, and ``TRACKER_ADMIN_TOKEN``, the operator ``admin``; tracker/tokens.py compares them in constant
time). Without any operator token configured the write endpoints answer 403 (writes disabled); a missing or
wrong token gets 401. A replay or discard is recorded in the entry's ``status_by`` as ``<label>@<address>``:
the operator's label (never the token) and where the request came from, its peer, or the address a trusted
proxy (``TRACKER_TRUSTED_PROXIES``) puts in ``X-Forwarded-For``; a client's own ``X-Forwarded-For`` is not
believed. ``status_by`` is listed only to requests bearing an operator token.

Replays also need ``TRACKER_REPLAY_SECRET`` (403 without it), and an edited payload the validator's parser
rejects gets 422 with its reject code, before anything is produced or changes status. An edited payload is
judged as the operator wrote it (the bytes of the body's ``payload`` object, or its text), so ``1e400`` is an
invalid coordinate, not an unreadable body. Client mistakes get 400/413/422 with a fixed one-line ``error``.
"""

from __future__ import annotations

import logging
import math
from typing import NamedTuple

import msgspec
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker.dlq import actions
from tracker.dlq.entry import PayloadRejected, ReplayRefused, Row, payload_of, row_json
from tracker.dlq.index import BAD_CURSOR, BadCursor, Filters, StatusConflict, UnknownEntry
from tracker.kafka import BrokerError
from tracker.models import Verdict
from tracker.rules import decode_json, parse_timestamp
from tracker.store import StoreError
from tracker.tokens import Access, Network, bearer, client_address, parse_networks

log = logging.getLogger(__name__)
MAX_LIMIT = 500
MAX_BULK = 500
MAX_BODY_BYTES = 64 * 1024
INT_PARAM_DIGITS = 15  # Redis reads scores as doubles: keep them exact

# Every error a client can cause, in fixed words (never an exception's text, never the client's input).
NOT_FOUND = "no such rejected ping"
WRITES_DISABLED = (
    "writes are disabled: no operator token (TRACKER_OPERATOR_TOKENS or TRACKER_ADMIN_TOKEN) is configured "
    "on the server"
)
UNAUTHORIZED = "missing or wrong bearer token"
BODY_TOO_LARGE = f"request body over {MAX_BODY_BYTES} bytes"
BODY_NOT_JSON = "request body is not valid JSON (UTF-8, no NaN or Infinity, no lone surrogates)"
BODY_NOT_OBJECT = "request body must be a JSON object"
BODY_TOO_DEEP = "request body is nested too deeply"
PAYLOAD_TYPE = "payload must be a JSON object (or its text)"
BAD_IDS = f"ids must be a list of 1-{MAX_BULK} entry ids"
REPLAY_FAILED = "replay failed: Kafka or Redis did not answer; try again"
PARAM_FORMS = {
    "since": f"epoch milliseconds (at most {INT_PARAM_DIGITS} digits)",
    "until": f"epoch milliseconds (at most {INT_PARAM_DIGITS} digits)",
    "limit": f"a whole number (at most {INT_PARAM_DIGITS} digits)",
}


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


class BadParam(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"{name} must be {PARAM_FORMS[name]}")


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    digits = raw.removeprefix("-")
    # Checked before int(), which reads "1_000", " 7" and Arabic-Indic digits, and refuses 5,000 digits.
    if not (digits.isascii() and digits.isdigit() and len(digits) <= INT_PARAM_DIGITS):
        raise BadParam(name)
    return int(raw)


class Caller(NamedTuple):
    access: Access
    trusted_proxies: tuple[Network, ...]


def _caller_rules(request: Request) -> Caller:
    """The configured tokens and proxies, read from the settings once per app."""
    state = request.app.state
    rules: Caller | None = getattr(state, "dlq_caller_rules", None)
    if rules is None:
        settings = state.gateway.settings
        rules = Caller(Access.from_settings(settings), parse_networks(settings.trusted_proxies))
        state.dlq_caller_rules = rules
    return rules


def operator(request: Request) -> str | None:
    """The label of the operator whose token the request bears, or None."""
    return _caller_rules(request).access.operator(bearer(request.headers.get("authorization")))


def _shown(row: Row, to_operator: bool) -> dict:
    """A row's JSON for this reader: who changed its status only to an operator."""
    shown = row_json(row)
    if not to_operator:
        del shown["status_by"]
    return shown


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
    except BadParam as exc:
        return _error(400, str(exc))
    except BadCursor:
        return _error(400, BAD_CURSOR)
    to_operator = operator(request) is not None
    return JSONResponse(
        {
            "items": [_shown(row, to_operator) for row in page.rows],
            "next_cursor": page.next_cursor,
            "total": page.total,
        }
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
        return _error(404, NOT_FOUND)
    entry = row.entry
    payload = payload_of(entry)
    doc = payload_json(entry, gateway.settings.max_payload_bytes)
    ts = parse_timestamp(doc.get("ts")) if isinstance(doc, dict) else None
    body = _shown(row, operator(request) is not None) | {
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


def authorize(request: Request) -> str | Response:
    """Who is writing, as ``status_by`` records it (``<label>@<address>``); else the 401/403 response."""
    rules = _caller_rules(request)
    if not rules.access.writing_is_enabled:
        return _error(403, WRITES_DISABLED)
    label = operator(request)
    if label is None:
        return _error(401, UNAUTHORIZED)
    peer = request.client.host if request.client else None
    return f"{label}@{client_address(peer, request.headers.getlist('x-forwarded-for'), rules.trusted_proxies)}"


class _TooDeep(Exception):
    pass


_decode_body = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_text = msgspec.json.Decoder(str).decode
_decode_ids = msgspec.json.Decoder(list[str]).decode


async def _body(request: Request) -> dict[str, msgspec.Raw] | Response:
    """The body's members, each as the client wrote it (msgspec.Raw); {} for none. Raises _TooDeep."""
    raw = bytearray()
    async for chunk in request.stream():  # not request.body(): stop reading at the limit
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, BODY_TOO_LARGE)
    if not raw.strip():
        return {}
    try:
        return _decode_body(raw)
    except msgspec.ValidationError:  # valid JSON, but not an object
        return _error(400, BODY_NOT_OBJECT)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return _error(400, BODY_NOT_JSON)
    except RecursionError:
        raise _TooDeep from None


def _edited(member: msgspec.Raw | None) -> bytes | Response | None:
    """The edited payload of a replay's body, exactly as the operator wrote it: the bytes of a JSON object,
    or the UTF-8 of a JSON string (its text); None when there is none (replay as it was)."""
    raw = bytes(member) if member is not None else b"null"
    if raw.startswith(b"{"):
        return raw
    if raw.startswith(b'"'):
        try:
            return _decode_text(raw).encode()  # no lone surrogate gets here: msgspec refuses them
        except (msgspec.DecodeError, UnicodeDecodeError):  # the body's decoder skipped it unread
            return _error(400, BODY_NOT_JSON)
    return None if raw == b"null" else _error(422, PAYLOAD_TYPE)


def _payload_rejected(exc: PayloadRejected) -> tuple[int, dict]:
    return 422, {"error": str(exc), "reason": exc.reason, "detail": exc.detail}


# An edited payload too deep for the body's decoder is one the validator's parser rejects for its depth.
_PAYLOAD_TOO_DEEP = PayloadRejected("malformed_payload", "JSON nested too deeply")


async def _replay_one(request: Request, entry_id: str, actor: str, edited: bytes | None) -> tuple[int, dict]:
    gateway = request.app.state.gateway
    try:
        result = await actions.replay(
            gateway.settings, gateway.dlq_index, gateway.producer, entry_id, actor=actor, edited=edited
        )
    except actions.ReplaysDisabled:
        return 403, {"error": actions.REPLAYS_DISABLED}
    except UnknownEntry:
        return 404, {"error": NOT_FOUND}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    except PayloadRejected as exc:
        return _payload_rejected(exc)
    except ReplayRefused as exc:  # its messages are this package's (entry.py)
        return 422, {"error": str(exc)}
    except (BrokerError, StoreError) as exc:
        log.warning("replay of %s failed: %r", entry_id, exc)
        return 503, {"error": REPLAY_FAILED}
    return 200, msgspec.to_builtins(result)


async def _discard_one(request: Request, entry_id: str, actor: str) -> tuple[int, dict]:
    try:
        await actions.discard(request.app.state.gateway.dlq_index, entry_id, actor=actor)
    except UnknownEntry:
        return 404, {"error": NOT_FOUND}
    except StatusConflict as exc:
        return 409, {"error": str(exc)}
    return 200, {"id": entry_id, "status": "discarded"}


def check_replays(request: Request) -> Response | None:
    """None when replays may be signed; else the 403 response (validators would treat them as forgeries)."""
    try:
        actions.check_replays_enabled(request.app.state.gateway.settings)
    except actions.ReplaysDisabled:
        return _error(403, actions.REPLAYS_DISABLED)
    return None


async def replay(request: Request) -> Response:
    actor = authorize(request)
    if isinstance(actor, Response):
        return actor
    if (refused := check_replays(request)) is not None:
        return refused
    try:
        body = await _body(request)
    except _TooDeep:
        status, payload = _payload_rejected(_PAYLOAD_TOO_DEEP)
        return JSONResponse(payload, status_code=status)
    if isinstance(body, Response):
        return body
    edited = _edited(body.get("payload"))
    if isinstance(edited, Response):
        return edited
    status, payload = await _replay_one(request, request.path_params["entry_id"], actor, edited)
    return JSONResponse(payload, status_code=status)


async def discard(request: Request) -> Response:
    actor = authorize(request)
    if isinstance(actor, Response):
        return actor
    status, payload = await _discard_one(request, request.path_params["entry_id"], actor)
    return JSONResponse(payload, status_code=status)


async def _bulk(request: Request, action, *, replays: bool = False) -> Response:
    actor = authorize(request)
    if isinstance(actor, Response):
        return actor
    if replays and (refused := check_replays(request)) is not None:
        return refused
    try:
        body = await _body(request)
    except _TooDeep:
        return _error(400, BODY_TOO_DEEP)
    if isinstance(body, Response):
        return body
    try:
        ids = _decode_ids(bytes(body["ids"]))
    except (KeyError, msgspec.DecodeError, UnicodeDecodeError):
        return _error(400, BAD_IDS)
    if not 0 < len(ids) <= MAX_BULK:
        return _error(400, BAD_IDS)
    results = []
    for entry_id in dict.fromkeys(ids):
        status, payload = await action(request, entry_id, actor)
        results.append({"id": entry_id, "ok": status == 200, "error": payload.get("error")})
    return JSONResponse({"results": results})


async def bulk_replay(request: Request) -> Response:
    return await _bulk(request, lambda req, entry_id, actor: _replay_one(req, entry_id, actor, None), replays=True)


async def bulk_discard(request: Request) -> Response:
    return await _bulk(request, _discard_one)


class EntryIdConvertor(Convertor[str]):
    """An entry id in a path: anything but empty, ``/`` included (Starlette's ``str`` stops at ``/``)."""

    regex = ".+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("dlq_entry_id", EntryIdConvertor())

# The fixed paths first; a POST to .../replay matches the detail route's path too, but not its method.
routes = [
    Route("/api/dlq", list_entries),
    Route("/api/dlq/stats", stats),
    Route("/api/dlq/replay", bulk_replay, methods=["POST"]),
    Route("/api/dlq/discard", bulk_discard, methods=["POST"]),
    Route("/api/dlq/{entry_id:dlq_entry_id}/replay", replay, methods=["POST"]),
    Route("/api/dlq/{entry_id:dlq_entry_id}/discard", discard, methods=["POST"]),
    Route("/api/dlq/{entry_id:dlq_entry_id}", entry_detail),
]
