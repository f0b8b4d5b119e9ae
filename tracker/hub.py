"""The gateway's in-memory world and its fan-out to WebSocket clients.

Every courier's latest position is kept once, with its JSON fragment encoded once per change. A tick
turns the set of couriers that changed into frames:

- clients that see everything and kept up get one shared frame, encoded once per tick for all of them;
- clients with a viewport or a followed courier get a frame joined from the same pre-encoded fragments
  (no per-client encoding of couriers, just a join of strings).

Each client has a ``dirty`` set rather than a queue of frames: if it falls behind, the couriers that
changed meanwhile pile up in the set and the next frame carries only their latest state (latest-wins
coalescing), so memory per client is bounded by the number of couriers, not by time. A client whose
socket does not drain within ``send_timeout_s`` is closed with 1013 by its writer (see ws.py).

Nothing a client sends makes the hub queue a frame either: a ``viewport`` or ``follow`` message only marks
the client as due a snapshot, built when its writer next asks for a frame, at most once per tick (the first
one, on connect, at once): a burst of view changes costs one snapshot, of the last view, and the deltas of a
client due a snapshot are not sent (the snapshot carries that state). A ``ping`` adds to a count of pongs
owed (at most ``PONGS_OWED_MAX``) and ``stats`` replaces the client's pending stats frame, so a burst of
pings can neither push out the snapshot nor grow memory. A client's next frame is, in this order: its
snapshot, a pong, the latest stats, a delta.
"""

from __future__ import annotations

import asyncio
import collections
import time

import msgspec

from tracker.models import Position, newer_wins
from tracker.status import Status, StatusThresholds, courier_status


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Courier(msgspec.Struct, gc=False):
    """One courier in the gateway's world; untracked by the cyclic GC (it holds no containers)."""

    position: Position
    status: Status
    fragment: str


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


PONG_FRAME = '{"type":"pong"}'
PONGS_OWED_MAX = 8  # pings answered beyond this, while the client is not reading, get no pong of their own


class Client:
    """One WebSocket client's view: filter, what it has, what it still needs."""

    def __init__(self, hub: Hub, address: str) -> None:
        self.hub = hub
        self.address = address  # where it connects from (tokens.client_address): the per-address cap counts it
        self.bbox: tuple[float, float, float, float] | None = None
        self.follow: str | None = None
        self.visible: set[str] = set()  # couriers the client currently shows (only tracked with a bbox)
        self.dirty: set[str] = set()
        self.removed: set[str] = set()
        self.shared_seq: int | None = None  # this tick's shared frame fits this client exactly
        self.snapshot_due = True  # its next frame is a snapshot of its current view (built lazily)
        self.snapshot_tick: int | None = None  # hub.ticks when its last snapshot was built
        self.pongs_owed = 0
        self.stats: str | None = None  # the latest stats frame not yet sent
        self.wake = asyncio.Event()

    @property
    def filtered(self) -> bool:
        return self.bbox is not None or self.follow is not None

    def wants(self, courier_id: str, position: Position) -> bool:
        return courier_id == self.follow or self.bbox is None or in_box(position, self.bbox)

    def reset_view(self) -> None:
        """Viewport or follow changed: the next frame is a snapshot of the view as it is when that frame is
        built (at most one per tick), and no delta goes out before it."""
        self.snapshot_due = True
        self.dirty.clear()
        self.removed.clear()
        self.shared_seq = None
        self.wake.set()

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
        if self.snapshot_due or (not self.dirty and not self.removed):
            return None
        if self.shared_seq == hub.seq and hub.shared_ids == self.dirty and not self.removed:
            frame = hub.shared_frame()
        else:
            fragments = [hub.couriers[i].fragment for i in self.dirty if i in hub.couriers]
            frame = hub.delta_frame(fragments, sorted(self.removed))
        self.dirty = set()
        self.removed = set()
        self.shared_seq = None
        return frame

    def _snapshot(self) -> str:
        self.snapshot_due = False
        self.snapshot_tick = self.hub.ticks
        self.dirty.clear()
        self.removed.clear()
        self.shared_seq = None
        return self.hub.snapshot_frame(self)


