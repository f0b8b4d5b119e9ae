"""Zone and status events, decided as a pure fold over each courier's fixes by event time.

A courier's :class:`Courier` state is folded forward by two things only: a fix (:func:`on_fix`) and the
passing of event time with no fix (:func:`advance`). Both return the next state and the events it took,
and neither reads a wall clock, so the same fixes in the same order always give the same events with the
same ids (:func:`event_id`): that is what lets a re-delivered or re-produced decision be recognised as the
same one. :class:`PartitionFold` runs the fold for every courier of one partition, in offset order, with
the partition's event-time clock.

The rules:

- **Event time decides, once.** A fix at or before the courier's ``clock`` (its last fix, or the last
  status change the passing of time decided) changes nothing and makes no event: a late, replayed,
  redelivered or duplicated fix can never produce an event out of order, or one that was already made.
- **Zones.** A courier's confirmed zones change only by a ``zone_exit`` / ``zone_enter``. With a dwell
  (``TRACKER_ZONE_DWELL_S``), a crossing is pending from the first fix on the other side and is confirmed
  by a fix at least the dwell later that still finds the courier there; a fix back on the confirmed side
  first drops it, so a courier weaving along a boundary makes no events. The event carries the time and
  place of the crossing (the first fix on the new side). A new courier enters the zones of its first fix.
  Exits come before enters.
- **Status** (tracker/status.py, the same rule as the map): at a fix a courier is ``online`` or ``idle``
  (by its speed); with no fix it goes ``stale`` at fix time + ``TRACKER_STALE_AFTER_S`` and ``offline`` at
  fix time + ``TRACKER_OFFLINE_AFTER_S``, each a ``status_change`` stamped with that time. A courier with no
  state (new, or forgotten after ``TRACKER_COURIER_TTL_S`` offline) counts as ``offline``, and in no zone,
  before its fix.
"""

from __future__ import annotations

import enum
import hashlib
import heapq
from typing import Annotated

import msgspec

from tracker.models import TS_MS_MAX
from tracker.settings import Settings
from tracker.status import Status, StatusThresholds, courier_status


class EventType(enum.Enum):
    ZONE_ENTER = "zone_enter"
    ZONE_EXIT = "zone_exit"
    STATUS_CHANGE = "status_change"
    # An order's steps (tracker/events/orders.py decides them; the order's id is in ``order_id``).
    ORDER_PICKED_UP = "order_picked_up"
    ORDER_ARRIVING = "order_arriving"
    ORDER_DELIVERED = "order_delivered"


EVENT_TYPES = tuple(kind.value for kind in EventType)
# Statuses travel as their values (str): hashing an Enum member is a Python call, and the fold looks
# statuses up twice per fix.
ONLINE, IDLE, STALE, OFFLINE = (status.value for status in Status)
STATUSES = frozenset((ONLINE, IDLE, STALE, OFFLINE))
NO_ZONES: tuple[str, ...] = ()
NO_CROSSINGS: tuple[Pending, ...] = ()


class Event(msgspec.Struct, frozen=True, gc=False):
    """One event, as produced to ``courier-events`` (JSON, every field present) and served by /api/events.

    ``ts`` is the event time: the crossing fix's time for zone events, the fix's time for a status a fix
    brings, and fix time + threshold for ``stale`` / ``offline``. ``lat``/``lon`` are where the courier was:
    the crossing fix, or its last fix. ``zone`` is set for zone events, ``from``/``to`` for status changes and
    order events (the order's states), ``order_id`` for order events (tracker/events/orders.py).
    """

    id: str
    type: str
    partner_id: str
    ts: int
    zone: str | None
    lat: float
    lon: float
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    order_id: str | None = None


class Fix(msgspec.Struct, frozen=True, gc=False):
    """What the fold needs of a ``courier-positions`` value (tracker.models.Position), checked on decoding."""

    partner_id: Annotated[str, msgspec.Meta(min_length=1)] = msgspec.field(name="id")
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] = 0.0
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] = 0.0
    ts: Annotated[int, msgspec.Meta(ge=0, lt=TS_MS_MAX)] = 0
    speed: Annotated[float, msgspec.Meta(ge=0)] | None = None


