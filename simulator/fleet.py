"""Couriers riding a street grid inside the service area. Pure: plain data in, plain data out, plus a seeded
:class:`random.Random` so that a seed reproduces the whole fleet.

Geometry happens in a flat local projection (metres east/north of the area's centre); over a city the error
against great-circle distance is far below GPS noise. The street grid is a slightly rotated lattice of
~150-250 m blocks clipped to the service area shrunk by :data:`AREA_MARGIN_M`. Every point of a street lies
within half a block of a kept corner, so couriers and their jitter never leave the area.

A courier's day is a loop of jobs: ride to a pickup, wait there, ride to the drop-off carrying the order
(pings carry ``order_id`` on that leg), wait, take the next job. Legs follow the streets in L-shaped or
stair-step paths. A simulation starts with every courier somewhere in the middle of a job.

GPS noise is modelled like the real thing: a slowly drifting offset, not independent noise per fix. It stays
within half the reported accuracy and moves at most about a metre between fixes, so two consecutive fixes
never look faster than the courier rode, whatever the ping interval.
"""

from __future__ import annotations

import enum
import math
import random
from typing import TypeVar

import msgspec
import numpy
import shapely

from tracker.geo import EARTH_RADIUS_M, ServiceArea

AREA_MARGIN_M = 250.0
BLOCK_M = (150.0, 250.0)
ROTATION_DEG = (4.0, 16.0)

# Mostly two-wheelers, as in any Indian delivery fleet.
VEHICLE_MIX = (("walk", 0.05), ("bike", 0.40), ("scooter", 0.45), ("car", 0.10))
# Cruising speeds in m/s: well under the validator's limits (walk 4, bike 15, scooter 35, car 45).
CRUISE_MPS = {"walk": (1.2, 1.6), "bike": (4.0, 7.0), "scooter": (6.0, 11.0), "car": (7.0, 14.0)}

PICKUP_LEG_M = (400.0, 2_500.0)
DROPOFF_LEG_M = (800.0, 4_500.0)
PICKUP_WAIT_S = (20.0, 90.0)
DROPOFF_WAIT_S = (30.0, 120.0)

ACCURACY_M = (4.0, 15.0)
ACCURACY_DRIFT_M = 0.5
JITTER_DRIFT_M = 0.35

Node = tuple[int, int]


class Stage(enum.Enum):
    TO_PICKUP = "to_pickup"
    TO_DROPOFF = "to_dropoff"


_Coordinate = TypeVar("_Coordinate", float, numpy.ndarray)  # one point, or many at once


class Projection(msgspec.Struct, frozen=True):
    """Equirectangular projection around (lat0, lon0): x metres east, y metres north."""

    lat0: float
    lon0: float
    m_per_deg_lat: float
    m_per_deg_lon: float

    @classmethod
    def around(cls, lat0: float, lon0: float) -> Projection:
        m_per_deg = math.pi / 180 * EARTH_RADIUS_M
        return cls(lat0, lon0, m_per_deg, m_per_deg * math.cos(math.radians(lat0)))

    def to_xy(self, lat: _Coordinate, lon: _Coordinate) -> tuple[_Coordinate, _Coordinate]:
        return (lon - self.lon0) * self.m_per_deg_lon, (lat - self.lat0) * self.m_per_deg_lat

    def to_latlon(self, x: float, y: float) -> tuple[float, float]:
        return self.lat0 + y / self.m_per_deg_lat, self.lon0 + x / self.m_per_deg_lon


class StreetGrid(msgspec.Struct, frozen=True):
    projection: Projection
    cos_rot: float
    sin_rot: float
    block_x_m: float
    block_y_m: float
    nodes: frozenset[Node]
    node_list: tuple[Node, ...]  # sorted, for seeded random choice
    beyond_ring: shapely.LinearRing  # 400 m outside the area all round, for "just outside" fixes

    def node_xy(self, node: Node) -> tuple[float, float]:
        u, v = node[0] * self.block_x_m, node[1] * self.block_y_m
        return u * self.cos_rot - v * self.sin_rot, u * self.sin_rot + v * self.cos_rot


