"""The tracking sockets' fan-out: the gateway's index of who watches which courier, driven by the hub's tick.

The biggest fan-out the product has: every customer with an order in flight watches one courier. So the
index is by courier (:attr:`Tracking.by_partner`: partner id -> the courier's :class:`Followed`, whose
``watches`` are its orders being watched, each with the sockets watching it), and each tick looks only at
the couriers someone watches: for a courier with a fix newer than the last one shown, each of its watched
orders gets one frame, encoded once (coarsening and the ETA are per order; a courier carries few orders at
a time), and every socket watching that order is handed the same string. Per socket that is an assignment
and a wake-up; its writer sends the string. Nothing else is per socket: no filter, no view, no encoding.

A socket's frame is latest-wins: one that has not taken the last courier frame when the next is made gets
only the newer one (memory per socket is one frame). Order frames (a state change) are queued ahead of it,
never dropped. A delivered order gets its order frame and then the socket is closed (1000, "delivered");
no courier frame is made for it again. A revoked or expired link closes its sockets with 1008 and the
refusal's text. The states come from Redis about once a second (:meth:`Tracking.update`), as the events
worker stored them, so the page and ``courier-events`` never disagree.

Sockets are cut off when their sends stall by the same rule as the dispatchers' (ws.cut_off_stalled: a
:class:`Watcher` has the attributes it reads), and count towards the same per-address cap (hub.py).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable, Mapping
from typing import Protocol

import msgspec

from tracker.geo import haversine_m
from tracker.models import Position
from tracker.orders.link import Link, LinkError
from tracker.orders.state import (
    MIN_SPAN_MS,
    MIN_SPEED_MPS,
    RECENT_FIXES,
    RECENT_S,
    Fix,
    OrderState,
    coarsen,
    eta_s,
    read_stored,
    target,
)

DELIVERED_CLOSE = (1000, "delivered")
REFUSED_CODE = 1008


class HasPosition(Protocol):
    position: Position


class CourierObject(msgspec.Struct, frozen=True):
    """The contract's courier object (docs/contract.md, "Tracking links")."""

    lat: float
    lon: float
    ts: int
    speed: float | None
    heading: float | None
    coarse: bool
    distance_m: int
    eta_s: int | None
    server_ts: int


_encode = msgspec.json.Encoder().encode


def courier_object(
    link: Link, state: OrderState, position: Position, speed: float | None, coarsen_m: float, now_ms: int
) -> CourierObject:
    """What the customer of ``link``'s order may see of its courier at ``position``: before pickup (with
    ``coarsen_m`` > 0) only the cell of a ``coarsen_m`` grid it is in, no heading, and the distance and
    ETA from that cell; after, the fix. The distance is to the pickup point while ``to_pickup``."""
    coarse = state is OrderState.TO_PICKUP and coarsen_m > 0
    lat, lon = coarsen(position.lat, position.lon, coarsen_m) if coarse else (position.lat, position.lon)
    distance = haversine_m(lat, lon, *target(state, link.pickup, link.dropoff))
    return CourierObject(
        lat,
        lon,
        position.ts,
        position.speed,
        None if coarse else position.heading,
        coarse,
        round(distance),
        eta_s(distance, speed),
        now_ms,
    )


def courier_frame(obj: CourierObject) -> str:
    """The socket frame of a courier object: ``{"type":"courier",...}``."""
    return '{"type":"courier",' + _encode(obj).decode()[1:]


def order_frame(order: dict) -> str:
    return _encode({"type": "order", **order}).decode()


class Watcher:
    """One tracking socket: what it is owed (order frames in order, then the latest courier frame), and its
    writer's state as ws.cut_off_stalled reads it."""

    __slots__ = ("address", "closing", "cut_off", "frame", "order_frames", "sending_since", "wake", "watch", "writer")

    def __init__(self, watch: Watch, address: str) -> None:
        self.watch = watch
        self.address = address
        self.wake = asyncio.Event()
        self.frame: str | None = None
        self.order_frames: list[str] = []
        self.closing: tuple[int, str] | None = None  # after the frames owed: close with this code and reason
        self.sending_since: float | None = None
        self.writer: asyncio.Task | None = None
        self.cut_off = False

    def next_frame(self) -> str | None:
        if self.order_frames:
            return self.order_frames.pop(0)
        frame, self.frame = self.frame, None
        return frame

    def close(self, code: int, reason: str, *, keep_frames: bool) -> None:
        if not keep_frames:
            self.order_frames.clear()
        self.frame = None
        self.closing = (code, reason)
        self.wake.set()


