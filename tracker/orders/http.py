"""The tracking links' routes: the operators' ``/api/orders`` writes and the customers' ``/track/<token>``
page, ``/api/track/<token>`` and (in ws.py) the ``/ws/track/<token>`` socket.

The customers' routes need no viewer token (tracker/access.py exempts them: the signed token is the
credential); Host checks and the security headers still apply. A link is checked in this order: its
signature and form (403, "invalid tracking link"), its expiry (410, "tracking link expired"), then Redis:
revoked, or no such order (410, "tracking link revoked"). Nothing of a refused link's order or courier is
ever sent. Once an order is delivered, no route shows its courier again.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tracker import basemap
from tracker.dlq.http import authorize
from tracker.orders import service
from tracker.orders.link import Link, LinkError, is_id, verify
from tracker.orders.state import RECENT_FIXES, Fix, OrderState, recent_speed
from tracker.orders.watch import courier_object, order_json
from tracker.store import OrderStore, StoreError

if TYPE_CHECKING:
    from tracker.gateway import Gateway

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096
# Every error a client can cause, in fixed words.
NOT_CONFIGURED = "tracking links are not configured on this server (TRACKER_TRACKING_SECRET)"
BODY_NOT_JSON = "request body is not valid JSON"
BODY_INVALID = (
    'body must be {"order_id", "partner_id", "dropoff": {"lat", "lon"}, "pickup": {"lat", "lon"} (optional), '
    '"ttl_s" (optional)}: ids of 1-64 printable characters, latitudes -90..90, longitudes -180..180'
)
BODY_TOO_LARGE = f"request body over {MAX_BODY_BYTES} bytes"
ORDER_EXISTS = "an order with this order_id exists"
NO_ORDER = "no such order"
STORE_UNAVAILABLE = "the order store is unavailable; try again"
BROKER_UNAVAILABLE = "the event could not be produced; try again"
PAGE_NOT_BUILT = "The tracking page is not built: run `make frontend`."

_decode_body = msgspec.json.Decoder(service.CreateBody).decode


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def ttl_problem(ttl_s: int, max_s: int) -> str | None:
    return None if 60 <= ttl_s <= max_s else f"ttl_s must be 60-{max_s}"


async def check(gateway: Gateway, token: str) -> tuple[Link, OrderState] | LinkError:
    """The link and its order's stored state, or why it is refused. Raises StoreError (Redis is down)."""
    secret = gateway.settings.tracking_secret
    assert secret  # the routes answer 503 first
    link = verify(token, secret, time.time())
    if isinstance(link, LinkError):
        return link
    [(raw, revoked)] = await OrderStore(gateway.store).status([link.order_id])
    held = service.read_state(raw)
    if revoked or held is None:
        return LinkError.REVOKED
    return link, held[0]


async def recent_fixes(gateway: Gateway, partner_id: str) -> list[Fix]:
    """The courier's last fixes from its trail (for the ETA), when this gateway follows it not yet."""
    if gateway.hub.tracking.following(partner_id):
        return []
    points = await gateway.store.trail(partner_id, RECENT_FIXES)
    return [(int(p[0]), float(p[1]), float(p[2])) for p in points if len(p) >= 3]


# -- the operators' writes -----------------------------------------------------------------------------


