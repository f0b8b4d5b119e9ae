"""Couriers and their pings look like real couriers: inside the area, on time, at plausible speeds."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections import Counter, defaultdict

import pytest

from simulator.config import SimConfig
from simulator.fleet import (
    AREA_MARGIN_M,
    BLOCK_M,
    CRUISE_MPS,
    ROTATION_DEG,
    advance,
    build_grid,
    fix_latlon,
    new_courier,
    true_xy,
)
from simulator.stream import iter_pings
from tracker.geo import haversine_m, load_service_area
from tracker.settings import Settings

NOW_MS = 1_750_000_000_000
AREA = load_service_area(None)
LIMITS = Settings().speed_limits


def good_pings(**config) -> list[dict]:
    config = {
        "couriers": 200,
        "count": 12_000,
        "seed": 7,
        "burst": True,
        "bad_rate": 0.0,
        "duplicate_rate": 0.0,
        **config,
    }
    return [json.loads(ping.value) for ping in iter_pings(SimConfig(**config), NOW_MS)]


@pytest.mark.parametrize("seed", range(4))
def test_street_grid_is_a_rotated_lattice_of_city_blocks_well_inside_the_area(seed):
    grid = build_grid(AREA, random.Random(seed))
    assert BLOCK_M[0] <= grid.block_x_m <= BLOCK_M[1] and BLOCK_M[0] <= grid.block_y_m <= BLOCK_M[1]
    assert ROTATION_DEG[0] <= abs(math.degrees(math.asin(grid.sin_rot))) <= ROTATION_DEG[1]
    assert len(grid.nodes) > 5_000  # Bengaluru's area is ~25 km across
    # A street point is at most half a block from a corner; jitter adds at most 7.5 m.
    reach_m = max(grid.block_x_m, grid.block_y_m) / 2 + 7.5
    assert reach_m < AREA_MARGIN_M
    for node in random.Random(seed).sample(grid.node_list, 300):
        x, y = grid.node_xy(node)
        for angle in range(0, 360, 45):
            lat, lon = grid.projection.to_latlon(
                x + reach_m * math.cos(math.radians(angle)), y + reach_m * math.sin(math.radians(angle))
            )
            assert AREA.contains(lat, lon)


@pytest.mark.parametrize("interval_s", [0.005, 1.0, 20.0])
def test_good_pings_stay_inside_the_area_in_order_and_under_every_speed_limit(interval_s):
    by_courier = defaultdict(list)
    for ping in good_pings(interval_s=interval_s):
        assert AREA.contains(ping["lat"], ping["lon"]), ping
        by_courier[ping["partner_id"]].append(ping)
    assert len(by_courier) == 200
    for pings in by_courier.values():
        for before, after in itertools.pairwise(pings):
            assert after["ts"] > before["ts"]
            elapsed_s = (after["ts"] - before["ts"]) / 1000
            distance_m = haversine_m(before["lat"], before["lon"], after["lat"], after["lon"])
            # The validator's rule, with its accuracy allowance ...
            assert max(0.0, distance_m - min(after["accuracy"], 50)) <= LIMITS[after["vehicle"]] * elapsed_s
            # ... and the stronger claim that couriers ride at cruising speed plus about a metre of GPS drift.
            assert distance_m <= CRUISE_MPS[after["vehicle"]][1] * elapsed_s + 1.5


def test_every_ping_has_the_contract_fields_with_realistic_values():
    pings = good_pings(count=6_000)
    vehicles_by_courier = {}
    for ping in pings:
        assert set(ping) - {"order_id"} == {"partner_id", "lat", "lon", "ts", "speed", "heading", "accuracy", "vehicle"}
        assert isinstance(ping["ts"], int) and abs(ping["ts"] - NOW_MS) < 60_000
        low, high = CRUISE_MPS[ping["vehicle"]]
        assert ping["speed"] == 0 or 0.85 * low <= ping["speed"] <= high
        assert 0 <= ping["heading"] < 360
        assert 4 <= ping["accuracy"] <= 15
        vehicles_by_courier[ping["partner_id"]] = ping["vehicle"]
    assert sorted(vehicles_by_courier) == [f"courier-{n:04d}" for n in range(1, 201)]
    mix = Counter(vehicles_by_courier.values())
    assert set(mix) == {"walk", "bike", "scooter", "car"}
    assert mix["bike"] + mix["scooter"] > 0.7 * sum(mix.values())
    with_order = sum("order_id" in ping for ping in pings)
    assert 0.05 * len(pings) < with_order < 0.95 * len(pings)
    assert sum(ping["speed"] == 0 for ping in pings) > 0.05 * len(pings)  # couriers wait at stops


def test_couriers_ride_from_pickup_to_drop_off_carrying_the_order():
    orders = defaultdict(set)
    for ping in good_pings(couriers=20, count=20_000, interval_s=2.0):
        if "order_id" in ping:
            orders[ping["partner_id"]].add(ping["order_id"])
    assert sum(len(ids) for ids in orders.values()) > 20  # several jobs each over ~11 h of event time


@pytest.mark.parametrize("elapsed_s", [0.01, 1.0, 7.0])
def test_gps_error_stays_within_half_the_reported_accuracy(elapsed_s):
    rng = random.Random(3)
    grid = build_grid(AREA, rng)
    couriers = [new_courier(index, grid, rng) for index in range(30)]
    for _ in range(300):
        couriers = [advance(courier, grid, elapsed_s, rng) for courier in couriers]
        for courier in couriers:
            true_lat, true_lon = grid.projection.to_latlon(*true_xy(grid, courier))
            lat, lon = fix_latlon(grid, courier)
            assert haversine_m(true_lat, true_lon, lat, lon) <= courier.accuracy_m / 2 + 0.05
