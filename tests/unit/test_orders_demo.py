"""`tracker up`'s demo orders (simulator/orders.py): the couriers chosen carry an order to a drop-off a
minute or two away, and the order's points are the courier's own job."""

from __future__ import annotations

from simulator.config import SimConfig
from simulator.fleet import Stage, node_latlon
from simulator.orders import MAX_RIDE_S, pick, ride_left_m
from simulator.stream import Fleet


def test_demo_orders_are_the_couriers_own_jobs_near_their_drop_off():
    fleet = Fleet(SimConfig(couriers=200, seed=7))
    chosen = pick(fleet.couriers, fleet.grid, {"courier-0001"}, 3)
    assert len(chosen) == 3
    by_id = {courier.partner_id: courier for courier in fleet.couriers}
    for order in chosen:
        courier = by_id[order.partner_id]
        assert order.partner_id != "courier-0001"  # already tracked
        assert courier.stage is Stage.TO_DROPOFF and order.order_id == courier.order_id
        assert order.dropoff == node_latlon(fleet.grid, courier.path[-1])
        assert ride_left_m(fleet.grid, courier) / courier.cruise_mps <= MAX_RIDE_S
    assert pick(fleet.couriers, fleet.grid, set(), 0) == []
