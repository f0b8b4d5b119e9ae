"""Who may reach the gateway, and the headers its answers carry: one ASGI middleware in front of every route.

Courier positions are personal data, so reading them is guarded like writing. Every HTTP request and every
WebSocket handshake goes through three checks, in this order (each a pure function below; the middleware at
the end only applies them):

1. **Host** (DNS rebinding): the ``Host`` header must name this gateway, one of ``TRACKER_ALLOWED_HOSTS``
   (loopback names by default; the port is ignored; ``*`` for any). Otherwise: 400 with a fixed line. The
   probes (``/healthz``, ``/readyz``, ``/metrics``) are exempt: orchestrators call them by address, and they
   hold no courier data.
2. **Origin** (WebSocket only; HTTP reads are guarded by the browser's same-origin policy, as the gateway
   sends no CORS headers): a browser's handshake must come from a page of this host (the ``Origin``'s host
   and port are the ``Host`` header's) or of ``TRACKER_ALLOWED_ORIGINS``. Otherwise the handshake is denied
   with 403. No ``Origin`` at all is a program, not a page (browsers always send one): allowed.
3. **Viewer token**: with ``TRACKER_VIEWER_TOKEN`` set, ``/ws`` and every ``/api/...`` route except
   ``/api/config`` and ``/api/service-area`` need it or an operator token (:meth:`tokens.Access.may_read`):
   ``Authorization: Bearer <token>``, or, from a browser (which cannot set headers on a WebSocket), the
   subprotocol ``bearer.<base64url(token)>`` offered next to ``tracker.v1``. Missing or wrong: 401 over
   HTTP; a WebSocket is accepted and closed at once with 1008 and :data:`WS_TOKEN_REFUSED`, so a page can
   tell a refused token from a lost connection. The page shells, their assets and the probes stay open:
   they hold no courier data.

Every HTTP answer carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``,
``X-Frame-Options: DENY`` and a Content-Security-Policy (:func:`content_security_policy`: scripts, styles
and workers from the gateway only, map tiles from ``TILE_URL``'s origin, sockets to this host, no framing);
positions and rejected pings also ``Cache-Control: no-store``. docs/security.md has the threat model.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import msgspec
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracker.tokens import Access, bearer

log = logging.getLogger(__name__)

WS_SUBPROTOCOL = "tracker.v1"  # what the pages speak on /ws; the server accepts it when offered
BEARER_SUBPROTOCOL = "bearer."  # + base64url(token), no padding: a token offered where headers cannot go
WS_TOKEN_REFUSED = "viewer token required"  # the reason of the 1008 close for a missing or wrong token
MAX_TOKEN_CHARS = 4096  # a bearer subprotocol longer than this is not a token

OPEN_API = frozenset({"/api/config", "/api/service-area"})  # what the page shell needs before any token
# A customer's tracking link (tracker/orders/): the signed token in the path is the credential, so these need
# no viewer token; the Host check, the socket's Origin check and the headers apply as everywhere.
TRACKING_PREFIXES = ("/track/", "/api/track/", "/ws/track/")
PROBES = frozenset({"/healthz", "/readyz", "/metrics"})  # answered whatever the Host: no courier data
NO_STORE_PREFIXES = ("/api/couriers", "/api/dlq", "/api/events", "/api/history", "/api/orders", *TRACKING_PREFIXES)
ANY_HOST = "*"
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

HOST_REFUSED = "unknown Host: this gateway answers only the names in TRACKER_ALLOWED_HOSTS\n"
ORIGIN_REFUSED = "cross-origin WebSocket refused: the page's origin is not this host or in TRACKER_ALLOWED_ORIGINS\n"
TOKEN_REQUIRED = "a viewer or operator token is required: send Authorization: Bearer <token>"

_HOST_RE = re.compile(r"(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")

Origin = tuple[str, str, int]  # scheme, host name (lower case, no brackets), port


# -- pure decisions ------------------------------------------------------------------------------------


def split_host(value: str | None) -> tuple[str, int | None] | None:
    """A ``Host`` header as (name in lower case, without brackets or a trailing dot; port or None), or None
    when it is not a host name or address with an optional port."""
    if value is None or not _HOST_RE.fullmatch(value):
        return None
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest else None
    else:
        name, sep, port_text = value.rpartition(":")
        name, port = (name, port_text) if sep else (port_text, None)
    number = int(port) if port else None
    if number is not None and number > 65535:
        return None
    return name.lower().rstrip("."), number


def parse_hosts(raw: str | None) -> frozenset[str] | None:
    """``TRACKER_ALLOWED_HOSTS`` as a set of lower-case names (brackets and a port dropped); None for ``*``."""
    names = set()
    for part in (p.strip() for p in (raw or "").split(",")):
        if part == ANY_HOST:
            return None
        if part:
            if part.startswith("[") or part.count(":") <= 1:
                split = split_host(part)
                names.add(split[0] if split else part.lower())
            else:  # a bare IPv6 address: "::1"
                names.add(part.lower())
    return frozenset(names)


def host_allowed(host_header: str | None, allowed: frozenset[str] | None) -> bool:
    """Whether a request's ``Host`` names this gateway (``allowed`` None: any well-formed one)."""
    split = split_host(host_header)
    if split is None:
        return False
    return allowed is None or split[0] in allowed