class Watch:
    """One order being watched: its link, its state as last read, its sockets."""

    __slots__ = ("followed", "link", "raw", "state", "watchers")

    def __init__(self, link: Link, state: OrderState, followed: Followed) -> None:
        self.link = link
        self.state = state
        self.raw: bytes | None = None  # the stored state last read (Tracking.refresh)
        self.followed = followed
        self.watchers: set[Watcher] = set()


class Followed:
    """One courier someone watches: its recent fixes, with the distance along them kept as they come (so its
    recent speed, state.recent_speed's, costs one haversine a fix, not one per fix it spans), and its watched
    orders."""

    __slots__ = ("last", "partner_id", "recent", "seen_ts", "segments", "total_m", "watches")

    def __init__(self, partner_id: str, recent: Iterable[Fix]) -> None:
        self.partner_id = partner_id
        self.recent: collections.deque[Fix] = collections.deque()
        self.segments: collections.deque[float] = collections.deque()  # metres from the fix before (0: first)
        self.total_m = 0.0
        self.seen_ts = -1  # the newest fix taken
        self.last: Position | None = None  # and the whole of it, for a frame made between fixes
        for ts, lat, lon in sorted(recent):
            if ts > self.seen_ts:
                self._add(ts, lat, lon)
        self.watches: dict[str, Watch] = {}

    def _add(self, ts: int, lat: float, lon: float) -> None:
        recent, segments = self.recent, self.segments
        metres = haversine_m(recent[-1][1], recent[-1][2], lat, lon) if recent else 0.0
        recent.append((ts, lat, lon))
        segments.append(metres)
        self.total_m += metres
        self.seen_ts = ts
        while len(recent) > RECENT_FIXES or ts - recent[0][0] > RECENT_S * 1000:
            recent.popleft()
            segments.popleft()
            self.total_m -= segments[0]  # the way from the fix dropped to the new first one
            segments[0] = 0.0

    def take(self, position: Position) -> bool:
        """Note the courier's latest fix; False when it is not newer than the last one taken."""
        if position.ts <= self.seen_ts:
            return False
        self._add(position.ts, position.lat, position.lon)
        self.last = position
        return True

    def speed(self) -> float | None:
        """state.recent_speed of :attr:`recent`, from the running distance."""
        if len(self.recent) < 2:
            return None
        span_ms = self.recent[-1][0] - self.recent[0][0]
        if span_ms < MIN_SPAN_MS:
            return None
        return max(MIN_SPEED_MPS, max(0.0, self.total_m) / (span_ms / 1000))


