"""Geometry: great-circle distance and the service area (shapely)."""

from __future__ import annotations

import json
import math
from functools import lru_cache
from importlib import resources
from pathlib import Path

import shapely
from shapely.geometry import shape

EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    dphi = phi2 - phi1
    dlmb = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


_INSIDE, _OUTSIDE, _EDGE = 0, 1, 2


class ServiceArea:
    """The polygon pings must fall in, plus named zones for the map.

    ``contains`` runs once per ping, so it answers most points from a raster: the bounding box is cut into
    cells, and a cell wholly inside (or wholly outside) the polygon answers for every point in it. Only
    points in cells the boundary crosses ask shapely (prepared polygon). Exact either way.
    """

    RASTER = 128

    def __init__(self, feature_collection: dict, source: str) -> None:
        self.source = source
        self.geojson = feature_collection
        areas = [
            f
            for f in feature_collection.get("features", [])
            if (f.get("properties") or {}).get("kind", "service_area") == "service_area"
        ]
        if not areas:
            raise ValueError(f"{source}: no feature with properties.kind == 'service_area'")
        self.polygon = shapely.union_all([shape(f["geometry"]) for f in areas])
        if self.polygon.is_empty or self.polygon.area == 0:
            raise ValueError(f"{source}: the service area is empty")
        shapely.prepare(self.polygon)
        self.min_lon, self.min_lat, self.max_lon, self.max_lat = self.polygon.bounds
        self._cells_per_lon = self.RASTER / max(self.max_lon - self.min_lon, 1e-12)
        self._cells_per_lat = self.RASTER / max(self.max_lat - self.min_lat, 1e-12)
        self._raster = self._rasterize()
        self.zones = [
            (f["properties"].get("name", "zone"), shape(f["geometry"]))
            for f in feature_collection["features"]
            if (f.get("properties") or {}).get("kind") == "zone"
        ]

    def _rasterize(self) -> bytes:
        n = self.RASTER
        width = (self.max_lon - self.min_lon) / n
        height = (self.max_lat - self.min_lat) / n
        cells = shapely.box(*_grid(self.min_lon, self.min_lat, width, height, n))
        inside = shapely.contains_properly(self.polygon, cells)
        touches = shapely.intersects(self.polygon, cells)
        return bytes(_INSIDE if i else (_EDGE if t else _OUTSIDE) for i, t in zip(inside, touches, strict=True))

    def contains(self, lat: float, lon: float) -> bool:
        if not (self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon):
            return False
        row = min(int((lat - self.min_lat) * self._cells_per_lat), self.RASTER - 1)
        column = min(int((lon - self.min_lon) * self._cells_per_lon), self.RASTER - 1)
        cell = self._raster[row * self.RASTER + column]
        if cell != _EDGE:
            return cell == _INSIDE
        return bool(shapely.intersects_xy(self.polygon, lon, lat))  # the boundary counts as inside

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north)."""
        return self.min_lon, self.min_lat, self.max_lon, self.max_lat


def _grid(min_x: float, min_y: float, width: float, height: float, n: int):
    """Corner arrays (xmin, ymin, xmax, ymax) of an n×n grid of cells, row by row from the south."""
    import numpy

    rows, columns = numpy.divmod(numpy.arange(n * n), n)
    xmin = min_x + columns * width
    ymin = min_y + rows * height
    return xmin, ymin, xmin + width, ymin + height


BUILTIN = "builtin:bengaluru"


@lru_cache(maxsize=8)
def load_service_area(path: str | None = None) -> ServiceArea:
    """The configured service area file, or the built-in Bengaluru delivery area when ``path`` is None."""
    if path is None:
        text = resources.files("tracker").joinpath("data", "service_area.geojson").read_text("utf-8")
        return ServiceArea(json.loads(text), BUILTIN)
    try:
        data = json.loads(Path(path).read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"service area file {path!r}: {exc}") from None
    if data.get("type") == "Feature":
        data = {"type": "FeatureCollection", "features": [data]}
    elif data.get("type") in ("Polygon", "MultiPolygon"):
        data = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": data}]}
    return ServiceArea(data, path)
