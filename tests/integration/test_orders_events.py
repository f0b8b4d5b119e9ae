"""Order events on the real broker and Redis: the events worker folds an order's state from its courier's
fixes and produces order_picked_up / order_arriving / order_delivered once each, in order, whether the
positions arrive twice, the worker runs again over them, or the fold of a batch is repeated after a crash
before its states were stored; an operator's "delivered" mark produces one event once."""

from __future__ import annotations

import asyncio
import json
import time

import msgspec
import pytest

from tests.helpers import value_of
from tests.integration.kafka_helpers import read_topic
from tracker.events.decide import Fix
from tracker.events.index import EventFilters, EventIndex
from tracker.events.indexer import run_event_indexer
from tracker.events.orders import OrderFolder
from tracker.events.worker import run_events
from tracker.events.zones import Zones
from tracker.geo import load_service_area
from tracker.kafka import Producer
from tracker.models import OutRecord, Position
from tracker.orders import service
from tracker.orders.state import OrderState
from tracker.store import OrderStore

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

DROPOFF = (12.9716, 77.5946)
PICKUP = (12.9352, 77.6245)


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_195, point[1]


def route(base: int) -> list[tuple[int, tuple[float, float]]]:
    """A courier's fixes: towards the pickup, at it, on the way, near the door, at the door."""
    return [
        (base + 1000, north_of(PICKUP, 900)),
        (base + 2000, north_of(PICKUP, 20)),
        (base + 3000, north_of(DROPOFF, 2000)),
        (base + 4000, north_of(DROPOFF, 300)),
        (base + 5000, north_of(DROPOFF, 10)),
        (base + 6000, north_of(DROPOFF, 5)),
    ]


def position(partner_id: str, ts: int, where: tuple[float, float]) -> OutRecord:
    value = msgspec.json.encode(Position(partner_id, where[0], where[1], ts, ts + 5, speed=8.0))
    return OutRecord(value, partner_id.encode())


async def create(store, order_id: str, partner_id: str, created_ms: int, pickup=PICKUP) -> None:
    body = service.CreateBody(
        order_id,
        partner_id,
        service.LatLon(*DROPOFF),
        None if pickup is None else service.LatLon(*pickup),
    )
    await service.create(OrderStore(store), "secret", body, 3600, now_ms=created_ms)


async def order_events(settings) -> list[tuple]:
    records = await read_topic(settings, settings.events_topic, idle_s=1)
    found = []
    for record in records:
        event = json.loads(value_of(record))
        if event["type"].startswith("order_"):
            found.append((event["order_id"], event["type"], event["ts"], event["from"], event["to"], event["id"]))
    return found


async def test_order_events_once_each_in_order_through_replays_and_reruns(settings, store, producer: Producer):
    base = time.time_ns() // 1_000_000 - 60_000
    await create(store, "o-1", "c1", base)
    await create(store, "o-2", "c2", base, pickup=None)  # starts picked_up
    await create(store, "o-late", "c1", base + 4500)  # created after the pickup: never picked up by old fixes
    records = [position("c1", ts, where) for ts, where in route(base)]
    records += [position("c2", ts, north_of(where, 0)) for ts, where in route(base)[2:]]
    await asyncio.gather(*await producer.send_many(settings.positions_topic, records + records))  # all twice
    zones = Zones.of_area(load_service_area(settings.service_area_file))
    first = await run_events(settings, zones, asyncio.Event(), idle_exit_s=1.5)
    await asyncio.gather(*await producer.send_many(settings.positions_topic, records))  # a third time, later
    await run_events(settings, zones, asyncio.Event(), idle_exit_s=1.5)  # a restarted worker
    produced = await order_events(settings)
    by_order: dict[str, list[tuple]] = {}
    for item in produced:
        by_order.setdefault(item[0], []).append(item[1:5])
    assert by_order == {
        "o-1": [
            ("order_picked_up", base + 2000, "to_pickup", "picked_up"),
            ("order_arriving", base + 4000, "picked_up", "arriving"),
            ("order_delivered", base + 5000, "arriving", "delivered"),
        ],
        "o-2": [
            ("order_arriving", base + 4000, "picked_up", "arriving"),
            ("order_delivered", base + 5000, "arriving", "delivered"),
        ],
    }
    assert first["consumed"] == len(records) * 2
    statuses = await OrderStore(store).status(["o-1", "o-2", "o-late"])
    assert [service.read_state(raw) for raw, _ in statuses] == [
        (OrderState.DELIVERED, base + 5000),
        (OrderState.DELIVERED, base + 5000),
        (OrderState.TO_PICKUP, base + 4500),
    ]
    # The dispatchers' event feed and /api/events show them too, with their order.
    await run_event_indexer(settings, store, asyncio.Event(), idle_exit_s=1.0)
    delivered = await EventIndex(store).list(EventFilters(type="order_delivered"), limit=10)
    assert sorted((event["order_id"], event["partner_id"]) for event in delivered) == [("o-1", "c1"), ("o-2", "c2")]
    assert (await EventIndex(store).stats())["by_type"]["order_arriving"] == 2


async def test_a_fold_repeated_after_a_crash_before_its_states_were_stored_gives_the_same_events(
    settings, store, producer
):
    base = time.time_ns() // 1_000_000 - 60_000
    await create(store, "o-1", "c1", base)
    fixes = [Fix("c1", where[0], where[1], ts) for ts, where in route(base)]
    folder = OrderFolder(settings, store, producer, _once, _once)
    orders = OrderStore(store)
    moves_of_a_crash: list = []
    real_advance = orders.advance

    async def crash(states, delivered, moves):  # the events are acknowledged, then the worker dies
        moves_of_a_crash.extend(moves)
        raise ConnectionError("killed")

    folder.orders.advance = crash  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await folder.run(fixes)
    folder.orders.advance = real_advance  # type: ignore[method-assign]
    again = await folder.run(fixes)  # the next owner folds the same fixes from the same stored state
    assert [e.type for e in again] == ["order_picked_up", "order_arriving", "order_delivered"]
    assert await folder.run(fixes) == []  # and once stored, never again
    produced = await order_events(settings)
    assert len(produced) == 6 and len({item[5] for item in produced}) == 3  # the same three ids, twice
    assert moves_of_a_crash


async def test_an_operators_mark_produces_one_delivered_event_once(settings, store, producer):
    base = time.time_ns() // 1_000_000
    await create(store, "o-1", "c1", base)
    orders = OrderStore(store)
    produce = service.producing(producer, settings.events_topic)
    was, event = await service.deliver(orders, produce, "o-1", now_ms=base + 10)
    assert was is OrderState.TO_PICKUP and event is not None
    assert await service.deliver(orders, produce, "o-1") == (OrderState.DELIVERED, None)
    assert [(e[1], e[3], e[4]) for e in await order_events(settings)] == [("order_delivered", "to_pickup", "delivered")]
    assert await orders.open_for(["c1"]) == []  # off its courier's open list: the worker folds it no more


async def _once(what, operation):
    return await operation()