def build_grid(area: ServiceArea, rng: random.Random) -> StreetGrid:
    """The street lattice clipped to the area shrunk by :data:`AREA_MARGIN_M` (dead-end corners dropped)."""
    centre = area.polygon.centroid
    projection = Projection.around(centre.y, centre.x)
    area_m = shapely.transform(
        area.polygon, lambda lonlat: numpy.column_stack(projection.to_xy(lonlat[:, 1], lonlat[:, 0]))
    )
    inner = area_m.buffer(-AREA_MARGIN_M)
    rotation = math.radians(rng.uniform(*ROTATION_DEG) * rng.choice((-1, 1)))
    cos_rot, sin_rot = math.cos(rotation), math.sin(rotation)
    block_x, block_y = rng.uniform(*BLOCK_M), rng.uniform(*BLOCK_M)

    # Lattice coordinates covering the inner area's bounding box, whatever the rotation.
    min_x, min_y, max_x, max_y = area_m.bounds
    reach = math.hypot(max(-min_x, max_x), max(-min_y, max_y)) + max(block_x, block_y)
    span_i, span_j = int(reach / block_x) + 1, int(reach / block_y) + 1
    ii, jj = numpy.meshgrid(numpy.arange(-span_i, span_i + 1), numpy.arange(-span_j, span_j + 1), indexing="ij")
    u, v = ii.ravel() * block_x, jj.ravel() * block_y
    inside = shapely.contains_xy(inner, u * cos_rot - v * sin_rot, u * sin_rot + v * cos_rot)
    candidates = {(int(i), int(j)) for i, j in zip(ii.ravel()[inside], jj.ravel()[inside], strict=True)}
    nodes = frozenset(node for node in candidates if _neighbours(node) & candidates)
    if len(nodes) < 2:
        raise ValueError(f"{area.source}: the service area is too small for the simulator's street grid")

    beyond = area_m.buffer(400.0)
    # types-shapely says buffer() gives a Polygon; a service area in several parts buffers to a MultiPolygon.
    if beyond.geom_type == "MultiPolygon":  # type: ignore[comparison-overlap]
        beyond = max(beyond.geoms, key=lambda polygon: polygon.area)
    return StreetGrid(projection, cos_rot, sin_rot, block_x, block_y, nodes, tuple(sorted(nodes)), beyond.exterior)


def _neighbours(node: Node) -> set[Node]:
    i, j = node
    return {(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)}


def node_latlon(grid: StreetGrid, node: Node) -> tuple[float, float]:
    return grid.projection.to_latlon(*grid.node_xy(node))


def point_beyond_area(grid: StreetGrid, rng: random.Random) -> tuple[float, float]:
    """(lat, lon) 400 m outside the service area's boundary."""
    point = grid.beyond_ring.interpolate(rng.random(), normalized=True)
    return grid.projection.to_latlon(point.x, point.y)


def stair_path(start: Node, target: Node, rng: random.Random) -> tuple[Node, ...]:
    """Corner by corner from ``start`` to ``target``: runs along one street axis, then the other.

    Half the runs go all the way (an L-shaped route), the rest stop early (a stair-step route).
    """
    path = [start]
    i, j = start
    while (i, j) != target:
        axes = [axis for axis, left in enumerate((target[0] - i, target[1] - j)) if left]
        axis = rng.choice(axes)
        left = (target[0] - i, target[1] - j)[axis]
        run = abs(left) if rng.random() < 0.5 else rng.randint(1, abs(left))
        step = 1 if left > 0 else -1
        for _ in range(run):
            if axis == 0:
                i += step
            else:
                j += step
            path.append((i, j))
    return tuple(path)


