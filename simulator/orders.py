"""Demo orders for the customers' tracking page (`tracker up`; `tracker simulate --track-orders N`).

A few simulated couriers get an order registered as the tracker would get one from a shop: the simulator's
own order id, the courier's drop-off, and its pickup. Chosen so that the page has something to show within a
minute or two: a courier waiting at its pickup (the order is picked up at its next fix, the ride follows) or
already riding with an order, whose drop-off is at most ``MAX_RIDE_S`` away at its pace. When a tracked
courier's job ends (its order id changes: delivered, and the events worker says so), another is chosen. The
links are appended to a file, one path (``/track/<token>``) a line, for `tracker up` to print.

:func:`pick` is pure (the fleet in, the orders to register out); :class:`DemoOrders` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from pathlib import Path

import msgspec

from simulator.fleet import Courier, Stage, StreetGrid, node_latlon
from tracker.orders import service
from tracker.settings import Settings
from tracker.store import OrderStore, Store, StoreError

log = logging.getLogger(__name__)

MAX_RIDE_S = 150.0  # a demo order's drop-off is at most this far, at the courier's cruising pace
LINK_TTL_S = 3600
CHECK_S = 1.0


class DemoOrder(msgspec.Struct, frozen=True):
    order_id: str
    partner_id: str
    pickup: tuple[float, float] | None
    dropoff: tuple[float, float]


def ride_left_m(grid: StreetGrid, courier: Courier) -> float:
    """Metres left along the courier's current leg."""
    points = [grid.node_xy(node) for node in courier.path[courier.segment :]]
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points)) - courier.along_m


def pick(couriers: list[Courier], grid: StreetGrid, tracked: set[str], wanted: int) -> list[DemoOrder]:
    """Up to ``wanted`` couriers not in ``tracked`` carrying an order to a drop-off within ``MAX_RIDE_S``:
    first those waiting at the pickup (their order gets a pickup point, so the page shows it picked up),
    then those already riding (no pickup point: picked up from the start)."""
    waiting: list[Courier] = []
    riding: list[Courier] = []
    for courier in couriers:
        if courier.stage is not Stage.TO_DROPOFF or courier.order_id is None or courier.partner_id in tracked:
            continue
        if ride_left_m(grid, courier) / courier.cruise_mps > MAX_RIDE_S:
            continue
        at_pickup = courier.segment == 0 and courier.along_m == 0.0
        (waiting if at_pickup else riding).append(courier)
    chosen: list[DemoOrder] = []
    for courier in (waiting + riding)[:wanted]:
        assert courier.order_id is not None
        pickup = node_latlon(grid, courier.path[0]) if courier.segment == 0 and courier.along_m == 0.0 else None
        chosen.append(DemoOrder(courier.order_id, courier.partner_id, pickup, node_latlon(grid, courier.path[-1])))
    return chosen


class DemoOrders:
    """Keeps ``count`` demo orders registered while the simulation runs (see the module doc)."""

    def __init__(self, settings: Settings, count: int, links_path: Path | None) -> None:
        self.settings = settings
        self.count = count
        self.links_path = links_path
        self.couriers: list[Courier] | None = None
        self.grid: StreetGrid | None = None
        self.tracked: dict[str, str] = {}  # partner id -> its demo order id

    def attach(self, couriers: list[Courier], grid: StreetGrid) -> None:
        """The running fleet (its list of couriers is updated in place as they move)."""
        self.couriers, self.grid = couriers, grid

    async def run(self, stop: asyncio.Event) -> None:
        if not self.settings.tracking_secret:
            log.warning("--track-orders: TRACKER_TRACKING_SECRET is not set; no demo orders")
            return
        async with Store(self.settings) as store:
            orders = OrderStore(store)
            while not stop.is_set():
                try:
                    await self._step(orders)
                except (StoreError, OSError) as exc:
                    log.warning("registering demo orders failed (trying again): %r", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CHECK_S)

    async def _step(self, orders: OrderStore) -> None:
        if self.couriers is None or self.grid is None:
            return
        current = {courier.partner_id: courier.order_id for courier in self.couriers}
        self.tracked = {p: o for p, o in self.tracked.items() if current.get(p) == o}  # their job goes on
        secret = self.settings.tracking_secret
        assert secret
        for order in pick(self.couriers, self.grid, set(self.tracked), self.count - len(self.tracked)):
            body = service.CreateBody(
                order.order_id,
                order.partner_id,
                service.LatLon(*order.dropoff),
                None if order.pickup is None else service.LatLon(*order.pickup),
                LINK_TTL_S,
            )
            try:
                created = await service.create(orders, secret, body, LINK_TTL_S)
            except service.OrderExists:
                continue
            self.tracked[order.partner_id] = order.order_id
            if self.links_path is not None:
                with self.links_path.open("a", encoding="utf-8") as out:
                    out.write(created.url + "\n")
