"""An order's state, decided from its courier's fixes; the distance and the ETA a customer sees. Pure.

**The rule.** An order is ``to_pickup`` (it has a pickup point and the courier has not reached it),
``picked_up``, ``arriving`` (the courier is within ``arriving_m`` of the drop-off) or ``delivered`` (within
``delivered_m`` of it, or marked delivered by an operator). With no pickup point an order starts
``picked_up``. ``to_pickup`` becomes ``picked_up`` at the first fix within ``pickup_m`` of the pickup point;
from ``picked_up`` on, only the drop-off counts. States only move forward (:func:`advance` never returns an
earlier one), and a fix may pass several at once (``picked_up`` -> ``arriving`` -> ``delivered`` for a fix at
the door): each is a step, so whoever reads the events sees every state in order.

**By event time.** :func:`advance` is given the fix's time; the events worker (tracker/events/orders.py)
folds only fixes after the order was created and after its last change, so a late or replayed fix can never
move an order, or move it twice.

**ETA.** Remaining straight-line distance / the courier's recent speed. The recent speed is the distance
along its last fixes (up to ``RECENT_FIXES`` of them, within ``RECENT_S``) over the time they span — not the
speed the phone reports, which is 0 at every red light and would make the estimate jump to "never". It is
floored at ``MIN_SPEED_MPS`` (walking pace): a courier who has been standing still gets the estimate of one
who walks, not none. No estimate (None) with fewer than two fixes a second apart, or once delivered. Straight
lines under-estimate road distance, so the ETA is an optimistic figure; it falls as the courier approaches.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Sequence

import msgspec

from tracker.geo import EARTH_RADIUS_M, haversine_m


class OrderState(enum.Enum):
    TO_PICKUP = "to_pickup"
    PICKED_UP = "picked_up"
    ARRIVING = "arriving"
    DELIVERED = "delivered"

    @property
    def rank(self) -> int:
        return _RANK[self]


STATES = tuple(OrderState)  # in the order they happen
_RANK = {state: rank for rank, state in enumerate(STATES)}

RECENT_S = 60.0  # the recent speed looks this far back
RECENT_FIXES = 20  # ... at most this many fixes
MIN_SPEED_MPS = 1.4  # the recent speed's floor (walking pace)
MIN_SPAN_MS = 1000  # fixes closer in time than this give no speed


class Radii(msgspec.Struct, frozen=True):
    """The rule's distances, metres (settings TRACKER_PICKUP_M, TRACKER_ARRIVING_M, TRACKER_DELIVERED_M)."""

    pickup_m: float = 50.0
    arriving_m: float = 500.0
    delivered_m: float = 50.0

    @classmethod
    def from_settings(cls, settings) -> Radii:
        return cls(settings.pickup_m, settings.arriving_m, settings.delivered_m)


Point = tuple[float, float]  # lat, lon


def initial_state(pickup: Point | None) -> OrderState:
    return OrderState.TO_PICKUP if pickup is not None else OrderState.PICKED_UP


def advance(
    state: OrderState, pickup: Point | None, dropoff: Point, lat: float, lon: float, radii: Radii
) -> list[OrderState]:
    """The states an order passes through at a fix at (``lat``, ``lon``), in order (empty: no change)."""
    steps: list[OrderState] = []
    if state is OrderState.TO_PICKUP:
        if pickup is None or haversine_m(lat, lon, *pickup) <= radii.pickup_m:
            state = OrderState.PICKED_UP
            steps.append(state)
        else:
            return steps
    if state is OrderState.DELIVERED:
        return steps
    away = haversine_m(lat, lon, *dropoff)
    if state is OrderState.PICKED_UP and away <= radii.arriving_m:
        state = OrderState.ARRIVING
        steps.append(state)
    if state is OrderState.ARRIVING and away <= radii.delivered_m:
        steps.append(OrderState.DELIVERED)
    return steps


def read_stored(raw: bytes | None) -> tuple[OrderState, int] | None:
    """A stored state, ``b"<state> <since ms>"`` (tracker/orders/service.py), or None for none (or one that
    cannot be read)."""
    if raw is None:
        return None
    name, _, since = raw.decode("utf-8", "replace").partition(" ")
    try:
        return OrderState(name), int(since)
    except ValueError:
        return None


def moved_forward(held: OrderState, to: OrderState) -> bool:
    return to.rank > held.rank


def target(state: OrderState, pickup: Point | None, dropoff: Point) -> Point:
    """Where the courier is headed for this order: the pickup point until picked up, then the drop-off."""
    return pickup if state is OrderState.TO_PICKUP and pickup is not None else dropoff


Fix = tuple[int, float, float]  # ts (epoch ms), lat, lon


def recent_speed(fixes: Sequence[Fix]) -> float | None:
    """Metres per second along ``fixes`` (oldest first) over the last ``RECENT_S``, floored at
    ``MIN_SPEED_MPS``; None when they span less than ``MIN_SPAN_MS``."""
    if len(fixes) < 2:
        return None
    last_ts = fixes[-1][0]
    window = [fix for fix in list(fixes)[-RECENT_FIXES:] if last_ts - fix[0] <= RECENT_S * 1000]
    span_ms = window[-1][0] - window[0][0] if window else 0
    if span_ms < MIN_SPAN_MS:
        return None
    metres = sum(haversine_m(a[1], a[2], b[1], b[2]) for a, b in itertools.pairwise(window))
    return max(MIN_SPEED_MPS, metres / (span_ms / 1000))


def eta_s(distance_m: float, speed_mps: float | None) -> int | None:
    """Seconds to cover ``distance_m`` at ``speed_mps`` (rounded up), or None without a speed."""
    if speed_mps is None or speed_mps <= 0:
        return None
    return math.ceil(distance_m / speed_mps)


_M_PER_DEG = math.pi * EARTH_RADIUS_M / 180


def coarsen(lat: float, lon: float, grid_m: float) -> Point:
    """(``lat``, ``lon``) snapped to the centre of its cell in a grid of ``grid_m`` metres: rows of latitude
    ``grid_m`` high, each cut into cells ``grid_m`` wide at the row's middle. Every point of a cell gives the
    same answer, so successive fixes say no more than which cell the courier is in."""
    step_lat = grid_m / _M_PER_DEG
    row = math.floor((lat + 90.0) / step_lat)
    centre_lat = min(90.0, -90.0 + (row + 0.5) * step_lat)
    step_lon = grid_m / (_M_PER_DEG * max(math.cos(math.radians(centre_lat)), 1e-6))
    column = math.floor((lon + 180.0) / step_lon)
    centre_lon = -180.0 + (column + 0.5) * step_lon
    return round(centre_lat, 6), round(max(-180.0, min(180.0, centre_lon)), 6)
