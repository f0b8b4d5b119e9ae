"""The geofences: which zones of the service area each fix is in, for a whole batch at once.

The zones are the service-area GeoJSON's features with ``properties.kind == "zone"`` (tracker/geo.py; the
map draws the same ones), named by ``properties.name``; features sharing a name are one zone. They may be
many (thousands) and may overlap: an STR-tree over the prepared polygons answers a batch with one
vectorised query (shapely 2, ``STRtree.query(points, predicate="intersects")``), so a point costs about
the same with 10 zones or 10,000 (``make bench``, events). The boundary counts as inside, as for the
service area.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy
import shapely
from shapely.geometry.base import BaseGeometry

from tracker.geo import ServiceArea

NO_ZONE: tuple[str, ...] = ()


class Zones:
    def __init__(self, zones: Sequence[tuple[str, BaseGeometry]]) -> None:
        self.names = [name for name, _ in zones]
        geometries = numpy.array([geometry for _, geometry in zones], dtype=object)
        shapely.prepare(geometries)
        self._tree = shapely.STRtree(geometries) if len(geometries) else None
        # Each distinct set of zones is one shared tuple (couriers' states hold them by the thousand).
        self._interned: dict[tuple[str, ...], tuple[str, ...]] = {NO_ZONE: NO_ZONE}

    @classmethod
    def of_area(cls, area: ServiceArea) -> Zones:
        return cls(area.zones)

    def __len__(self) -> int:
        return len(self.names)

    def containing(self, lats: Sequence[float], lons: Sequence[float]) -> list[tuple[str, ...]]:
        """For each point, the names of the zones it is in (sorted; empty when none)."""
        found: list[tuple[str, ...]] = [NO_ZONE] * len(lats)
        if self._tree is None or not found:
            return found
        points = shapely.points(numpy.asarray(lons, dtype=float), numpy.asarray(lats, dtype=float))
        point_of, zone_of = self._tree.query(points, predicate="intersects")
        names = self.names
        hits: dict[int, list[str]] = {}
        for point, zone in zip(point_of.tolist(), zone_of.tolist(), strict=True):
            hits.setdefault(point, []).append(names[zone])
        interned = self._interned
        for point, inside in hits.items():
            key = tuple(sorted(set(inside))) if len(inside) > 1 else (inside[0],)
            found[point] = interned.setdefault(key, key)
        return found
