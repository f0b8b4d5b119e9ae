"""The ``/ws`` WebSocket: one reader and one writer task per client, over the hub's view of that client; and
the customers' ``/ws/track/<token>`` (:func:`track_endpoint`), the same plumbing over one courier.

The reader turns client frames (tracker/protocol.py, total) into hub calls, closing the client with 1008
when it sends faster than ``ws_messages_per_s`` (bursts of ``ws_messages_burst``); the writer sends whatever
the hub has for the client, closing it with 1013 when its socket does not drain within
``ws_send_timeout_s``. A connection beyond ``max_clients``, or beyond ``ws_max_per_address`` from one address
(the peer, or behind a trusted proxy the client it names: tokens.client_address), is closed with 1013.

The send timeout is kept by the gateway's tick (:func:`cut_off_stalled`), not by a timer per send: a writer
notes when its send began, and a send still waiting past the timeout at a tick is cancelled and the client
closed (so within ``ws_send_timeout_s`` + one tick). A timer armed and cancelled for each of 5,000 frames a
second cost a tenth of a gateway's CPU (BENCHMARKS.md, fan-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from starlette import status as ws_status
from starlette.websockets import WebSocket, WebSocketDisconnect

from tracker import access, metrics, protocol, tokens
from tracker.hub import Client
from tracker.orders import http as orders_http
from tracker.orders.link import LinkError
from tracker.orders.watch import REFUSED_CODE, Watcher
from tracker.store import StoreError

if TYPE_CHECKING:
    from tracker.gateway import Gateway


async def endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    hub = gateway.hub
    await websocket.accept(subprotocol=access.accepted_subprotocol(websocket.scope))
    settings = gateway.settings
    address = tokens.client_address(
        websocket.client.host if websocket.client else None,
        websocket.headers.getlist("x-forwarded-for"),
        tokens.parse_networks(settings.trusted_proxies),
    )
    if len(hub.clients) >= settings.max_clients:
        await _refuse(websocket, gateway, protocol.TOO_MANY_CLIENTS, metrics.LIMIT_CLIENTS)
        return
    if hub.connections_from(address) >= settings.ws_max_per_address:
        await _refuse(websocket, gateway, protocol.TOO_MANY_FROM_ADDRESS, metrics.LIMIT_PER_ADDRESS)
        return
    client = hub.connect(address)
    gateway.metrics.clients.inc()
    writer = asyncio.create_task(_write(websocket, client, gateway))
    client.writer = writer
    try:
        await _until_either_ends(asyncio.create_task(_read(websocket, client, gateway)), writer)
    finally:
        hub.disconnect(client)
        gateway.metrics.clients.dec()


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close(code, reason)


async def _refuse(websocket: WebSocket, gateway: Gateway, refusal: protocol.Refusal, limit: str) -> None:
    gateway.metrics.ws_limit_closes.labels(limit=limit).inc()
    await _close(websocket, refusal.code, refusal.reason)


async def _read(websocket: WebSocket, client: Client, gateway: Gateway) -> None:
    hub = client.hub
    settings = gateway.settings
    allowance = protocol.TokenBucket(settings.ws_messages_per_s, settings.ws_messages_burst, time.monotonic())
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not allowance.take(time.monotonic()):
            refusal = protocol.too_many_messages(settings.ws_messages_per_s, settings.ws_messages_burst)
            await _refuse(websocket, gateway, refusal, metrics.LIMIT_MESSAGES)
            return
        parsed = protocol.parse_client_frame(message.get("text"), message.get("bytes"))
        if isinstance(parsed, protocol.Refusal):
            await _close(websocket, parsed.code, parsed.reason)
            return
        if isinstance(parsed, protocol.Ping):
            hub.pong(client)
        elif isinstance(parsed, protocol.Viewport):
            hub.set_viewport(client, parsed.bbox)
        elif isinstance(parsed, protocol.Follow):
            hub.set_follow(client, parsed.partner_id)


async def _write(websocket: WebSocket, client: Client, gateway: Gateway) -> None:
    while True:
        await client.wake.wait()
        client.wake.clear()
        while (frame := client.next_frame()) is not None:
            client.sending_since = time.monotonic()
            try:
                await websocket.send_text(frame)
            except asyncio.CancelledError:
                if not client.cut_off:
                    raise
                gateway.metrics.slow_disconnects.inc()  # cut off by cut_off_stalled: its socket did not drain
                await _close(websocket, ws_status.WS_1013_TRY_AGAIN_LATER, "client too slow; reconnect")
                return
            client.sending_since = None
            gateway.metrics.frames_sent.inc()


def cut_off_stalled(clients: Iterable[Client] | Iterable[Watcher], timeout_s: float, now: float) -> int:
    """Cancel the send of every client that has waited more than ``timeout_s`` for its socket to drain (its
    writer then closes it with 1013); returns how many. Called on every tick."""
    stalled = 0
    for client in clients:
        since = client.sending_since
        if since is not None and now - since > timeout_s and not client.cut_off and client.writer is not None:
            client.cut_off = True
            client.writer.cancel()
            stalled += 1
    return stalled


# -- /ws/track/<token>: a customer's socket on one order's courier (tracker/orders/watch.py) -------------------


async def track_endpoint(websocket: WebSocket) -> None:
    """Accept, then check the link (a refusal closes with 1008 and its text, as the contract says), then
    serve the order's frames until delivered (1000), refused while open (1008), or gone. Whatever the client
    sends is read only to be counted (the rate limit of ``/ws``): nothing it says changes what it gets."""
    gateway: Gateway = websocket.app.state.gateway
    hub = gateway.hub
    settings = gateway.settings
    await websocket.accept(subprotocol=access.accepted_subprotocol(websocket.scope))
    if not settings.tracking_secret:
        await _close(websocket, ws_status.WS_1011_INTERNAL_ERROR, "tracking links are not configured")
        return
    address = tokens.client_address(
        websocket.client.host if websocket.client else None,
        websocket.headers.getlist("x-forwarded-for"),
        tokens.parse_networks(settings.trusted_proxies),
    )
    if len(hub.tracking.watchers) >= settings.tracking_max_sockets:
        await _refuse(websocket, gateway, protocol.TOO_MANY_CLIENTS, metrics.LIMIT_CLIENTS)
        return
    if hub.connections_from(address) >= settings.ws_max_per_address:
        await _refuse(websocket, gateway, protocol.TOO_MANY_FROM_ADDRESS, metrics.LIMIT_PER_ADDRESS)
        return
    try:
        checked = await orders_http.check(gateway, websocket.path_params["token"])
        if isinstance(checked, LinkError):
            await _close(websocket, REFUSED_CODE, checked.value)
            return
        link, state = checked
        recent = await orders_http.recent_fixes(gateway, link.partner_id)
    except (StoreError, OSError):
        await _close(websocket, ws_status.WS_1013_TRY_AGAIN_LATER, "the order store is unavailable; reconnect")
        return
    watcher = hub.track(link, state, address, recent, time.time_ns() // 1_000_000)
    writer = asyncio.create_task(_write_tracking(websocket, watcher, gateway))
    watcher.writer = writer
    try:
        await _until_either_ends(asyncio.create_task(_read_ignoring(websocket, gateway)), writer)
    finally:
        hub.untrack(watcher)


async def _until_either_ends(reader: asyncio.Task, writer: asyncio.Task) -> None:
    """Run a socket's reader and writer until one of them ends, then stop the other (both sockets' kinds)."""
    try:
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reader, writer):
            task.cancel()
        for task in (reader, writer):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task


async def _read_ignoring(websocket: WebSocket, gateway: Gateway) -> None:
    settings = gateway.settings
    allowance = protocol.TokenBucket(settings.ws_messages_per_s, settings.ws_messages_burst, time.monotonic())
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not allowance.take(time.monotonic()):
            refusal = protocol.too_many_messages(settings.ws_messages_per_s, settings.ws_messages_burst)
            await _refuse(websocket, gateway, refusal, metrics.LIMIT_MESSAGES)
            return


async def _write_tracking(websocket: WebSocket, watcher: Watcher, gateway: Gateway) -> None:
    while True:
        await watcher.wake.wait()
        watcher.wake.clear()
        while (frame := watcher.next_frame()) is not None:
            watcher.sending_since = time.monotonic()
            try:
                await websocket.send_text(frame)
            except asyncio.CancelledError:
                if not watcher.cut_off:
                    raise
                gateway.metrics.slow_disconnects.inc()
                await _close(websocket, ws_status.WS_1013_TRY_AGAIN_LATER, "client too slow; reconnect")
                return
            watcher.sending_since = None
        if watcher.closing is not None:
            await _close(websocket, *watcher.closing)
            return