def plan_leg(grid: StreetGrid, start: Node, length_m: tuple[float, float], rng: random.Random) -> tuple[Node, ...]:
    """A street path from ``start`` to a corner roughly ``length_m`` away, staying on the grid.

    Near the area's edge most targets fall outside; after a few misses the courier settles for the next
    corner, which :func:`build_grid` guarantees exists.
    """
    for _ in range(12):
        distance, bearing = rng.uniform(*length_m), rng.uniform(0, 2 * math.pi)
        target = (
            start[0] + round(distance * math.cos(bearing) / grid.block_x_m),
            start[1] + round(distance * math.sin(bearing) / grid.block_y_m),
        )
        if target == start or target not in grid.nodes:
            continue
        path = stair_path(start, target, rng)
        if all(node in grid.nodes for node in path):
            return path
    return start, rng.choice(sorted(_neighbours(start) & grid.nodes))


class Courier(msgspec.Struct, frozen=True):
    partner_id: str
    vehicle: str
    cruise_mps: float
    stage: Stage
    order_id: str | None
    path: tuple[Node, ...]  # the current leg, corner by corner (at least two corners)
    segment: int  # riding from path[segment] to path[segment + 1]
    along_m: float  # metres already covered on that segment
    wait_s: float  # time left standing at the current stop
    speed_mps: float
    heading_deg: float
    accuracy_m: float
    jitter_m: tuple[float, float]  # GPS error: offset of the reported fix from the true position


# Courier ids are a prefix and a number: courier-0001, courier-0002, ... (`tracker simulate --id-prefix`).
DEFAULT_ID_PREFIX = "courier-"


def partner_id_for(index: int, prefix: str = DEFAULT_ID_PREFIX) -> str:
    return f"{prefix}{index + 1:04d}"


def new_courier(index: int, grid: StreetGrid, rng: random.Random, id_prefix: str = DEFAULT_ID_PREFIX) -> Courier:
    """A courier somewhere in the middle of a job, so that a fresh simulation already looks like rush hour."""
    vehicle = rng.choices([v for v, _ in VEHICLE_MIX], weights=[w for _, w in VEHICLE_MIX])[0]
    carrying = rng.random() < 0.5
    path = plan_leg(grid, rng.choice(grid.node_list), DROPOFF_LEG_M if carrying else PICKUP_LEG_M, rng)
    segment = rng.randrange(len(path) - 1)
    start_x, start_y = grid.node_xy(path[segment])
    return Courier(
        partner_id=partner_id_for(index, id_prefix),
        vehicle=vehicle,
        cruise_mps=rng.uniform(*CRUISE_MPS[vehicle]),
        stage=Stage.TO_DROPOFF if carrying else Stage.TO_PICKUP,
        order_id=_new_order_id(rng) if carrying else None,
        path=path,
        segment=segment,
        along_m=rng.uniform(0, math.dist((start_x, start_y), grid.node_xy(path[segment + 1]))),
        wait_s=rng.uniform(0, 30) if rng.random() < 0.2 else 0.0,  # some stand at a traffic light or a door
        speed_mps=0.0,
        heading_deg=0.0,
        accuracy_m=round(rng.uniform(*ACCURACY_M), 1),
        jitter_m=(0.0, 0.0),
    )


def _new_order_id(rng: random.Random) -> str:
    return f"order-{rng.getrandbits(40):010x}"


def _segment_ends(
    grid: StreetGrid, path: tuple[Node, ...], segment: int
) -> tuple[tuple[float, float], tuple[float, float], float]:
    start, end = grid.node_xy(path[segment]), grid.node_xy(path[segment + 1])
    return start, end, math.dist(start, end)


def true_xy(grid: StreetGrid, courier: Courier) -> tuple[float, float]:
    """Where the courier really is (before GPS error), in projected metres."""
    (x0, y0), (x1, y1), length = _segment_ends(grid, courier.path, courier.segment)
    share = courier.along_m / length
    return x0 + (x1 - x0) * share, y0 + (y1 - y0) * share


def fix_latlon(grid: StreetGrid, courier: Courier) -> tuple[float, float]:
    """The position the phone reports: true position plus GPS error, rounded like a phone does (~1 cm)."""
    x, y = true_xy(grid, courier)
    lat, lon = grid.projection.to_latlon(x + courier.jitter_m[0], y + courier.jitter_m[1])
    return round(lat, 7), round(lon, 7)


