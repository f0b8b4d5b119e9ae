"""The geofences: which zones of the service area each fix is in, for a whole batch at once.

The zones are the service-area GeoJSON's features with ``properties.kind == "zone"`` (tracker/geo.py; the
map draws the same ones), named by ``properties.name``; features sharing a name are one zone. They may be
many (thousands) and may overlap. The boundary counts as inside, as for the service area.

A batch is answered in two vectorised steps (``make bench``, events). First a raster, as for the service
area (tracker/geo.py): the zones' bounding box is cut into cells, and a cell that no zone boundary crosses
answers for every point in it, from a numpy lookup. Points in the other cells (and on a cell's edge) go to
an STR-tree over the prepared polygons, in one query for the batch (shapely 2,
``STRtree.query(points, predicate="intersects")``). Exact either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy
import shapely
from shapely.geometry.base import BaseGeometry

from tracker.geo import ServiceArea

NO_ZONE: tuple[str, ...] = ()
RASTER_MAX = 512  # cells per side at most (a quarter of a million cells; built in about a second)
RASTER_PER_ZONE = 8  # cells per side for each zone along a side, about
_EXACT = -1  # a cell a zone boundary crosses: its points are asked of the tree
_EDGE = 1e-9  # a point this close to a cell's edge (in cells) is asked of the tree too


class Zones:
    def __init__(self, zones: Sequence[tuple[str, BaseGeometry]]) -> None:
        self.names = [name for name, _ in zones]
        geometries = numpy.array([geometry for _, geometry in zones], dtype=object)
        shapely.prepare(geometries)
        self._tree = shapely.STRtree(geometries) if len(geometries) else None
        # Each distinct set of zones is one shared tuple (couriers' states hold them by the thousand).
        self._interned: dict[tuple[str, ...], tuple[str, ...]] = {NO_ZONE: NO_ZONE}
        self._sets: list[tuple[str, ...]] = [NO_ZONE]  # what a clean cell answers, by code
        self._codes = numpy.zeros(0, dtype=numpy.int32)
        self._side = 0
        if self._tree is not None:
            self._rasterize(geometries)

    @classmethod
    def of_area(cls, area: ServiceArea) -> Zones:
        return cls(area.zones)

    def __len__(self) -> int:
        return len(self.names)

    def _intern(self, zones: tuple[str, ...]) -> tuple[str, ...]:
        return self._interned.setdefault(zones, zones)

    def _rasterize(self, geometries: numpy.ndarray) -> None:
        assert self._tree is not None
        side = min(RASTER_MAX, max(16, math.ceil(math.sqrt(len(geometries)) * RASTER_PER_ZONE)))
        west, south, east, north = (float(v) for v in shapely.total_bounds(geometries))
        width, height = max(east - west, 1e-12) / side, max(north - south, 1e-12) / side
        rows, columns = numpy.divmod(numpy.arange(side * side), side)
        cells = shapely.box(
            west + columns * width, south + rows * height, west + (columns + 1) * width, south + (rows + 1) * height
        )
        touching_cell, _ = self._tree.query(cells, predicate="intersects")
        within_cell, within_zone = self._tree.query(cells, predicate="within")
        touching = numpy.bincount(touching_cell, minlength=side * side)
        containing = numpy.bincount(within_cell, minlength=side * side)
        # A cell is clean when every zone that touches it contains it: then its points are in exactly those.
        codes = numpy.where(touching == containing, 0, _EXACT).astype(numpy.int32)
        in_cell: dict[int, list[str]] = {}
        for cell, zone in zip(within_cell.tolist(), within_zone.tolist(), strict=True):
            if codes[cell] == 0:
                in_cell.setdefault(cell, []).append(self.names[zone])
        index = {NO_ZONE: 0}
        for cell, names in in_cell.items():
            zones = self._intern(tuple(sorted(set(names))))
            if zones not in index:
                index[zones] = len(self._sets)
                self._sets.append(zones)
            codes[cell] = index[zones]
        self._codes, self._side = codes, side
        self._west, self._south, self._east, self._north = west, south, east, north
        self._per_lon, self._per_lat = 1 / width, 1 / height

    def containing(self, lats: Sequence[float], lons: Sequence[float]) -> list[tuple[str, ...]]:
        """For each point, the names of the zones it is in (sorted; empty when none)."""
        if self._tree is None or not len(lats):
            return [NO_ZONE] * len(lats)
        x, y = numpy.asarray(lons, dtype=float), numpy.asarray(lats, dtype=float)
        side = self._side
        column, row = (x - self._west) * self._per_lon, (y - self._south) * self._per_lat
        inside = (x >= self._west) & (x <= self._east) & (y >= self._south) & (y <= self._north)
        cell = numpy.clip(row.astype(numpy.int64), 0, side - 1) * side + numpy.clip(
            column.astype(numpy.int64), 0, side - 1
        )
        codes = numpy.where(inside, self._codes[cell], 0)
        near_edge = (numpy.abs(column - numpy.rint(column)) < _EDGE) | (numpy.abs(row - numpy.rint(row)) < _EDGE)
        codes[inside & near_edge] = _EXACT
        sets = self._sets
        found = [sets[code] for code in codes.tolist()]  # _EXACT reads the last set: replaced below
        exact = numpy.flatnonzero(codes == _EXACT)
        if exact.size:
            for at in exact.tolist():
                found[at] = NO_ZONE
            points = shapely.points(x[exact], y[exact])
            point_of, zone_of = self._tree.query(points, predicate="intersects")
            names = self.names
            for point, zone in zip(exact[point_of].tolist(), zone_of.tolist(), strict=True):
                held = found[point]
                found[point] = self._intern((names[zone],) if held is NO_ZONE else tuple(sorted({*held, names[zone]})))
        return found
