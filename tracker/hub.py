"""The gateway's in-memory world and its fan-out to WebSocket clients.

Every courier's latest position is kept once, with its JSON fragment encoded once per change. A tick
turns the set of couriers that changed into frames:

- clients that see everything and kept up get one shared frame, encoded once per tick for all of them;
- clients with a viewport get a frame joined from the same pre-encoded fragments (no per-client encoding of
  couriers, just a join of strings).

A client with a viewport gets the couriers in the cells of the index its box touches. The tick files what
changed in cells :data:`CELL_DEG` on a side (:func:`band_of`, :func:`column_of`: ~560 m), and joins each
changed cell's fragments once into a piece; a band of cells keeps its changed columns sorted, so a client takes
the run of pieces between its box's west and east columns by two bisections per band its box spans, and its
frame is those pieces joined. So a client costs the bands it spans, not every courier that changed (1,000
district clients at 20,000 changes a second would otherwise be 20 M checks a second), and no courier is
looked at per client: a viewport is widened to whole cells, at most one cell (~560 m) around the box, a margin
the page pads its box with anyway. Who left the view is found from the couriers that changed cell: a courier
leaves a view only for a cell the view does not cover. The index holds each courier where its fragment has
it, so a snapshot and the deltas after it agree on who was in view.

A client that kept up is owed exactly this tick's changes, kept as they came (the shared frame, or the
pieces of its view in a list to join). One that falls behind has a ``dirty`` set rather than a queue of
frames: the couriers that changed meanwhile pile up in the set and the next frame carries only their latest
state (latest-wins coalescing), so memory per client is bounded by the number of couriers, not by time. A
client whose socket does not drain within ``send_timeout_s`` is closed with 1013 by its writer (see ws.py).
A snapshot is the view as of the last tick: a courier that first appears between two ticks comes with the
next one's delta.

Nothing a client sends makes the hub queue a frame either: a ``viewport`` or ``follow`` message only marks
the client as due a snapshot, built when its writer next asks for a frame, at most once per tick (the first
one, on connect, at the next tick unless the client's view comes first): a burst of view changes costs one
snapshot, of the last view, and the deltas of a client due a snapshot are not sent (the snapshot carries that
state). A ``ping`` adds to a count of pongs
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

    ``position`` is the latest fix; ``fragment`` encodes the fix of the last tick that saw it change, and
    ``band`` and ``column`` are that fix's index cell (-1: not encoded yet)."""

    position: Position
    status: Status
    fragment: str = ""
    band: int = -1
    column: int = -1


class WireCourier(msgspec.Struct, frozen=True, gc=False):
    """A courier as the page sees it."""

    id: str
    lat: float
    lon: float
    ts: int
    speed: float | None
    heading: float | None
    vehicle: str | None
    status: Status
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
            status,
            position.order_id,
        )
    ).decode()


# -- the cells ---------------------------------------------------------------------------------------------

CELL_DEG = 0.005  # the index files couriers in cells this many degrees on a side (560 m north to south)
_PER_DEG = 200  # cells per degree (1 / CELL_DEG)
MAX_LISTED_BANDS = 4096  # a view spanning more bands looks up the bands that changed rather than its own


def band_of(lat: float) -> int:
    """The index's band (row of cells) that holds latitude ``lat``; never decreases as ``lat`` grows (IEEE
    addition and multiplication round monotonically), so a box's couriers are in its bands' span."""
    return int((lat + 90.0) * _PER_DEG)


def column_of(lon: float) -> int:
    """The index's column that holds longitude ``lon`` (as :func:`band_of`)."""
    return int((lon + 180.0) * _PER_DEG)


# A courier that changed cell in the tick: the column it left (in the band of the row that keeps it), its id,
# and the band and column it is in now
Move = tuple[int, str, int, int]