async def create_order(request: Request) -> Response:
    who = authorize(request)
    if isinstance(who, Response):
        return who
    gateway: Gateway = request.app.state.gateway
    settings = gateway.settings
    if not settings.tracking_secret:
        return _error(503, NOT_CONFIGURED)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            return _error(413, BODY_TOO_LARGE)
    try:
        body = _decode_body(raw)
    except msgspec.ValidationError:
        return _error(422, BODY_INVALID)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return _error(400, BODY_NOT_JSON)
    if service.check_ids(body) is not None:
        return _error(422, BODY_INVALID)
    ttl_s = body.ttl_s if body.ttl_s is not None else settings.tracking_ttl_s
    if problem := ttl_problem(ttl_s, settings.tracking_ttl_max_s):
        return _error(422, problem)
    try:
        created = await service.create(OrderStore(gateway.store), settings.tracking_secret, body, ttl_s)
    except service.OrderExists:
        return _error(409, ORDER_EXISTS)
    except (StoreError, OSError) as exc:
        log.warning("creating order %r failed: %r", body.order_id, exc)
        return _error(503, STORE_UNAVAILABLE)
    log.info("order %r of courier %r created by %s", body.order_id, body.partner_id, who)
    return JSONResponse(msgspec.to_builtins(created), status_code=201)


async def mark_delivered(request: Request) -> Response:
    who = authorize(request)
    if isinstance(who, Response):
        return who
    gateway: Gateway = request.app.state.gateway
    order_id = request.path_params["order_id"]
    if not is_id(order_id):
        return _error(404, NO_ORDER)
    courier = gateway.hub.couriers.get
    assert gateway.producer is not None
    produce = service.producing(gateway.producer, gateway.settings.events_topic)
    try:
        record = await OrderStore(gateway.store).records([order_id])
        partner = service.read_record(record[0]) if record[0] else None
        held = courier(partner.partner_id) if partner else None
        where = (held.position.lat, held.position.lon) if held else None
        was, event = await service.deliver(OrderStore(gateway.store), produce, order_id, where)
    except service.NoOrder:
        return _error(404, NO_ORDER)
    except (StoreError, OSError) as exc:
        log.warning("marking order %r delivered failed: %r", order_id, exc)
        return _error(503, STORE_UNAVAILABLE)
    except Exception as exc:  # noqa: BLE001 - the broker (aiokafka's errors are many): nothing was marked
        log.warning("producing the delivery of order %r failed: %r", order_id, exc)
        return _error(503, BROKER_UNAVAILABLE)
    if event is not None:
        log.info("order %r marked delivered by %s", order_id, who)
    return JSONResponse({"order_id": order_id, "state": OrderState.DELIVERED.value, "was": was.value})


async def revoke_order(request: Request) -> Response:
    who = authorize(request)
    if isinstance(who, Response):
        return who
    gateway: Gateway = request.app.state.gateway
    order_id = request.path_params["order_id"]
    if not is_id(order_id):
        return _error(404, NO_ORDER)
    try:
        revoked = await OrderStore(gateway.store).revoke(order_id)
    except (StoreError, OSError) as exc:
        log.warning("revoking order %r failed: %r", order_id, exc)
        return _error(503, STORE_UNAVAILABLE)
    if not revoked:
        return _error(404, NO_ORDER)
    log.info("order %r revoked by %s", order_id, who)
    return JSONResponse({"order_id": order_id, "revoked": True})


# -- the customers' routes -----------------------------------------------------------------------------


def refusal_page(refusal: LinkError) -> HTMLResponse:
    """A tiny self-contained page saying why (no script, no style sheet, no courier data)."""
    text = html.escape(refusal.value.capitalize())
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text}</title></head><body><h1>{text}</h1>"
        "<p>Ask the sender for a new link.</p></body></html>"
    )
    return HTMLResponse(body, status_code=refusal.status)


def routes(static_dir: Path) -> list[Route]:
    """The tracking routes; the page is ``static_dir``/track.html (built by ``make frontend``)."""

    async def track_page(request: Request) -> Response:
        gateway: Gateway = request.app.state.gateway
        if not gateway.settings.tracking_secret:
            return PlainTextResponse(NOT_CONFIGURED, status_code=503)
        try:
            checked = await check(gateway, request.path_params["token"])
        except (StoreError, OSError) as exc:
            log.warning("checking a tracking link failed: %r", exc)
            return PlainTextResponse(STORE_UNAVAILABLE, status_code=503)
        if isinstance(checked, LinkError):
            return refusal_page(checked)
        page = static_dir / "track.html"
        if not page.is_file():
            return PlainTextResponse(PAGE_NOT_BUILT, status_code=503)
        return FileResponse(page)

    return [
        Route("/api/orders", create_order, methods=["POST"]),
        Route("/api/orders/{order_id:path}/delivered", mark_delivered, methods=["POST"]),
        Route("/api/orders/{order_id:path}/revoke", revoke_order, methods=["POST"]),
        Route("/api/track/{token}", api_track),
        Route("/track/{token}", track_page),
    ]