class Pending(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A crossing not yet confirmed: the zone, and the time and place of the first fix on the new side."""

    zone: str
    since: int
    lat: float
    lon: float


class Courier(msgspec.Struct, frozen=True, array_like=True):
    """What the fold knows of one courier (stored in Redis as JSON, ``array_like`` to keep it small)."""

    clock: int  # event time decided up to: the last fix, or the last status change time brought
    fix_ts: int
    lat: float
    lon: float
    speed: float | None
    status: str  # a value of tracker.status.Status (STATUSES)
    zones: tuple[str, ...] = ()  # confirmed, sorted
    pending: tuple[Pending, ...] = ()  # sorted by zone


class Params:
    """The fold's settings, and what follows from them: after how long without a fix each status changes,
    and to what (None: the courier is forgotten)."""

    __slots__ = ("dwell_ms", "thresholds", "ttl_ms", "due_after", "next_status")

    def __init__(self, dwell_ms: int = 0, thresholds: StatusThresholds | None = None, ttl_ms: int = 86_400_000) -> None:
        self.dwell_ms = dwell_ms
        self.thresholds = thresholds = thresholds or StatusThresholds()
        self.ttl_ms = ttl_ms  # a courier offline this long past its last fix is forgotten
        stale, offline = thresholds.stale_after_ms, thresholds.offline_after_ms
        moving_to = STALE if stale < offline else OFFLINE
        self.due_after: dict[str, int] = {
            ONLINE: min(stale, offline),
            IDLE: min(stale, offline),
            STALE: offline,
            OFFLINE: max(ttl_ms, offline),
        }
        self.next_status: dict[str, str | None] = {ONLINE: moving_to, IDLE: moving_to, STALE: OFFLINE, OFFLINE: None}

    @classmethod
    def from_settings(cls, settings: Settings) -> Params:
        return cls(
            dwell_ms=round(settings.zone_dwell_s * 1000),
            thresholds=StatusThresholds(
                stale_after_ms=round(settings.stale_after_s * 1000),
                offline_after_ms=round(settings.offline_after_s * 1000),
                idle_below_mps=settings.idle_below_mps,
            ),
            ttl_ms=round(settings.courier_ttl_s * 1000),
        )


def event_id(partner_id: str, kind: str, ts: int, zone: str | None, from_: str | None, to: str | None) -> str:
    """The event's id: a digest of what it is, so the same decision made twice (a crash re-produced it, a
    second worker made it before a fence) has the same id, and whatever stores events keeps it once."""
    text = "\x1f".join((partner_id, kind, str(ts), zone or "", from_ or "", to or ""))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _zone_event(kind: EventType, partner_id: str, crossing: Pending) -> Event:
    return Event(
        event_id(partner_id, kind.value, crossing.since, crossing.zone, None, None),
        kind.value,
        partner_id,
        crossing.since,
        crossing.zone,
        crossing.lat,
        crossing.lon,
    )


def _status_event(partner_id: str, ts: int, lat: float, lon: float, from_: str, to: str) -> Event:
    kind = EventType.STATUS_CHANGE.value
    return Event(event_id(partner_id, kind, ts, None, from_, to), kind, partner_id, ts, None, lat, lon, from_, to)


def deadline(state: Courier, params: Params) -> int:
    """When the passing of time next changes ``state`` (event time, ms): it goes stale, offline, or is
    forgotten once this is strictly before the clock (the map's rule: age > threshold)."""
    return state.fix_ts + params.due_after[state.status]


def advance(partner_id: str, state: Courier, clock: int, params: Params) -> tuple[Courier | None, list[Event]]:
    """Event time has reached ``clock`` with no fix: the status changes whose time is strictly before it.
    None when the courier is forgotten (offline past ``ttl_ms``)."""
    events: list[Event] = []
    while True:
        due = state.fix_ts + params.due_after[state.status]
        if due >= clock:
            return state, events
        to = params.next_status[state.status]
        if to is None:
            return None, events
        events.append(_status_event(partner_id, due, state.lat, state.lon, state.status, to))
        state = msgspec.structs.replace(state, clock=due, status=to)


def _decide_zones(
    partner_id: str,
    confirmed: tuple[str, ...],
    pending: tuple[Pending, ...],
    inside: tuple[str, ...],
    fix: Fix,
    dwell_ms: int,
) -> tuple[tuple[str, ...], tuple[Pending, ...], list[Event]]:
    # The common cases, answered without building sets: nothing crossed; back on the confirmed side of every
    # zone (every pending crossing is dropped); or still across just the pending zones, none of them due.
    if inside == confirmed:
        return confirmed, (), []
    if pending and all(fix.ts - crossing.since < dwell_ms for crossing in pending):
        across = set(inside).symmetric_difference(confirmed)
        if len(across) == len(pending) and all(crossing.zone in across for crossing in pending):
            return confirmed, pending, []
    waiting = {crossing.zone: crossing for crossing in pending}
    zones = set(confirmed)
    still: list[Pending] = []
    exits: list[Event] = []
    enters: list[Event] = []
    for zone in sorted(zones | set(inside) | waiting.keys()):
        now_in = zone in inside
        if now_in == (zone in confirmed):
            continue  # on the confirmed side: a pending crossing, if any, is dropped
        crossing = waiting.get(zone) or Pending(zone, fix.ts, fix.lat, fix.lon)
        if fix.ts - crossing.since < dwell_ms:
            still.append(crossing)
        elif now_in:
            zones.add(zone)
            enters.append(_zone_event(EventType.ZONE_ENTER, partner_id, crossing))
        else:
            zones.discard(zone)
            exits.append(_zone_event(EventType.ZONE_EXIT, partner_id, crossing))
    return tuple(sorted(zones)), tuple(still), exits + enters


def on_fix(held: Courier | None, fix: Fix, inside: tuple[str, ...], params: Params) -> tuple[Courier, list[Event]]:
    """Fold one fix into the courier's state. ``inside``: the zones the fix is in, sorted. Returns ``held``
    itself, and no events, when the fix is at or before the courier's clock."""
    partner_id, ts = fix.partner_id, fix.ts
    state: Courier | None = held
    events: list[Event] = []
    if held is not None:
        if ts <= held.clock:
            return held, events
        if ts > held.fix_ts + params.due_after[held.status]:  # time passed that changed the status before it
            state, events = advance(partner_id, held, ts, params)
    if state is None:
        before, confirmed, pending = OFFLINE, NO_ZONES, NO_CROSSINGS
    else:
        before, confirmed, pending = state.status, state.zones, state.pending
    status: str = courier_status(ts, fix.speed, ts, params.thresholds)._value_  # the value, without .value's cost
    if status != before:
        events.append(_status_event(partner_id, ts, fix.lat, fix.lon, before, status))
    if inside != confirmed or pending:
        confirmed, pending, crossed = _decide_zones(partner_id, confirmed, pending, inside, fix, params.dwell_ms)
        events.extend(crossed)
    return Courier(ts, ts, fix.lat, fix.lon, fix.speed, status, confirmed, pending), events


class PartitionFold:
    """The fold for every courier of one partition, fed in offset order.

    The partition has an event-time ``clock``: the newest fix time it has read, or later when the worker
    moves it on (:meth:`advance_to`, when the partition is quiet). Before each fix, every courier whose
    next status change is strictly before the clock gets it (a heap of deadlines keeps that cheap), so
    the events depend only on the records and where the clock was moved, never on how records were
    batched. ``changes`` collects the states to write back (None: forget the courier).
    """

    def __init__(self, params: Params, couriers: dict[str, Courier] | None = None, clock: int = -1) -> None:
        self.params = params
        self.couriers: dict[str, Courier] = couriers if couriers is not None else {}
        self.clock = clock
        self.changes: dict[str, Courier | None] = {}
        self._due: list[tuple[int, str]] = []  # (deadline, partner_id), at most one live entry per courier
        self._scheduled: dict[str, int] = {}  # partner_id -> its live entry's deadline
        for partner_id, state in self.couriers.items():
            self._schedule(partner_id, state)

    def _schedule(self, partner_id: str, state: Courier) -> None:
        due = deadline(state, self.params)
        held = self._scheduled.get(partner_id)
        if held is None or due < held:
            heapq.heappush(self._due, (due, partner_id))
            self._scheduled[partner_id] = due
        # else: the entry already in the heap is earlier; when it comes up, the real deadline is pushed

    def on_fix(self, fix: Fix, inside: tuple[str, ...]) -> list[Event]:
        # Run for every position read: the calls of advance_to and _schedule are written out here.
        ts, events = fix.ts, None
        if ts > self.clock:
            if self._due and self._due[0][0] < ts:
                events = self.advance_to(ts)
            else:
                self.clock = ts
        partner_id = fix.partner_id
        held = self.couriers.get(partner_id)
        state, more = on_fix(held, fix, inside, self.params)
        if state is not held:
            self.couriers[partner_id] = self.changes[partner_id] = state
            due = state.fix_ts + self.params.due_after[state.status]
            scheduled = self._scheduled.get(partner_id)
            if scheduled is None or due < scheduled:
                heapq.heappush(self._due, (due, partner_id))
                self._scheduled[partner_id] = due
        if events:
            events.extend(more)
            return events
        return more

    def advance_to(self, clock: int) -> list[Event]:
        """Move the clock to ``clock`` (never back) and make the status changes due strictly before it."""
        if clock <= self.clock:
            return []
        self.clock = clock
        events: list[Event] = []
        due, scheduled = self._due, self._scheduled
        while due and due[0][0] < clock:
            when, partner_id = heapq.heappop(due)
            if scheduled.get(partner_id) != when:
                continue  # superseded by an earlier entry, already handled
            del scheduled[partner_id]
            held = self.couriers.get(partner_id)
            if held is None:
                continue
            state, passed = advance(partner_id, held, clock, self.params)
            events.extend(passed)
            if state is None:
                del self.couriers[partner_id]
                self.changes[partner_id] = None
                continue
            if state is not held:
                self.couriers[partner_id] = self.changes[partner_id] = state
            self._schedule(partner_id, state)
        return events

    def take_changes(self) -> dict[str, Courier | None]:
        changes, self.changes = self.changes, {}
        return changes