def _arrive(courier: Courier, grid: StreetGrid, rng: random.Random) -> Courier:
    """At the end of a leg: wait at the stop, then ride the next leg of the job loop."""
    here = courier.path[-1]
    if courier.stage is Stage.TO_PICKUP:
        stage, order_id = Stage.TO_DROPOFF, _new_order_id(rng)
        path, wait_s = plan_leg(grid, here, DROPOFF_LEG_M, rng), rng.uniform(*PICKUP_WAIT_S)
    else:
        stage, order_id = Stage.TO_PICKUP, None
        path, wait_s = plan_leg(grid, here, PICKUP_LEG_M, rng), rng.uniform(*DROPOFF_WAIT_S)
    return msgspec.structs.replace(
        courier, stage=stage, order_id=order_id, path=path, segment=0, along_m=0.0, wait_s=wait_s, speed_mps=0.0
    )


def _drift_gps(courier: Courier, rng: random.Random) -> tuple[float, tuple[float, float]]:
    low, high = ACCURACY_M
    accuracy = round(min(high, max(low, courier.accuracy_m + rng.uniform(-ACCURACY_DRIFT_M, ACCURACY_DRIFT_M))), 1)
    jx = courier.jitter_m[0] + rng.uniform(-JITTER_DRIFT_M, JITTER_DRIFT_M)
    jy = courier.jitter_m[1] + rng.uniform(-JITTER_DRIFT_M, JITTER_DRIFT_M)
    bound = accuracy / 2
    size = math.hypot(jx, jy)
    if size > bound:
        jx, jy = jx * bound / size, jy * bound / size
    return accuracy, (jx, jy)


def advance(courier: Courier, grid: StreetGrid, elapsed_s: float, rng: random.Random) -> Courier:
    """The courier ``elapsed_s`` seconds later: waited, rode along the streets, maybe reached a stop."""
    accuracy, jitter = _drift_gps(courier, rng)
    courier = msgspec.structs.replace(courier, accuracy_m=accuracy, jitter_m=jitter)
    wait_s = min(courier.wait_s, elapsed_s)
    ride_s = elapsed_s - wait_s
    if ride_s <= 0:
        return msgspec.structs.replace(courier, wait_s=courier.wait_s - wait_s, speed_mps=0.0)

    # Traffic: a little slower or faster than cruising, never above the vehicle's top cruising speed.
    speed = min(CRUISE_MPS[courier.vehicle][1], courier.cruise_mps * rng.uniform(0.85, 1.1))
    segment, along, to_go = courier.segment, courier.along_m, speed * ride_s
    while True:
        (x0, y0), (x1, y1), length = _segment_ends(grid, courier.path, segment)
        heading = round(math.degrees(math.atan2(x1 - x0, y1 - y0)), 1) % 360
        if along + to_go < length:
            return msgspec.structs.replace(
                courier,
                segment=segment,
                along_m=along + to_go,
                wait_s=0.0,
                speed_mps=round(speed, 2),
                heading_deg=heading,
            )
        to_go -= length - along
        segment, along = segment + 1, 0.0
        if segment == len(courier.path) - 1:
            arrived = msgspec.structs.replace(courier, heading_deg=heading)
            return _arrive(arrived, grid, rng)


class WirePing(msgspec.Struct, frozen=True, omit_defaults=True):
    """The JSON object a courier's phone sends (docs/contract.md, "The ping"), fields in wire order."""

    partner_id: str
    ts: int
    lat: float
    lon: float
    speed: float
    heading: float
    accuracy: float
    vehicle: str
    order_id: str | None = None


def wire_ping(courier: Courier, grid: StreetGrid, ts_ms: int) -> WirePing:
    lat, lon = fix_latlon(grid, courier)
    return WirePing(
        courier.partner_id,
        ts_ms,
        lat,
        lon,
        courier.speed_mps,
        courier.heading_deg,
        courier.accuracy_m,
        courier.vehicle,
        courier.order_id,
    )