def parse_origin(value: str) -> Origin | None:
    """An origin (``https://ops.example:8443``) as (scheme, host, port), or None when it is not one."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname.lower().rstrip("."), port if port is not None else DEFAULT_PORTS[scheme]


def parse_origins(raw: str | None) -> tuple[frozenset[Origin], list[str]]:
    """``TRACKER_ALLOWED_ORIGINS`` as origins, and the entries that are not one (to warn about)."""
    origins, bad = set(), []
    for part in (p.strip() for p in (raw or "").split(",")):
        if part:
            origin = parse_origin(part)
            if origin is None:
                bad.append(part)
            else:
                origins.add(origin)
    return frozenset(origins), bad


def origin_allowed(origin: str | None, host_header: str | None, allowed: frozenset[Origin]) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` may proceed: none (not a browser), the page's own
    host (the Origin's host and port are the Host header's), or one of ``allowed``."""
    if origin is None:
        return True
    parsed = parse_origin(origin)  # "null" (a sandboxed frame, a file) is no origin we know
    if parsed is None:
        return False
    if parsed in allowed:
        return True
    host = split_host(host_header)
    if host is None:
        return False
    scheme, name, port = parsed
    return name == host[0] and port == (host[1] if host[1] is not None else DEFAULT_PORTS[scheme])


def needs_read_access(kind: str, path: str) -> bool:
    """Whether a request reads courier data: ``/ws`` and the API, except what the page shell needs and the
    tracking links (their token is checked by tracker/orders/)."""
    if path.startswith(TRACKING_PREFIXES):
        return False
    return kind == "websocket" or (path.startswith("/api/") and path not in OPEN_API)


def subprotocol_token(offered: Iterable[str]) -> str | None:
    """The token in an offered ``bearer.<base64url>`` subprotocol, or None (none offered, or not base64url
    of UTF-8 text)."""
    for protocol in offered:
        if protocol.startswith(BEARER_SUBPROTOCOL):
            encoded = protocol[len(BEARER_SUBPROTOCOL) :]
            if not encoded or len(encoded) > MAX_TOKEN_CHARS:
                return None
            try:
                raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
                return raw.decode("utf-8")
            except (binascii.Error, ValueError):  # not base64url; not UTF-8
                return None
    return None


def encode_subprotocol_token(token: str) -> str:
    """The subprotocol that carries ``token`` (what the pages offer; tests and programs may too)."""
    return BEARER_SUBPROTOCOL + base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")


def accepted_subprotocol(scope: Scope) -> str | None:
    """The subprotocol to accept a WebSocket with: ``tracker.v1`` when the client offered it (a browser fails
    a handshake whose offer gets no answer), else none. Never a ``bearer.`` one: the token is not echoed."""
    return WS_SUBPROTOCOL if WS_SUBPROTOCOL in (scope.get("subprotocols") or ()) else None


def tile_source(tile_url: str | None) -> str | None:
    """The CSP source for ``TILE_URL``: its scheme and host (a ``{s}`` subdomain becomes ``*.``), or None."""
    if not tile_url:
        return None
    try:
        parts = urlsplit(tile_url)
    except ValueError:
        return None
    netloc = re.sub(r"^\{[a-z]+\}\.", "*.", parts.netloc)
    if parts.scheme not in ("http", "https") or not netloc or not re.fullmatch(r"[A-Za-z0-9.*:\[\]-]+", netloc):
        return None
    return f"{parts.scheme}://{netloc}"


def content_security_policy(host_header: str | None, tiles: str | None) -> str:
    """The pages' policy: everything from the gateway itself, tiles from ``tiles``, sockets to this host.

    MapLibre runs its worker from the gateway (``worker-src 'self'``; ``blob:`` for the builds that make
    one from a blob) and draws tiles it fetched as blobs (``img-src blob:``); the favicons are data URLs."""
    sockets = ""
    if host_header is not None and split_host(host_header) is not None:
        sockets = f" ws://{host_header} wss://{host_header}"
    extra = f" {tiles}" if tiles else ""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{extra}",
            f"connect-src 'self'{sockets}{extra}",
            "worker-src 'self' blob:",
            "child-src 'self' blob:",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class Refusal(msgspec.Struct, frozen=True):
    """Why a request is refused: the HTTP answer, or for a WebSocket the handshake's status (``close`` None)
    or the close code and reason after accepting it."""

    status: int
    body: bytes
    media_type: str
    close: tuple[int, str] | None = None