async def api_track(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    settings = gateway.settings
    if not settings.tracking_secret:
        return _error(503, NOT_CONFIGURED)
    try:
        checked = await check(gateway, request.path_params["token"])
        if isinstance(checked, LinkError):
            return _error(checked.status, checked.value)
        link, state = checked
        courier = None
        held = gateway.hub.couriers.get(link.partner_id)
        if held is not None and state is not OrderState.DELIVERED:
            followed = gateway.hub.tracking.by_partner.get(link.partner_id)
            if followed is not None:
                speed = followed.speed()
            else:
                speed = recent_speed(sorted(await recent_fixes(gateway, link.partner_id)))
            now = time.time_ns() // 1_000_000
            obj = courier_object(link, state, held.position, speed, settings.tracking_coarsen_m, now)
            courier = msgspec.to_builtins(obj)
    except (StoreError, OSError) as exc:
        log.warning("checking a tracking link failed: %r", exc)
        return _error(503, STORE_UNAVAILABLE)
    return JSONResponse(
        {
            "order": order_json(link, state),
            "courier": courier,
            # absolute: the page is at /track/<token>
            "basemap_url": basemap.BASEMAP_PATH if settings.basemap else None,
            "tick_ms": settings.tick_ms,
        }
    )


REFRESH_S = 1.0  # how often the watched orders' changes are read from Redis
FULL_REFRESH_S = 30.0  # and how often every watched order's state is read, whatever the changes say
REFRESH_CHUNK = 5000  # orders per read


async def refresh_states(gateway: Gateway) -> None:
    """The gateway's task ``tracking-states``: every :data:`REFRESH_S`, the orders whose state moved or which
    were revoked since the last read (the orders' changes stream, orders.lua), and of those the ones a socket
    here watches, are read from Redis and handed to their sockets (tracker/orders/watch.py, Tracking.refresh);
    every :data:`FULL_REFRESH_S`, or when the changes since the last read are more than the stream keeps, every
    watched order is read. So an order frame follows the events worker's decision, and a revoked link is
    closed, within about a second, and a gateway watching 10,000 orders reads a handful of them a second, not
    10,000 (which cost it a quarter of a core: BENCHMARKS.md, tracking). Expiry needs no Redis: the links
    carry it, and it is checked every time."""
    orders = OrderStore(gateway.store)
    last = await orders.last_change()
    full_due = time.monotonic() + FULL_REFRESH_S
    while True:
        await asyncio.sleep(REFRESH_S)
        tracking = gateway.hub.tracking
        try:
            last, changed = await orders.changes(last)
            if changed is None or time.monotonic() >= full_due:
                full_due = time.monotonic() + FULL_REFRESH_S
                wanted = list(tracking.by_order)
            else:
                wanted = [order_id for order_id in dict.fromkeys(changed) if order_id in tracking.by_order]
            for start in range(0, len(wanted), REFRESH_CHUNK):
                chunk = wanted[start : start + REFRESH_CHUNK]
                statuses = await orders.status(chunk)
                now_s = time.time()
                for order_id, (raw, revoked) in zip(chunk, statuses, strict=True):
                    tracking.refresh(order_id, raw, revoked, now_s)
        except (StoreError, OSError) as exc:
            log.warning("reading the watched orders' states failed (next try in %g s): %r", REFRESH_S, exc)
        tracking.expire(time.time())