class Row:
    """One band's changes in a tick: the columns of its cells that changed, sorted, each cell's fragments
    joined once (``pieces``: every view spanning the cell takes the piece as it is) and their ids; and the
    couriers that left a cell of the band for another cell (``moves``, sorted by the column they left)."""

    __slots__ = ("columns", "ids", "move_columns", "moves", "pieces")

    def __init__(self, cells: dict[int, tuple[list[str], list[str]]], moves: list[Move]) -> None:
        self.columns = sorted(cells)
        self.pieces = [",".join(cells[column][0]) for column in self.columns]
        self.ids = [cells[column][1] for column in self.columns]
        moves.sort()
        self.moves = moves
        self.move_columns = [move[0] for move in moves]


class Changes:
    """What a tick changed in one filtered client's view: the pieces of the cells it covers (and the followed
    courier's fragment when it is outside them), where their ids are, and the couriers that left it."""

    __slots__ = ("followed", "left", "pieces", "spans")

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.spans: list[tuple[Row, int, int]] = []  # the ids of ``pieces``: a row's cells i to j
        self.followed: str | None = None  # the last piece is this courier's fragment
        self.left: list[str] = []  # in the view by where they were, out of it now

    def ids(self) -> list[str]:
        out = [courier_id for row, i, j in self.spans for ids in row.ids[i:j] for courier_id in ids]
        if self.followed is not None:
            out.append(self.followed)
        return out