REFUSE_HOST = Refusal(400, HOST_REFUSED.encode(), "text/plain; charset=utf-8")
REFUSE_ORIGIN = Refusal(403, ORIGIN_REFUSED.encode(), "text/plain; charset=utf-8")
REFUSE_TOKEN = Refusal(
    401, msgspec.json.encode({"error": TOKEN_REQUIRED}), "application/json", close=(1008, WS_TOKEN_REFUSED)
)


class Policy(msgspec.Struct, frozen=True):
    """What the checks compare against, built once per gateway from its settings."""

    access: Access
    hosts: frozenset[str] | None  # None: any
    origins: frozenset[Origin]
    tiles: str | None

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        origins, bad = parse_origins(settings.allowed_origins)
        for entry in bad:
            log.warning("TRACKER_ALLOWED_ORIGINS: %r is not an origin (scheme://host[:port]); ignored", entry)
        tiles = tile_source(settings.tile_url)
        if settings.tile_url and tiles is None:
            log.warning("TILE_URL %r has no http(s) origin the pages may load tiles from", settings.tile_url)
        return cls(Access.from_settings(settings), parse_hosts(settings.allowed_hosts), origins, tiles)


def decide(policy: Policy, kind: str, path: str, headers: dict[str, list[str]], offered: list[str]) -> Refusal | None:
    """None when the request may go on; else how it is refused. ``headers``: lower-case names -> values;
    ``offered``: the WebSocket subprotocols the client offered."""
    hosts = headers.get("host", [])
    probe = kind == "http" and path in PROBES
    if not probe and (len(hosts) != 1 or not host_allowed(hosts[0], policy.hosts)):
        return REFUSE_HOST
    host = hosts[0] if len(hosts) == 1 else None
    if kind == "websocket":
        origins = headers.get("origin", [])
        if len(origins) > 1 or not origin_allowed(origins[0] if origins else None, host, policy.origins):
            return REFUSE_ORIGIN
    if needs_read_access(kind, path) and not policy.access.reading_is_open:
        authorization = headers.get("authorization", [])
        token = bearer(authorization[0]) if len(authorization) == 1 else None
        if token is None and kind == "websocket":
            token = subprotocol_token(offered)
        if not policy.access.may_read(token):
            return REFUSE_TOKEN
    return None


def response_headers(path: str, host_header: str | None, tiles: str | None) -> list[tuple[str, str]]:
    """The headers every HTTP answer gets (see the module doc)."""
    headers = [
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy", content_security_policy(host_header, tiles)),
    ]
    if path.startswith(NO_STORE_PREFIXES):
        headers.append(("Cache-Control", "no-store"))
    return headers


# -- the ASGI edge -------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers") or ():
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


class AccessMiddleware:
    """Applies :func:`decide` to each HTTP request and WebSocket handshake and adds the response headers."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        headers = _headers(scope)
        refusal = decide(self.policy, kind, path, headers, list(scope.get("subprotocols") or ()))
        if kind == "websocket":
            if refusal is None:
                await self.app(scope, receive, send)
            else:
                await _refuse_websocket(scope, receive, send, refusal)
            return

        hosts = headers.get("host", [])
        extra = response_headers(path, hosts[0] if len(hosts) == 1 else None, self.policy.tiles)

        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                response = MutableHeaders(scope=message)
                for name, value in extra:
                    response[name] = value
            await send(message)

        if refusal is None:
            try:
                await self.app(scope, receive, send_with_headers)
            except Exception:
                # A bug behind the edge: answer a fixed one-line 500 with the same headers as every answer
                # (Starlette's own error page, sent from outside this middleware, would go without them), then
                # let the error reach the server's log.
                if not started:
                    await _answer(send_with_headers, send, SERVER_ERROR)
                raise
            return
        await _answer(send_with_headers, send, refusal)


SERVER_ERROR = Refusal(500, b"internal error (see the gateway log)\n", "text/plain; charset=utf-8")


async def _answer(send_with_headers: Send, send: Send, refusal: Refusal) -> None:
    start_headers = [(b"content-type", refusal.media_type.encode()), (b"content-length", b"%d" % len(refusal.body))]
    if refusal is REFUSE_TOKEN:
        start_headers.append((b"www-authenticate", b"Bearer"))
    await send_with_headers({"type": "http.response.start", "status": refusal.status, "headers": start_headers})
    await send({"type": "http.response.body", "body": refusal.body})


async def _refuse_websocket(scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
    if refusal.close is not None:
        # Accepted, then closed with a reason a page can read (a refused handshake tells a page nothing).
        await receive()  # websocket.connect
        await send({"type": "websocket.accept", "subprotocol": accepted_subprotocol(scope)})
        code, reason = refusal.close
        await send({"type": "websocket.close", "code": code, "reason": reason})
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", refusal.media_type.encode()), (b"content-length", b"%d" % len(refusal.body))]
        await send({"type": "websocket.http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": refusal.body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": ""})  # the server answers 403
