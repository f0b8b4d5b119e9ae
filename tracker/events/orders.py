"""Order events: each order's state folded from its courier's fixes, in the events worker, onto
``courier-events`` as ``order_picked_up`` / ``order_arriving`` / ``order_delivered``.

The rule is tracker/orders/state.py's. How it is decided once, by event time, on an at-least-once pipe (the
same argument as the zone events', tracker/events/worker.py):

- For each batch the worker reads the open orders of the batch's couriers from Redis (one HMGET: most
  couriers have none), folds the batch's fixes into them in offset order, produces the events and waits for
  the broker's acks, and only then moves the orders' states in Redis (orders.lua, "advance": forward only,
  compare-and-set on the state's rank), before it records the partitions' progress and commits the offsets.
- A fix counts for an order only if it is after the order was created and after the order's last change
  (event time), and not after it expires: a late, replayed or redelivered fix never moves an order, nor
  moves it twice, and old positions read again (a rewound group) cannot deliver a new order.
- A crash before the states are moved re-delivers the records: the next owner folds the same fixes from the
  same stored states into the same events, with the same ids (:func:`order_event_id`: the order and the
  state it reached, so the event of one step of one order always has one id). A crash after it finds the
  states already moved: no event again. Two deciders (a fenced member, an operator's "delivered" mark racing
  the courier's arrival) can each produce an event of one step; it has the same id, so whoever stores events
  keeps it once, as for zone events.

The gateway shows the state stored here (read about once a second for the orders being watched), so the
customer's page and the events never disagree.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

import msgspec

from tracker.events.decide import Event, EventType, Fix
from tracker.kafka import Producer
from tracker.models import OutRecord
from tracker.orders.state import OrderState, Point, Radii, advance
from tracker.store import OrderStore, Store

log = logging.getLogger(__name__)

ORDER_EVENT_TYPES = {
    OrderState.PICKED_UP: EventType.ORDER_PICKED_UP.value,
    OrderState.ARRIVING: EventType.ORDER_ARRIVING.value,
    OrderState.DELIVERED: EventType.ORDER_DELIVERED.value,
}


def order_event_id(order_id: str, to: OrderState) -> str:
    """One id per order and state reached: the same step decided twice is the same event."""
    text = "\x1f".join(("order", order_id, to.value))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def order_event(
    order_id: str, partner_id: str, held: OrderState, to: OrderState, ts: int, lat: float, lon: float
) -> Event:
    """An order's step as an event on ``courier-events`` (:class:`~tracker.events.decide.Event`: ``zone`` null,
    ``from``/``to`` the order's states, ``order_id`` set). ``ts``/``lat``/``lon``: the fix that moved it (an
    operator's mark: when it was made, and the courier's last known place, or the drop-off)."""
    return Event(
        order_event_id(order_id, to),
        ORDER_EVENT_TYPES[to],
        partner_id,
        ts,
        None,
        lat,
        lon,
        held.value,
        to.value,
        order_id,
    )


class OpenOrder(msgspec.Struct, gc=False):
    """An order being folded: what its record and its stored state say (``since``: event time of its last
    change, or its creation)."""

    order_id: str
    partner_id: str
    pickup: Point | None
    dropoff: Point
    created_ms: int
    expires_ms: int
    state: OrderState
    since: int


def fold(
    orders: dict[str, list[OpenOrder]], fixes: list[Fix], radii: Radii
) -> tuple[list[Event], dict[str, OpenOrder]]:
    """Fold ``fixes`` (offset order) into the open ``orders`` of their couriers (by partner id); the events,
    and the orders that moved (their final state and ``since``), by id. Pure; ``orders`` are updated."""
    events: list[Event] = []
    moved: dict[str, OpenOrder] = {}
    for fix in fixes:
        for order in orders.get(fix.partner_id, ()):
            if fix.ts < order.created_ms or fix.ts <= order.since or fix.ts > order.expires_ms:
                continue
            steps = advance(order.state, order.pickup, order.dropoff, fix.lat, fix.lon, radii)
            held = order.state
            for step in steps:
                events.append(order_event(order.order_id, order.partner_id, held, step, fix.ts, fix.lat, fix.lon))
                held = step
            if steps:
                order.state, order.since = held, fix.ts
                moved[order.order_id] = order
    return events, moved


class OrderFolder:
    """The events worker's side of it (worker.py calls :meth:`run` for each batch, after producing the zone
    events and before recording the partitions' progress): read, fold, produce, then move (module doc)."""

    def __init__(self, settings, store: Store, producer: Producer, redis_retry, broker_retry) -> None:
        self.orders = OrderStore(store)
        self.producer = producer
        self.topic = settings.events_topic
        self.radii = Radii.from_settings(settings)
        self._redis = redis_retry  # (what, operation) -> its result, retried like the worker's own calls
        self._broker = broker_retry
        self.totals: dict[str, int] = {}

    async def run(self, fixes: list[Fix]) -> list[Event]:
        """Fold a batch's fixes into their couriers' open orders; returns the events produced."""
        if not fixes:
            return []
        partner_ids = list({fix.partner_id for fix in fixes})
        rows = await self._redis("read open orders", lambda: self.orders.open_for(partner_ids))
        if not rows:
            return []
        by_partner: dict[str, list[OpenOrder]] = {}
        for order_id, record, state in rows:
            order = open_order(order_id, record, state)
            if order is not None:
                by_partner.setdefault(order.partner_id, []).append(order)
        events, moved = fold(by_partner, fixes, self.radii)
        if events:
            records = [OutRecord(_encode(event), event.partner_id.encode()) for event in events]

            async def send() -> list:
                return await self.producer.send_many(self.topic, records)

            await asyncio.gather(*await self._broker("produce order events", send))
            for event in events:
                self.totals["events:" + event.type] = self.totals.get("events:" + event.type, 0) + 1
        if moved:
            moves = [(order.order_id, order.state.value, order.since) for order in moved.values()]
            states = [state.value for state in OrderState]
            delivered = OrderState.DELIVERED.value
            await self._redis("move order states", lambda: self.orders.advance(states, delivered, moves))
        return events


_encode = msgspec.json.Encoder().encode


def open_order(order_id: str, record_raw: bytes, state_raw: bytes) -> OpenOrder | None:
    """An open order from its stored record and state (tracker/orders/service.py has their forms)."""
    try:
        record = _decode_record(record_raw)
        name, _, since = state_raw.decode("utf-8", "replace").partition(" ")
        state, since_ms = OrderState(name), int(since)
    except (msgspec.DecodeError, ValueError):
        log.warning("order %r: its stored record or state is unreadable; skipped", order_id)
        return None
    return OpenOrder(
        order_id,
        record.partner_id,
        record.pickup,
        record.dropoff,
        record.created_ms,
        record.expires_ms,
        state,
        since_ms,
    )


class StoredRecord(msgspec.Struct, frozen=True):
    """An order's stored record (what tracker/orders/service.py writes)."""

    order_id: str
    partner_id: str
    pickup: Point | None
    dropoff: Point
    created_ms: int
    expires_ms: int


_decode_record = msgspec.json.Decoder(StoredRecord).decode
