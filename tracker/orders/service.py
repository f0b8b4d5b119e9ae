"""What creating, revoking and delivering an order does, shared by the HTTP API (http.py) and the CLI (cli.py);
the stored forms of an order (its record and its state) and the JSON objects the contract shows.

Stored (tracker/store.py, OrderStore; keys in tracker/constants.py): the record, JSON
``{"order_id", "partner_id", "pickup": [lat, lon] or null, "dropoff": [lat, lon], "created_ms", "expires_ms"}``,
and the state, ``"<state> <event time ms of the change>"``, moved only forward, by the events worker
(tracker/events/orders.py) or an operator's "delivered" mark (:func:`deliver`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec

from tracker.events.decide import Event
from tracker.events.orders import StoredRecord, order_event
from tracker.kafka import Producer
from tracker.models import OutRecord
from tracker.orders.link import Id, Lat, Link, Lon, is_id, sign
from tracker.orders.state import STATES, OrderState, Point, initial_state, read_stored
from tracker.store import OrderStore

log = logging.getLogger(__name__)

TRACK_PATH = "/track/"  # + token: the customer's page


Record = StoredRecord  # one definition of the stored record: tracker/events/orders.py

_decode_record = msgspec.json.Decoder(StoredRecord).decode
_encode = msgspec.json.Encoder().encode


def read_record(raw: bytes) -> Record | None:
    try:
        return _decode_record(raw)
    except (msgspec.DecodeError, ValueError):
        return None


read_state = read_stored  # (tracker/orders/state.py)


def stored_state(state: OrderState, since_ms: int) -> str:
    return f"{state.value} {since_ms}"


# -- create --------------------------------------------------------------------------------------------


class LatLon(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    lat: Lat
    lon: Lon


class CreateBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """POST /api/orders' body (docs/contract.md, "Tracking links")."""

    order_id: Id
    partner_id: Id
    dropoff: LatLon
    pickup: LatLon | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=1)] | None = None


class Created(msgspec.Struct, frozen=True):
    order_id: str
    partner_id: str
    token: str
    url: str
    expires_at: int


class OrderExists(Exception):
    """The order id is taken (an order is created once)."""


def check_ids(body: CreateBody) -> str | None:
    for name in ("order_id", "partner_id"):
        if not is_id(getattr(body, name)):
            return f"{name} must be 1-64 printable characters, not blank"
    return None


async def create(orders: OrderStore, secret: str, body: CreateBody, ttl_s: int, now_ms: int | None = None) -> Created:
    """Store the order and sign its link; OrderExists when the id is taken."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    expires_s = now_ms // 1000 + ttl_s
    pickup = None if body.pickup is None else (body.pickup.lat, body.pickup.lon)
    dropoff = (body.dropoff.lat, body.dropoff.lon)
    link = Link(body.order_id, body.partner_id, dropoff, pickup, expires_s)
    record = Record(body.order_id, body.partner_id, pickup, dropoff, now_ms, expires_s * 1000)
    state = stored_state(initial_state(pickup), now_ms)
    if not await orders.create(body.order_id, body.partner_id, _encode(record), state, expires_s * 1000, now_ms):
        raise OrderExists(body.order_id)
    token = sign(link, secret)
    return Created(body.order_id, body.partner_id, token, TRACK_PATH + token, link.expires_ms)


# -- deliver -------------------------------------------------------------------------------------------


class NoOrder(Exception):
    """No such order (never created, or forgotten after it expired)."""


async def deliver(
    orders: OrderStore,
    produce: Callable[[Event], Awaitable[None]],
    order_id: str,
    where: Point | None = None,
    now_ms: int | None = None,
) -> tuple[OrderState, Event | None]:
    """Mark an order delivered: produce ``order_delivered`` (``produce``: awaits the broker's ack), then
    move the stored state. Returns the state it was in and the event (None: it was delivered already, and
    nothing is produced again). ``where``: the courier's last known place (the drop-off when unknown).

    The event goes first so that a failed produce changes nothing (the operator tries again); a crash
    between the two leaves the order undelivered with the event out: the next mark (or the courier reaching
    the door) produces the same step's event, with the same id."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    [raw_record] = await orders.records([order_id])
    [(raw_state, _)] = await orders.status([order_id])
    record, held = (read_record(raw_record) if raw_record else None), read_state(raw_state)
    if record is None or held is None:
        raise NoOrder(order_id)
    if held[0] is OrderState.DELIVERED:
        return held[0], None
    lat, lon = where if where is not None else record.dropoff
    event = order_event(order_id, record.partner_id, held[0], OrderState.DELIVERED, now_ms, lat, lon)
    await produce(event)
    delivered = OrderState.DELIVERED.value
    await orders.advance([s.value for s in STATES], delivered, [(order_id, delivered, now_ms)])
    return held[0], event


def producing(producer: Producer, topic: str) -> Callable[[Event], Awaitable[None]]:
    """Produce an order event to ``topic`` (``courier-events``), keyed by courier, and wait for the ack."""

    async def produce(event: Event) -> None:
        record = OutRecord(_encode(event), event.partner_id.encode())
        await asyncio.gather(*await producer.send_many(topic, [record]))

    return produce