class View:
    """A viewport's box and the cells it touches: the bands from the one its south edge is in to the one its
    north edge is in, and in each the columns from its west edge's to its east edge's."""

    __slots__ = ("east", "first", "last", "listed", "west")

    def __init__(self, bbox: tuple[float, float, float, float]) -> None:
        self.first, self.last = band_of(bbox[1]), band_of(bbox[3])
        self.west, self.east = column_of(bbox[0]), column_of(bbox[2])
        # its bands, when there are few enough to list
        self.listed = range(self.first, self.last + 1) if self.last - self.first < MAX_LISTED_BANDS else None

    def covers(self, band: int, column: int) -> bool:
        return self.first <= band <= self.last and self.west <= column <= self.east

    def _bands(self, by_band: Mapping[int, object]) -> Iterable[int]:
        """Its bands that ``by_band`` has (or may have): its own, or, when ``by_band`` has fewer (or the view
        too many to list), those of ``by_band`` in its span."""
        if self.listed is not None and len(self.listed) <= len(by_band):
            return self.listed
        return [band for band in by_band if self.first <= band <= self.last]

    def changes(self, by_band: dict[int, Row]) -> Changes:
        """This tick's changes in the view: the pieces of its cells, and who left them for a cell outside."""
        out = Changes()
        pieces, spans, left = out.pieces, out.spans, out.left
        first, last, west, east = self.first, self.last, self.west, self.east
        get = by_band.get
        for band in self._bands(by_band):
            row = get(band)
            if row is None:
                continue
            columns = row.columns
            i, j = bisect_left(columns, west), bisect_right(columns, east)
            if i < j:
                pieces += row.pieces[i:j]
                spans.append((row, i, j))
            if row.moves:
                moves, move_columns = row.moves, row.move_columns
                for k in range(bisect_left(move_columns, west), bisect_right(move_columns, east)):
                    _, courier_id, band_now, column_now = moves[k]
                    if not (first <= band_now <= last and west <= column_now <= east):
                        left.append(courier_id)
        return out

    def select(self, cells: dict[int, dict[int, set[str]]]) -> set[str]:
        """The couriers filed in the cells it covers."""
        west, east = self.west, self.east
        inside: set[str] = set()
        for band in self._bands(cells):
            for column, ids in cells.get(band, {}).items():
                if west <= column <= east:
                    inside |= ids
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
            self.dirty.update(self.pending.ids())
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
            frame = hub.shared_frame() if pending is None else hub.delta_frame(pending.pieces, sorted(self.removed))
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
        self.cells: dict[int, dict[int, set[str]]] = {}  # band -> column -> the couriers whose fragment is there
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
        shown_at: dict[str, tuple[int, int]] = {}  # the cell each client's view has them in (the last tick's)
        for courier_id in expired:
            courier = self.couriers.pop(courier_id)
            self.status_counts[courier.status] -= 1
            self._unfile(courier_id, courier.band, courier.column)
            self._unfile_age(courier_id, courier.position.ts)
            if courier.band != -1:  # encoded: in the views of its cell
                shown_at[courier_id] = (courier.band, courier.column)
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
                shown = {i for i, at in shown_at.items() if i == client.follow or view.covers(*at)}
            client.dirty -= gone
            if shown:
                client.removed |= shown
                client.wake.set()
        return expired

    # -- the index -----------------------------------------------------------------------------------

    def _unfile(self, courier_id: str, band: int, column: int) -> None:
        row = self.cells.get(band)
        if row is None:
            return
        ids = row.get(column)
        if ids is not None:
            ids.discard(courier_id)
            if not ids:
                del row[column]
                if not row:
                    del self.cells[band]

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

    def _index(self, changed: set[str]) -> dict[int, Row]:
        """Encode what changed and file it: this tick's changes by band. (:meth:`_encode`, inlined: this loop
        runs for every position the gateway follows, 20,000 a second in the fan-out bench.)"""
        couriers = self.couriers
        cells: dict[int, dict[int, tuple[list[str], list[str]]]] = {}
        moves: dict[int, list[Move]] = {}
        filed = self.cells
        for courier_id in changed:
            courier = couriers[courier_id]
            position = courier.position
            courier.fragment = fragment = fragment_of(position, courier.status)
            band, column = band_of(position.lat), column_of(position.lon)
            was_band, was_column = courier.band, courier.column
            if band != was_band or column != was_column:  # into another cell (or the first): file it there
                self._unfile(courier_id, was_band, was_column)
                row_filed = filed.get(band)
                if row_filed is None:
                    filed[band] = {column: {courier_id}}
                elif (ids := row_filed.get(column)) is None:
                    row_filed[column] = {courier_id}
                else:
                    ids.add(courier_id)
                courier.band, courier.column = band, column
                if was_band != -1:
                    moves.setdefault(was_band, []).append((was_column, courier_id, band, column))
            row = cells.get(band)
            if row is None:
                cells[band] = {column: ([fragment], [courier_id])}
            elif (cell := row.get(column)) is None:
                row[column] = ([fragment], [courier_id])
            else:
                cell[0].append(fragment)
                cell[1].append(courier_id)
        return {band: Row(cells.get(band, {}), moves.get(band, [])) for band in cells.keys() | moves.keys()}

    def _offer(self, client: Client, view: View, changed: set[str], by_band: dict[int, Row]) -> None:
        """Hand a filtered client what changed in its view, and what left it."""
        changes = view.changes(by_band)
        left = changes.left
        follow = client.follow
        if follow is not None:
            if follow in changed:
                courier = self.couriers[follow]
                if not view.covers(courier.band, courier.column):
                    changes.pieces.append(courier.fragment)
                    changes.followed = follow
            if follow in left:
                left.remove(follow)  # out of the view, still followed
        if not changes.pieces and not left:
            return
        if client.dirty or client.removed:  # behind: coalesce
            ids = changes.ids()
            client.dirty.update(ids)
            client.removed.difference_update(ids)
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
            inside = view.select(self.cells)
            follow = client.follow
            if follow is not None and follow in couriers and couriers[follow].fragment:
                inside.add(follow)
            body = ",".join([couriers[i].fragment for i in inside])
        return f'{{"type":"snapshot","server_time_ms":{now_ms()},"couriers":[{body}]}}'

    def connect(self, address: str = "local") -> Client:
        """A new client, due its first snapshot: built at the next tick, or at once when the client sends its
        view first (a page sends it on open): 1,000 pages reconnecting to a restarted gateway would otherwise
        each be sent every courier (3.4 MB at 20,000) before the view they asked for."""
        client = Client(self, address)
        self.snapshot_waiting.add(client)
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
                courier.status,
                courier.position.order_id,
            )
        )

    def counts(self) -> dict[str, int]:
        return {status.value: self.status_counts[status] for status in Status}