class Hub:
    def __init__(self, thresholds: StatusThresholds | None = None) -> None:
        self.thresholds = thresholds or StatusThresholds()
        self.couriers: dict[str, Courier] = {}
        self.changed: set[str] = set()
        self.clients: set[Client] = set()
        self.seq = 0  # ticks that changed something: a delta's ``seq``
        self.ticks = 0  # every tick: a client gets at most one snapshot per tick
        self.snapshot_waiting: set[Client] = set()  # due a snapshot, but had one this tick already
        self.per_address: collections.Counter[str] = collections.Counter()
        self.shared_ids: set[str] = set()
        self._shared: str | None = None
        self.status_counts: collections.Counter[Status] = collections.Counter()
        self.ingested = 0

    # -- input ---------------------------------------------------------------------------------------

    def ingest(self, position: Position, now: int | None = None) -> bool:
        """Take ``position`` if it is newer by event time than the one held (models.newer_wins: on an equal
        ``ts`` the held one stays); False when it is not taken."""
        current = self.couriers.get(position.id)
        if current is not None and not newer_wins(current.position.ts, position.ts):
            return False
        status = courier_status(position.ts, position.speed, now or now_ms(), self.thresholds)
        if current is None:
            self.couriers[position.id] = Courier(position, status, "")
            self.status_counts[status] += 1
        else:
            current.position = position
            if current.status is not status:
                self.status_counts[current.status] -= 1
                self.status_counts[status] += 1
                current.status = status
        self.changed.add(position.id)
        self.ingested += 1
        return True

    def refresh_statuses(self, now: int | None = None) -> int:
        """Re-derive every status from the clock (couriers age without pings); returns how many changed."""
        now = now or now_ms()
        flipped = 0
        for courier_id, courier in self.couriers.items():
            status = courier_status(courier.position.ts, courier.position.speed, now, self.thresholds)
            if status is not courier.status:
                self.status_counts[courier.status] -= 1
                self.status_counts[status] += 1
                courier.status = status
                self.changed.add(courier_id)
                flipped += 1
        return flipped

    def expire(self, cutoff_ms: int) -> list[str]:
        """Forget the couriers whose latest fix is older than ``cutoff_ms`` (event time); returns their ids.

        Clients that show them get them in ``removed`` of their next delta. A late fix older than the cut-off
        can bring a courier back until the next call; Redis is swept on the same cut-off (expiry.py).
        """
        expired = [courier_id for courier_id, courier in self.couriers.items() if courier.position.ts < cutoff_ms]
        if not expired:
            return expired
        gone = set(expired)
        for courier_id in expired:
            self.status_counts[self.couriers.pop(courier_id).status] -= 1
        self.changed -= gone
        if not self.shared_ids.isdisjoint(gone):
            # the shared frame of this tick must not name a courier that no longer exists
            self.shared_ids = self.shared_ids - gone
            self._shared = None
        for client in self.clients:
            if client.snapshot_due:
                continue  # its snapshot, still to be built, will not name them
            shown = (client.visible & gone) if client.filtered else gone
            client.visible -= gone
            client.dirty -= gone
            if shown:
                client.removed |= shown
                client.wake.set()
        return expired

    # -- output --------------------------------------------------------------------------------------

    def tick(self) -> int:
        """Hand this tick's changes to every client; returns how many couriers changed."""
        self.ticks += 1
        for client in self.snapshot_waiting:
            client.wake.set()
        self.snapshot_waiting.clear()
        changed, self.changed = self.changed, set()
        if not changed:
            return 0
        for courier_id in changed:
            courier = self.couriers[courier_id]
            courier.fragment = fragment_of(courier.position, courier.status)
        self.seq += 1
        self.shared_ids = changed
        self._shared = None
        for client in self.clients:
            if client.snapshot_due:
                continue  # its snapshot, still to be built, carries this tick's state
            if not client.filtered:
                if not client.dirty and not client.removed:
                    client.shared_seq = self.seq
                client.dirty |= changed
            else:
                self._offer_filtered(client, changed)
            if client.dirty or client.removed:
                client.wake.set()
        return len(changed)

    def _offer_filtered(self, client: Client, changed: set[str]) -> None:
        for courier_id in changed:
            position = self.couriers[courier_id].position
            if client.wants(courier_id, position):
                client.dirty.add(courier_id)
                client.visible.add(courier_id)
                client.removed.discard(courier_id)
            elif courier_id in client.visible:
                client.visible.discard(courier_id)
                client.dirty.discard(courier_id)
                client.removed.add(courier_id)

    def shared_frame(self) -> str:
        if self._shared is None:
            self._shared = self.delta_frame([self.couriers[i].fragment for i in self.shared_ids], [])
        return self._shared

    def delta_frame(self, fragments: list[str], removed: list[str]) -> str:
        return (
            f'{{"type":"delta","seq":{self.seq},"server_time_ms":{now_ms()},"couriers":[{",".join(fragments)}],'
            f'"removed":{_encode(removed).decode()}}}'
        )

    def snapshot_frame(self, client: Client) -> str:
        fragments = []
        visible = set()
        for courier_id, courier in self.couriers.items():
            if client.wants(courier_id, courier.position):
                if not courier.fragment:
                    courier.fragment = fragment_of(courier.position, courier.status)
                fragments.append(courier.fragment)
                visible.add(courier_id)
        client.visible = visible if client.filtered else set()
        return f'{{"type":"snapshot","server_time_ms":{now_ms()},"couriers":[{",".join(fragments)}]}}'

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

    def connections_from(self, address: str) -> int:
        return self.per_address[address]

    # A client's view changes only here: the next frame it gets is a snapshot of the new view (module doc).

    def set_viewport(self, client: Client, bbox: tuple[float, float, float, float] | None) -> None:
        client.bbox = bbox
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
