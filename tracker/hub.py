"""The gateway's in-memory world and its fan-out to WebSocket clients.

Every courier's latest position is kept once, with its JSON fragment encoded once per change. A tick
turns the set of couriers that changed into frames:

- clients that see everything and kept up get one shared frame, encoded once per tick for all of them;
- clients with a viewport get a frame joined from the same pre-encoded fragments (no per-client encoding of
  couriers, just a join of strings).

A client with a viewport looks only at the couriers near its box. The tick files what changed in bands of
latitude (:func:`band_of`, :data:`BAND_DEG` high), each sorted by longitude: a band wholly inside the box north
to south gives its couriers between the box's west and east edges by two bisections, and only the couriers of
the two bands its north and south edges cross are looked at one by one. So a client costs the bands it spans,
not every courier that changed (1,000 district clients at 20,000 changes a second would otherwise be 20 M
checks a second). Who left the view is found the same way, by where the couriers were: a courier can have left
only from a band it left, or from near the box's edge. The index holds each courier where its fragment has it,
so a snapshot and the deltas after it agree on who was in view.

A client that kept up is owed exactly this tick's changes, kept as they came (the shared frame, or the
fragments of its view in a list to join). One that falls behind has a ``dirty`` set rather than a queue of
frames: the couriers that changed meanwhile pile up in the set and the next frame carries only their latest
state (latest-wins coalescing), so memory per client is bounded by the number of couriers, not by time. A
client whose socket does not drain within ``send_timeout_s`` is closed with 1013 by its writer (see ws.py).
A snapshot is the view as of the last tick: a courier that first appears between two ticks comes with the
next one's delta.

Nothing a client sends makes the hub queue a frame either: a ``viewport`` or ``follow`` message only marks
the client as due a snapshot, built when its writer next asks for a frame, at most once per tick (the first
one, on connect, at once): a burst of view changes costs one snapshot, of the last view, and the deltas of a
client due a snapshot are not sent (the snapshot carries that state). A ``ping`` adds to a count of pongs
owed (at most ``PONGS_OWED_MAX``) and ``stats`` replaces the client's pending stats frame, so a burst of
pings can neither push out the snapshot nor grow memory. A client's next frame is, in this order: its
snapshot, a pong, the latest stats, a delta. A delta's ``server_time_ms`` is the time of the tick whose
changes it carries (the newest, for a client that fell behind), so receive time minus it is how long the
fan-out took to reach that client; a snapshot's is when it was built.

The customers' tracking sockets (``/ws/track/<token>``) are not clients of this kind: each watches one order's
courier, so the hub keeps them apart, indexed by courier (:attr:`Hub.tracking`, tracker/orders/watch.py), and
each tick first hands the watched couriers' newer fixes to them, one frame per order, before (and never held up
by) the dispatchers' deltas.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

import msgspec

from tracker.models import Position, newer_wins
from tracker.orders.link import Link
from tracker.orders.state import Fix, OrderState
from tracker.orders.watch import Tracking, Watcher
from tracker.status import Status, StatusThresholds, courier_status


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Courier(msgspec.Struct, gc=False):
    """One courier in the gateway's world; untracked by the cyclic GC (it holds no containers).

    ``position`` is the latest fix; ``shown`` the one ``fragment`` encodes (as of the last tick, or the
    snapshot that first encoded it) and ``band`` the index band of ``shown`` (-1: not encoded yet)."""

    position: Position
    status: Status
    fragment: str = ""
    shown: Position | None = None
    band: int = -1


class WireCourier(msgspec.Struct, frozen=True, gc=False):
    """A courier as the page sees it."""

    id: str
    lat: float
    lon: float
    ts: int
    speed: float | None
    heading: float | None
    vehicle: str | None
    status: str
    order_id: str | None


_encode = msgspec.json.Encoder().encode


def fragment_of(position: Position, status: Status) -> str:
    return _encode(
        WireCourier(
            position.id,
            position.lat,
            position.lon,
            position.ts,
            position.speed,
            position.heading,
            position.vehicle,
            status.value,
            position.order_id,
        )
    ).decode()


def in_box(position: Position, bbox: tuple[float, float, float, float]) -> bool:
    west, south, east, north = bbox
    return west <= position.lon <= east and south <= position.lat <= north


# -- the bands ---------------------------------------------------------------------------------------------

BAND_DEG = 0.005  # the index files couriers in bands of latitude this high (560 m; a district's view spans ~8)
_PER_DEG = 200  # bands per degree (1 / BAND_DEG)
MAX_LISTED_BANDS = 4096  # a view spanning more bands looks up the bands that changed rather than its own


def band_of(lat: float) -> int:
    """The index band that holds latitude ``lat``."""
    return int((lat + 90.0) * _PER_DEG)


# A changed courier in the tick's index: where it is now, its id and fragment, and where it was if it stayed in
# the same band (NaN if it came from another band or is new: it cannot have left a view from inside this one)
Entry = tuple[float, float, str, str, float, float]
NAN = math.nan


class BandChanges:
    """One band's changes in a tick, sorted by longitude: a view takes the run between its west and east edges
    with two bisections; and the couriers that moved out of the band (``departed``: where they were, their id).

    Of the couriers that stayed in the band, one can have left a view across its west or east edge only if it
    is now within ``drift`` of that edge: the most any of them moved east or west this tick."""

    __slots__ = ("departed", "drift", "fragments", "ids", "lats", "lons", "old_lats", "old_lons")

    def __init__(self, entries: list[Entry], departed: list[tuple[float, float, str]]) -> None:
        entries.sort()
        self.lons = [entry[0] for entry in entries]
        self.lats = [entry[1] for entry in entries]
        self.ids = [entry[2] for entry in entries]
        self.fragments = [entry[3] for entry in entries]
        self.old_lons = [entry[4] for entry in entries]
        self.old_lats = [entry[5] for entry in entries]
        self.departed = departed
        # with a margin for the rounding of ``edge - drift``: the drift only narrows what is checked exactly
        moves = [abs(old - lon) for lon, old in zip(self.lons, self.old_lons, strict=True) if old == old]  # not NaN
        self.drift = max(moves, default=0.0) * 1.000001 + 1e-12


class Changes:
    """What a tick changed in one filtered client's view: the fragments of the couriers in it, their ids, and
    the couriers that left it."""

    __slots__ = ("departed", "fragments", "ids", "left")

    def __init__(self) -> None:
        self.fragments: list[str] = []
        self.ids: list[str] = []
        self.left: list[str] = []  # in the view by where they were, out of it now
        self.departed: list[str] = []  # in the view by where they were, in another band now: in or out of it


class View:
    """A viewport's box and the index bands it spans. The bands strictly between the first and the last lie
    wholly inside it north to south: :func:`band_of` never decreases as latitude grows, so a courier filed in a
    band after the one ``south`` falls in is north of ``south``, and so on. The first and last bands are
    checked courier by courier (even on a band line: rounding may file a point just outside the box in them)."""

    __slots__ = ("bbox", "ends", "first", "inner", "last")

    def __init__(self, bbox: tuple[float, float, float, float]) -> None:
        self.bbox = bbox
        self.first, self.last = band_of(bbox[1]), band_of(bbox[3])
        self.ends = (self.first,) if self.first == self.last else (self.first, self.last)
        # the bands in between, when there are few enough to list
        self.inner = list(range(self.first + 1, self.last)) if self.last - self.first <= MAX_LISTED_BANDS else None

    def contains(self, position: Position) -> bool:
        return in_box(position, self.bbox)

    def _inner(self, by_band: Mapping[int, object]) -> Iterable[int]:
        """The bands in between that ``by_band`` has (or may have): the view's own, or, when ``by_band`` has
        fewer (or the view too many to list), those of ``by_band`` in the span."""
        if self.inner is not None and len(self.inner) <= len(by_band):
            return self.inner
        return [band for band in by_band if self.first < band < self.last]

    def changes(self, by_band: dict[int, BandChanges]) -> Changes:
        """This tick's changes in the box: the couriers in it now, and those that left it (it had them by
        where they were, and has them no longer)."""
        out = Changes()
        fragments, ids, left, departed = out.fragments, out.ids, out.left, out.departed
        west, south, east, north = self.bbox
        get = by_band.get
        for band in self._inner(by_band):
            row = get(band)
            if row is None:
                continue
            lons = row.lons
            first, end = bisect_left(lons, west), bisect_right(lons, east)
            if first < end:
                fragments += row.fragments[first:end]
                ids += row.ids[first:end]
            drift = row.drift
            if (first and lons[first - 1] >= west - drift) or (end < len(lons) and lons[end] <= east + drift):
                # just outside now, having stayed in the band: were they inside?
                low, high = bisect_left(lons, west - drift), bisect_right(lons, east + drift)
                old = row.old_lons
                left += [row.ids[i] for i in (*range(low, first), *range(end, high)) if west <= old[i] <= east]
            for lon, _, courier_id in row.departed:  # a loop: mostly none or one
                if west <= lon <= east:
                    departed.append(courier_id)
        for band in self.ends:  # one look at each courier near the box's longitudes
            row = get(band)
            if row is None:
                continue
            lons, lats, old_lons, old_lats = row.lons, row.lats, row.old_lons, row.old_lats
            for i in range(bisect_left(lons, west - row.drift), bisect_right(lons, east + row.drift)):
                if west <= lons[i] <= east and south <= lats[i] <= north:
                    fragments.append(row.fragments[i])
                    ids.append(row.ids[i])
                elif west <= old_lons[i] <= east and south <= old_lats[i] <= north:
                    left.append(row.ids[i])
            for lon, lat, courier_id in row.departed:
                if west <= lon <= east and south <= lat <= north:
                    departed.append(courier_id)
        return out

    def select(self, bands: dict[int, set[str]], couriers: dict[str, Courier]) -> set[str]:
        """The couriers in the box, of those filed in ``bands`` (by where each one's fragment has it)."""
        west, south, east, north = self.bbox
        inside: set[str] = set()
        for band in (*self._inner(bands), *self.ends):
            for courier_id in bands.get(band, ()):
                shown = couriers[courier_id].shown
                assert shown is not None  # filed in a band: encoded
                if west <= shown.lon <= east and south <= shown.lat <= north:
                    inside.add(courier_id)
        return inside


AGE_SPAN_MS = 10_000  # refresh_statuses files couriers by the span of time of their latest fix: spans this long

PONG_FRAME = '{"type":"pong"}'
PONGS_OWED_MAX = 8  # pings answered beyond this, while the client is not reading, get no pong of their own


class Client:
    """One WebSocket client's view: filter, what it has, what it still needs.

    What it is owed is either this tick's changes as they came (``pending_seq`` is the hub's ``seq``: the
    hub's shared frame, or the frame pieces of its view), sent as they are when the writer asks before the next
    tick; or, once it falls behind, the ``dirty`` set of couriers (their latest fragments go out) and
    ``removed``."""

    def __init__(self, hub: Hub, address: str) -> None:
        self.hub = hub
        self.address = address  # where it connects from (tokens.client_address): the per-address cap counts it
        self.bbox: tuple[float, float, float, float] | None = None
        self.view: View | None = None  # the bbox's bands (None: no bbox, the client sees every courier)
        self.follow: str | None = None
        self.dirty: set[str] = set()
        self.removed: set[str] = set()
        self.pending_seq: int | None = None  # this tick's changes are owed as they came (``pending``)
        self.pending: Changes | None = None  # ... as pieces of its view (None: the shared frame)
        self.snapshot_due = True  # its next frame is a snapshot of its current view (built lazily)
        self.snapshot_tick: int | None = None  # hub.ticks when its last snapshot was built
        self.pongs_owed = 0
        self.stats: str | None = None  # the latest stats frame not yet sent
        self.wake = asyncio.Event()
        # its socket writer (ws.py): when the send in progress began, the task, and whether it was cut off
        self.sending_since: float | None = None
        self.writer: asyncio.Task | None = None
        self.cut_off = False

    @property
    def filtered(self) -> bool:
        """Whether the client sees only some couriers: with no bbox it sees all, whoever it follows."""
        return self.view is not None

    def owes(self) -> bool:
        return self.pending_seq is not None or bool(self.dirty) or bool(self.removed)

    def fall_behind(self, shared_ids: set[str]) -> None:
        """The changes owed as they came go into ``dirty`` (``shared_ids``: those of the shared frame owed)."""
        if self.pending_seq is None:
            return
        if self.pending is None:
            self.dirty |= shared_ids
        else:
            self.dirty.update(self.pending.ids)
        self.pending_seq = None
        self.pending = None

    def reset_view(self) -> None:
        """Viewport or follow changed: the next frame is a snapshot of the view as it is when that frame is
        built (at most one per tick), and no delta goes out before it."""
        self.snapshot_due = True
        self._forget()
        self.wake.set()

    def _forget(self) -> None:
        self.dirty.clear()
        self.removed.clear()
        self.pending_seq = None
        self.pending = None

    def next_frame(self) -> str | None:
        """The frame to send now, or None when there is nothing to send (see the module doc for the order)."""
        hub = self.hub
        if self.snapshot_due:
            if self.snapshot_tick != hub.ticks:
                return self._snapshot()
            hub.snapshot_waiting.add(self)  # one this tick already: the next tick wakes the writer for it
        if self.pongs_owed:
            self.pongs_owed -= 1
            return PONG_FRAME
        if self.stats is not None:
            frame, self.stats = self.stats, None
            return frame
        if self.snapshot_due or not self.owes():
            return None
        pending = self.pending
        if self.pending_seq is not None and not self.dirty and (pending is not None or not self.removed):
            frame = hub.shared_frame() if pending is None else hub.delta_frame(pending.fragments, sorted(self.removed))
        else:
            self.fall_behind(hub.shared_ids)
            couriers = hub.couriers
            fragments = [couriers[i].fragment for i in self.dirty if i in couriers]
            frame = hub.delta_frame(fragments, sorted(self.removed))
        self.dirty = set()
        self.removed = set()
        self.pending_seq = None
        self.pending = None
        return frame

    def _snapshot(self) -> str:
        self.snapshot_due = False
        self.snapshot_tick = self.hub.ticks
        self._forget()
        return self.hub.snapshot_frame(self)


class Hub:
    def __init__(self, thresholds: StatusThresholds | None = None) -> None:
        self.thresholds = thresholds or StatusThresholds()
        self.couriers: dict[str, Courier] = {}
        self.changed: set[str] = set()
        self.bands: dict[int, set[str]] = {}  # index band -> couriers whose fragment has them there
        self.clients: set[Client] = set()
        self.seq = 0  # ticks that changed something: a delta's ``seq``
        self.ticks = 0  # every tick: a client gets at most one snapshot per tick
        self.tick_ms = now_ms()  # when the last tick ran: the ``server_time_ms`` of the deltas it cut
        self.snapshot_waiting: set[Client] = set()  # due a snapshot, but had one this tick already
        self.per_address: collections.Counter[str] = collections.Counter()
        self.shared_ids: set[str] = set()  # what the last tick changed: the shared frame's couriers
        self._shared: str | None = None
        self._everything: str | None = None  # every fragment joined, for snapshots of everything (per tick)
        self.status_counts: collections.Counter[Status] = collections.Counter()
        self._by_age: dict[int, set[str]] = {}  # span (AGE_SPAN_MS) of a courier's latest fix -> couriers
        self._aged_at: int | None = None  # the clock of the last refresh_statuses
        self.ingested = 0
        self.tracking = Tracking()  # the customers' tracking sockets, by courier (tracker/orders/watch.py)

    # -- input ---------------------------------------------------------------------------------------

    def ingest(self, position: Position, now: int | None = None) -> bool:
        """Take ``position`` if it is newer by event time than the one held (models.newer_wins: on an equal
        ``ts`` the held one stays); False when it is not taken."""
        current = self.couriers.get(position.id)
        if current is not None and not newer_wins(current.position.ts, position.ts):
            return False
        status = courier_status(position.ts, position.speed, now or now_ms(), self.thresholds)
        if current is None:
            self.couriers[position.id] = Courier(position, status)
            self.status_counts[status] += 1
            self._file_age(position.id, position.ts, None)
        else:
            self._file_age(position.id, position.ts, current.position.ts)
            current.position = position
            if current.status is not status:
                self.status_counts[current.status] -= 1
                self.status_counts[status] += 1
                current.status = status
        self.changed.add(position.id)
        self.ingested += 1
        return True

    def refresh_statuses(self, now: int | None = None) -> int:
        """Re-derive the statuses from the clock (couriers age without pings); returns how many changed.

        A status changes with time only when a fix's age passes the stale or the offline threshold, so after the
        first call only the couriers whose latest fix falls in a span of time (``_by_age``) that passed a
        threshold since the last call are looked at, not all of them (20,000 statuses a second held up the
        gateway's loop for tens of milliseconds); a courier that pings is in the latest span, not in those. A
        clock that went back, or a gap longer than the offline threshold, re-derives every status."""
        now = now or now_ms()
        last, self._aged_at = self._aged_at, now
        thresholds = self.thresholds
        if last is None or now < last or now - last > thresholds.offline_after_ms:
            candidates: Iterable[str] = list(self.couriers)
        else:
            spans: set[int] = set()
            for threshold in (thresholds.stale_after_ms, thresholds.offline_after_ms):
                # its fix's age passed ``threshold`` since the last call: last - threshold <= ts < now - threshold
                spans.update(range((last - threshold) // AGE_SPAN_MS, (now - threshold) // AGE_SPAN_MS + 1))
            candidates = [i for span in spans for i in self._by_age.get(span, ())]
        flipped = 0
        for courier_id in candidates:
            courier = self.couriers[courier_id]
            status = courier_status(courier.position.ts, courier.position.speed, now, thresholds)
            if status is not courier.status:
                self.status_counts[courier.status] -= 1
                self.status_counts[status] += 1
                courier.status = status
                self.changed.add(courier_id)
                flipped += 1
        return flipped

    def _file_age(self, courier_id: str, ts: int, was: int | None) -> None:
        """File the courier under the span of :data:`AGE_SPAN_MS` its latest fix falls in (``was``: the fix it
        replaces; a courier pinging once a second moves once every ten pings)."""
        span = ts // AGE_SPAN_MS
        if was is not None:
            if was // AGE_SPAN_MS == span:
                return
            self._unfile_age(courier_id, was)
        ids = self._by_age.get(span)
        if ids is None:
            self._by_age[span] = {courier_id}
        else:
            ids.add(courier_id)

    def _unfile_age(self, courier_id: str, ts: int) -> None:
        ids = self._by_age.get(ts // AGE_SPAN_MS)
        if ids is not None:
            ids.discard(courier_id)
            if not ids:
                del self._by_age[ts // AGE_SPAN_MS]

    def expire(self, cutoff_ms: int) -> list[str]:
        """Forget the couriers whose latest fix is older than ``cutoff_ms`` (event time); returns their ids.

        Clients that show them get them in ``removed`` of their next delta. A late fix older than the cut-off
        can bring a courier back until the next call; Redis is swept on the same cut-off (expiry.py).
        """
        expired = [courier_id for courier_id, courier in self.couriers.items() if courier.position.ts < cutoff_ms]
        if not expired:
            return expired
        gone = set(expired)
        shown_at: dict[str, Position] = {}  # where each client's view has them: as the last tick (or snapshot) did
        for courier_id in expired:
            courier = self.couriers.pop(courier_id)
            self.status_counts[courier.status] -= 1
            self._unfile(courier_id, courier.band)
            self._unfile_age(courier_id, courier.position.ts)
            if courier.shown is not None:
                shown_at[courier_id] = courier.shown
        for client in self.clients:
            client.fall_behind(self.shared_ids)  # what it is owed must not name them
        self.changed -= gone
        self._everything = None
        if not self.shared_ids.isdisjoint(gone):
            self.shared_ids = self.shared_ids - gone
            self._shared = None
        for client in self.clients:
            if client.snapshot_due:
                continue  # its snapshot, still to be built, will not name them
            view = client.view
            if view is None:
                shown = gone
            else:
                shown = {i for i, at in shown_at.items() if i == client.follow or view.contains(at)}
            client.dirty -= gone
            if shown:
                client.removed |= shown
                client.wake.set()
        return expired

    # -- the index -----------------------------------------------------------------------------------

    def _encode(self, courier_id: str, courier: Courier) -> None:
        """Encode the courier's fragment and file it in the band of that position."""
        position = courier.position
        courier.fragment = fragment_of(position, courier.status)
        courier.shown = position
        band = band_of(position.lat)
        if band != courier.band:
            self._unfile(courier_id, courier.band)
            ids = self.bands.get(band)
            if ids is None:
                self.bands[band] = {courier_id}
            else:
                ids.add(courier_id)
            courier.band = band

    def _unfile(self, courier_id: str, band: int) -> None:
        ids = self.bands.get(band)
        if ids is not None:
            ids.discard(courier_id)
            if not ids:
                del self.bands[band]

    # -- output --------------------------------------------------------------------------------------

    def tick(self) -> int:
        """Hand this tick's changes to every client; returns how many couriers changed (0 also when the tick is
        left to the next one: :meth:`behind`)."""
        self.ticks += 1
        if self.tracking.by_partner:  # first, and never put off: a customer's frame is one courier's fix
            self.tracking.tick(self.couriers, now_ms())
        for client in self.snapshot_waiting:
            client.wake.set()
        self.snapshot_waiting.clear()
        if not self.changed or self.behind():
            return 0
        self.tick_ms = now_ms()
        changed, self.changed = self.changed, set()
        by_band = self._index(changed)
        self._everything = None
        previous = self.shared_ids
        self.seq += 1
        self.shared_ids = changed
        self._shared = None
        for client in self.clients:
            if client.snapshot_due:
                continue  # its snapshot, still to be built, carries this tick's state
            client.fall_behind(previous)  # it did not take last tick's changes yet: now they coalesce
            view = client.view
            if view is None:
                if client.dirty or client.removed:
                    client.removed -= changed  # gone, and back since: a frame never both sends and removes one
                    client.dirty |= changed
                else:
                    client.pending_seq = self.seq  # the shared frame
            else:
                self._offer(client, view, changed, by_band)
            if client.owes():
                client.wake.set()
        return len(changed)

    def behind(self) -> bool:
        """Whether the writers have not yet reached most clients with the couriers of an earlier tick: the gateway
        is short of CPU. The tick then leaves its changes to the next one, which hands them out together (latest
        wins): an overloaded gateway sends fewer frames of fresh fixes, rather than spending what it lacks on
        frames nobody can take yet. A client whose writer is stuck in a send (its socket is not draining) does not
        count: slow clients never hold up the others' ticks."""
        waiting = 0
        for client in self.clients:
            if client.sending_since is None and (client.pending_seq is not None or client.dirty):
                waiting += 1
        return 2 * waiting > len(self.clients)

    def _index(self, changed: set[str]) -> dict[int, BandChanges]:
        """Encode what changed and file it: this tick's changes by band."""
        couriers = self.couriers
        entries: dict[int, list[Entry]] = {}
        departed: dict[int, list[tuple[float, float, str]]] = {}
        for courier_id in changed:
            courier = couriers[courier_id]
            was, old_band = courier.shown, courier.band
            self._encode(courier_id, courier)
            position = courier.position
            if was is not None and old_band == courier.band:
                entry = (position.lon, position.lat, courier_id, courier.fragment, was.lon, was.lat)
            else:
                entry = (position.lon, position.lat, courier_id, courier.fragment, NAN, NAN)
                if was is not None:
                    departed.setdefault(old_band, []).append((was.lon, was.lat, courier_id))
            in_band = entries.get(courier.band)
            if in_band is None:
                entries[courier.band] = [entry]
            else:
                in_band.append(entry)
        return {
            band: BandChanges(entries.get(band, []), departed.get(band, []))
            for band in entries.keys() | departed.keys()
        }

    def _offer(self, client: Client, view: View, changed: set[str], by_band: dict[int, BandChanges]) -> None:
        """Hand a filtered client what changed in its view, and what left it."""
        changes = view.changes(by_band)
        follow = client.follow
        if follow is not None:
            if follow in changed:
                courier = self.couriers[follow]
                assert courier.shown is not None  # encoded this tick
                if not view.contains(courier.shown):
                    changes.fragments.append(courier.fragment)
                    changes.ids.append(follow)
            for gone in (changes.left, changes.departed):
                if follow in gone:
                    gone.remove(follow)  # out of the box, still followed
        left = changes.left
        if changes.departed:  # it left a band the view spans: it may be in another one the view spans
            couriers = self.couriers
            left += [i for i in changes.departed if not view.contains(couriers[i].shown)]  # type: ignore[arg-type]
        if not changes.ids and not left:
            return
        if client.dirty or client.removed:  # behind: coalesce
            client.dirty.update(changes.ids)
            client.removed.difference_update(changes.ids)
            client.dirty.difference_update(left)
            client.removed.update(left)
        else:
            client.pending_seq = self.seq
            client.pending = changes
            client.removed.update(left)

    def shared_frame(self) -> str:
        if self._shared is None:
            self._shared = self.delta_frame([self.couriers[i].fragment for i in self.shared_ids], [])
        return self._shared

    def delta_frame(self, fragments: list[str], removed: list[str]) -> str:
        return (
            f'{{"type":"delta","seq":{self.seq},"server_time_ms":{self.tick_ms},"couriers":[{",".join(fragments)}],'
            f'"removed":{_encode(removed).decode()}}}'
        )

    def snapshot_frame(self, client: Client) -> str:
        """Every courier in the client's view as of the last tick (one that first appeared since comes with the
        next tick's delta, like every change since)."""
        couriers = self.couriers
        view = client.view
        if view is None:
            if self._everything is None:
                self._everything = ",".join([courier.fragment for courier in couriers.values() if courier.fragment])
            body = self._everything
        else:
            inside = view.select(self.bands, couriers)
            follow = client.follow
            if follow is not None and follow in couriers and couriers[follow].fragment:
                inside.add(follow)
            body = ",".join([couriers[i].fragment for i in inside])
        return f'{{"type":"snapshot","server_time_ms":{now_ms()},"couriers":[{body}]}}'

    def connect(self, address: str = "local") -> Client:
        """A new client, due its first snapshot (built when its writer first asks for a frame)."""
        client = Client(self, address)
        client.wake.set()
        self.clients.add(client)
        self.per_address[address] += 1
        return client

    def disconnect(self, client: Client) -> None:
        if client not in self.clients:
            return
        self.clients.discard(client)
        self.snapshot_waiting.discard(client)
        self.per_address[client.address] -= 1
        if self.per_address[client.address] <= 0:
            del self.per_address[client.address]

    def track(self, link: Link, state: OrderState, address: str, recent: list[Fix], now: int) -> Watcher:
        """A customer's tracking socket on ``link``'s order (tracker/orders/watch.py), owed its first frames
        now; it counts towards its address's cap like a dispatcher's."""
        watcher = self.tracking.watch(link, state, address, self.couriers.get(link.partner_id), recent, now)
        self.per_address[address] += 1
        return watcher

    def untrack(self, watcher: Watcher) -> None:
        if watcher not in self.tracking.watchers:
            return
        self.tracking.unwatch(watcher)
        self.per_address[watcher.address] -= 1
        if self.per_address[watcher.address] <= 0:
            del self.per_address[watcher.address]

    def connections_from(self, address: str) -> int:
        return self.per_address[address]

    # A client's view changes only here: the next frame it gets is a snapshot of the new view (module doc).

    def set_viewport(self, client: Client, bbox: tuple[float, float, float, float] | None) -> None:
        client.bbox = bbox
        client.view = None if bbox is None else View(bbox)
        client.reset_view()

    def set_follow(self, client: Client, partner_id: str | None) -> None:
        client.follow = partner_id
        client.reset_view()

    def pong(self, client: Client) -> None:
        """Answer a ping: a pong ahead of the client's next delta (at most ``PONGS_OWED_MAX`` owed)."""
        client.pongs_owed = min(client.pongs_owed + 1, PONGS_OWED_MAX)
        client.wake.set()

    def broadcast(self, frame: str) -> None:
        """A stats frame for every client, ahead of its next delta; it replaces one not yet sent."""
        for client in self.clients:
            client.stats = frame
            client.wake.set()

    def wire(self, courier_id: str) -> dict | None:
        courier = self.couriers.get(courier_id)
        if courier is None:
            return None
        return msgspec.to_builtins(
            WireCourier(
                courier_id,
                courier.position.lat,
                courier.position.lon,
                courier.position.ts,
                courier.position.speed,
                courier.position.heading,
                courier.position.vehicle,
                courier.status.value,
                courier.position.order_id,
            )
        )

    def counts(self) -> dict[str, int]:
        return {status.value: self.status_counts[status] for status in Status}
