"""The order state rule (each transition, forward only), the ETA (falls as the courier approaches), coarsening,
and the events worker's fold (by event time, once)."""

from __future__ import annotations

import pytest

from tracker.events.decide import Fix
from tracker.events.orders import OpenOrder, fold, order_event_id
from tracker.geo import haversine_m
from tracker.orders.state import (
    MIN_SPEED_MPS,
    OrderState,
    Radii,
    advance,
    coarsen,
    eta_s,
    initial_state,
    recent_speed,
)

DROPOFF = (12.9716, 77.5946)
PICKUP = (12.9352, 77.6245)
RADII = Radii(pickup_m=50, arriving_m=500, delivered_m=50)
T, P, A, D = OrderState.TO_PICKUP, OrderState.PICKED_UP, OrderState.ARRIVING, OrderState.DELIVERED


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / 111_195, point[1]


def test_initial_state_depends_on_a_pickup_point():
    assert initial_state(PICKUP) is T and initial_state(None) is P


@pytest.mark.parametrize(
    ("state", "where", "expected"),
    [
        (T, north_of(PICKUP, 200), []),
        (T, north_of(DROPOFF, 10), []),  # at the door before pickup: nothing (the order is not on board)
        (T, north_of(PICKUP, 40), [P]),
        (P, north_of(DROPOFF, 600), []),
        (P, north_of(DROPOFF, 400), [A]),
        (P, north_of(DROPOFF, 30), [A, D]),  # every step, in order
        (A, north_of(DROPOFF, 400), []),
        (A, north_of(DROPOFF, 30), [D]),
        (A, north_of(DROPOFF, 900), []),  # forward only: moving away never goes back
        (D, north_of(DROPOFF, 5000), []),
        (D, north_of(PICKUP, 0), []),
    ],
)
def test_each_transition_forward_only(state, where, expected):
    assert advance(state, PICKUP, DROPOFF, where[0], where[1], RADII) == expected


def test_eta_falls_as_the_courier_approaches_and_stops_are_floored():
    fixes = [(i * 1000, *north_of(DROPOFF, 3000 - 8 * i)) for i in range(30)]  # 8 m/s towards the door
    etas = []
    for n in range(2, 31):
        speed = recent_speed(fixes[:n])
        assert speed == pytest.approx(8.0, rel=0.01)
        eta = eta_s(haversine_m(fixes[n - 1][1], fixes[n - 1][2], *DROPOFF), speed)
        assert eta is not None
        etas.append(eta)
    assert etas == sorted(etas, reverse=True) and etas[0] > etas[-1]
    stopped = [(i * 1000, *DROPOFF) for i in range(10)]  # a red light: no distance covered
    assert recent_speed(stopped) == MIN_SPEED_MPS
    assert recent_speed(fixes[:1]) is None and recent_speed([(0, 1.0, 1.0), (500, 1.0, 1.0)]) is None
    assert eta_s(100.0, None) is None


def test_recent_speed_looks_back_a_minute_only():
    slow = [(i * 1000, *north_of(DROPOFF, 2 * i)) for i in range(60)]
    fast = [(60_000 + i * 1000, *north_of(DROPOFF, 120 + 10 * i)) for i in range(1, 30)]
    assert recent_speed(slow + fast) == pytest.approx(10.0, rel=0.05)


def test_coarsening_snaps_to_a_cell_and_says_nothing_finer():
    a = coarsen(12.97161, 77.59461, 200)
    b = coarsen(12.97165, 77.59466, 200)
    assert a == b
    assert haversine_m(12.97161, 77.59461, *a) < 200
    far = coarsen(12.98, 77.60, 200)
    assert far != a


def order(state=P, since=0, pickup=None) -> OpenOrder:
    return OpenOrder("o1", "c1", pickup, DROPOFF, 0, 10**13, state, since)


def fix(ts: int, where: tuple[float, float], partner_id: str = "c1") -> Fix:
    return Fix(partner_id, where[0], where[1], ts)


def test_fold_makes_each_step_once_by_event_time():
    held = order(T, pickup=PICKUP)
    fixes = [
        fix(1000, north_of(PICKUP, 30)),
        fix(2000, north_of(DROPOFF, 400)),
        fix(2000, north_of(DROPOFF, 10)),  # the same time again: ignored
        fix(1500, north_of(DROPOFF, 10)),  # late: ignored
        fix(3000, north_of(DROPOFF, 900), "c2"),  # another courier: not this order's
        fix(4000, north_of(DROPOFF, 10)),
    ]
    events, moved = fold({"c1": [held]}, fixes, RADII)
    assert [(e.type, e.ts, e.from_, e.to) for e in events] == [
        ("order_picked_up", 1000, "to_pickup", "picked_up"),
        ("order_arriving", 2000, "picked_up", "arriving"),
        ("order_delivered", 4000, "arriving", "delivered"),
    ]
    assert moved["o1"].state is D and moved["o1"].since == 4000
    assert [e.id for e in events] == [order_event_id("o1", s) for s in (P, A, D)]
    again, _ = fold({"c1": [order(D, since=4000)]}, fixes, RADII)  # the stored state moved: nothing twice
    assert again == []


def test_fold_ignores_fixes_before_the_order_or_after_its_expiry():
    young = OpenOrder("o1", "c1", None, DROPOFF, 5000, 9000, P, 5000)
    events, _ = fold({"c1": [young]}, [fix(4000, DROPOFF), fix(9001, DROPOFF)], RADII)
    assert events == []