class Tracking:
    """Every tracking socket of one gateway, by courier and by order (see the module doc)."""

    def __init__(self, coarsen_m: float = 0.0) -> None:
        self.coarsen_m = coarsen_m
        self.by_partner: dict[str, Followed] = {}
        self.by_order: dict[str, Watch] = {}
        self.watchers: set[Watcher] = set()
        self.frames_made = 0  # courier frames encoded (one per order per newer fix)

    def following(self, partner_id: str) -> bool:
        return partner_id in self.by_partner

    def watch(
        self,
        link: Link,
        state: OrderState,
        address: str,
        courier: HasPosition | None,
        recent: Iterable[Fix] = (),
        now_ms: int = 0,
    ) -> Watcher:
        """A new socket watching ``link``'s order in ``state`` (as read from Redis just now), owed the order
        frame and, unless delivered, the courier frame of ``courier``'s latest fix; ``recent``: the courier's
        last fixes when nobody follows it yet (its trail), for the ETA."""
        followed = self.by_partner.get(link.partner_id)
        if followed is None:
            followed = self.by_partner[link.partner_id] = Followed(link.partner_id, recent)
        watch = followed.watches.get(link.order_id)
        if watch is None:
            watch = followed.watches[link.order_id] = self.by_order[link.order_id] = Watch(link, state, followed)
        elif state.rank > watch.state.rank:
            watch.state = state  # a newer read than the last refresh: the others catch up at the next one
        watcher = Watcher(watch, address)
        watch.watchers.add(watcher)
        self.watchers.add(watcher)
        watcher.order_frames.append(order_frame(order_object(watch)))
        if watch.state is OrderState.DELIVERED:
            watcher.closing = DELIVERED_CLOSE
        elif courier is not None:
            followed.take(courier.position)
            watcher.frame = self._courier_frame(watch, courier.position, followed.speed(), now_ms)
        watcher.wake.set()
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        if watcher not in self.watchers:
            return
        self.watchers.discard(watcher)
        watch = watcher.watch
        watch.watchers.discard(watcher)
        if not watch.watchers:
            self._forget(watch)

    def _forget(self, watch: Watch) -> None:
        followed = watch.followed
        if followed.watches.get(watch.link.order_id) is watch:
            del followed.watches[watch.link.order_id]
        if self.by_order.get(watch.link.order_id) is watch:
            del self.by_order[watch.link.order_id]
        if not followed.watches and self.by_partner.get(followed.partner_id) is followed:
            del self.by_partner[followed.partner_id]

    def _courier_frame(self, watch: Watch, position: Position, speed: float | None, now_ms: int) -> str:
        """The courier frame of ``watch``'s order: ``position`` as the order's state shows it."""
        return courier_frame(courier_object(watch.link, watch.state, position, speed, self.coarsen_m, now_ms))

    def tick(self, couriers: Mapping[str, HasPosition], now_ms: int) -> int:
        """Hand each watched courier's newer fix to its watchers, one frame per order; returns how many frames
        were made."""
        made = 0
        for partner_id, followed in self.by_partner.items():
            courier = couriers.get(partner_id)
            if courier is None or not followed.take(courier.position):
                continue
            position = courier.position
            speed = followed.speed()
            for watch in followed.watches.values():
                if watch.state is OrderState.DELIVERED:
                    continue
                frame = self._courier_frame(watch, position, speed, now_ms)
                made += 1
                for watcher in watch.watchers:
                    if watcher.closing is None:
                        watcher.frame = frame
                        watcher.wake.set()
        self.frames_made += made
        return made

    def refresh(self, order_id: str, raw: bytes | None, revoked: bool, now_s: float) -> None:
        """:meth:`update` from the stored state as read (``raw``): one that did not change since the last read,
        of a link neither revoked nor expired, is passed over unparsed (most orders, most seconds)."""
        watch = self.by_order.get(order_id)
        if watch is None:
            return
        if raw is not None and raw == watch.raw and not revoked and watch.link.expires_s > now_s:
            return
        watch.raw = raw
        held = read_stored(raw)
        self.update(order_id, held[0] if held is not None else None, revoked, now_s)

    def expire(self, now_s: float) -> None:
        """Close the sockets of every link that expired by ``now_s`` (epoch s) with the refusal."""
        for order_id in [o for o, watch in self.by_order.items() if watch.link.expires_s <= now_s]:
            watch = self.by_order[order_id]
            self.update(order_id, watch.state, False, now_s)

    def update(self, order_id: str, state: OrderState | None, revoked: bool, now_s: float) -> None:
        """What Redis says of a watched order now (``state`` None: it is gone): a state change goes to its
        sockets as an order frame (and delivered closes them after it); revoked, gone or expired closes them
        with the refusal."""
        watch = self.by_order.get(order_id)
        if watch is None:
            return
        refusal = None
        if revoked or state is None:
            refusal = LinkError.REVOKED
        elif watch.link.expires_s <= now_s:
            refusal = LinkError.EXPIRED
        if refusal is not None:
            for watcher in watch.watchers:
                watcher.close(REFUSED_CODE, refusal.value, keep_frames=False)
            self._forget(watch)
            return
        assert state is not None
        if state.rank <= watch.state.rank:
            return
        watch.state = state
        frame = order_frame(order_object(watch))
        # The courier again as the new state shows it (exact once picked up, its distance and ETA to the
        # drop-off), not at its next fix: the page would otherwise hold a coarse position measured to the pickup.
        followed, courier = watch.followed, None
        if state is not OrderState.DELIVERED and followed.last is not None:
            courier = self._courier_frame(watch, followed.last, followed.speed(), round(now_s * 1000))
        for watcher in watch.watchers:
            watcher.order_frames.append(frame)
            if state is OrderState.DELIVERED:
                watcher.close(*DELIVERED_CLOSE, keep_frames=True)
            elif courier is not None and watcher.closing is None:
                watcher.frame = courier
            watcher.wake.set()
        if state is OrderState.DELIVERED:
            self._forget(watch)


def point_json(point: tuple[float, float] | None) -> dict | None:
    return None if point is None else {"lat": point[0], "lon": point[1]}


def order_json(link: Link, state: OrderState) -> dict:
    """The contract's order object."""
    return {
        "order_id": link.order_id,
        "state": state.value,
        "pickup": point_json(link.pickup),
        "dropoff": point_json(link.dropoff),
        "expires_at": link.expires_ms,
    }


def order_object(watch: Watch) -> dict:
    return order_json(watch.link, watch.state)
