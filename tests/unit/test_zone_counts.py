"""Couriers per zone for the map (tracker/zone_counts.py), as the stats frame carries them."""

from __future__ import annotations

from tracker.events.zones import Zones
from tracker.gateway import Gateway
from tracker.geo import load_service_area
from tracker.models import Position
from tracker.settings import Settings
from tracker.status import Status
from tracker.zone_counts import count_by_zone


def test_zone_counts():
    area = load_service_area(None)
    zones = Zones.of_area(area)
    now = 1_800_000_000_000

    def at(lat: float, lon: float) -> Position:
        return Position("c", lat, lon, now, now)

    couriers = [
        (at(12.93, 77.625), Status.ONLINE),  # Koramangala
        (at(12.935, 77.62), Status.STALE),  # Koramangala: it was there a minute ago
        (at(12.931, 77.621), Status.OFFLINE),  # not counted
        (at(12.91, 77.645), Status.IDLE),  # HSR Layout
        (at(13.06, 77.50), Status.ONLINE),  # in no zone
    ]
    counts = count_by_zone(zones, couriers)
    assert set(counts) == {name for name, _ in area.zones}  # every zone, 0 included
    assert counts["Koramangala"] == 2 and counts["HSR Layout"] == 1 and counts["Hebbal"] == 0
    assert count_by_zone(zones, []) == dict.fromkeys(counts, 0)

    gateway = Gateway(Settings(), consume=False)
    gateway.zone_counts = counts
    assert '"zones":{' in gateway.stats_frame() and '"Koramangala":2' in gateway.stats_frame()
