"""Couriers per zone, for the map: how many couriers each zone of the service area holds now.

The gateway counts every courier it knows (not only those in a page's view, which is all a page holds) once
a second, with the same geofences as the zone events (tracker/events/zones.py: one vectorised query for the
lot), and sends the counts in the ``stats`` frame as ``zones``. A courier counts in a zone when its latest
fix is in it and it is not ``offline`` (a stale courier was there a minute ago; an offline one may have gone
home). A fix in overlapping zones counts in each.
"""

from __future__ import annotations

from collections.abc import Iterable

from tracker.events.zones import Zones
from tracker.models import Position
from tracker.status import Status


def count_by_zone(zones: Zones, couriers: Iterable[tuple[Position, Status]]) -> dict[str, int]:
    """Every zone's name -> the couriers (position, status) in it that are not offline (0 for none)."""
    counts = dict.fromkeys(zones.names, 0)
    here = [position for position, status in couriers if status is not Status.OFFLINE]
    if not here or not counts:
        return counts
    for names in zones.containing([p.lat for p in here], [p.lon for p in here]):
        for name in names:
            counts[name] += 1
    return counts
