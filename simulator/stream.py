"""The ping stream: couriers on a schedule, some pings corrupted, some resent. Pure, no Kafka, no clock.

:func:`iter_pings` is a function of (config, settings, now_ms) alone: the same inputs give the same bytes,
which is what lets tests feed the stream straight into the validator's rules and check every verdict.

Schedule: each courier pings every ``interval`` with a random phase and ±10 % jitter per ping. ``now_ms`` is
when the stream starts in real-time mode; in burst mode the stream *ends* at ``now_ms`` (it starts
``rounds x interval`` earlier), so its timestamps are as fresh as a backlog can be. The caller decides whether
to wait for each ping's ``emitted_at_ms``.

Each slot (one courier, one tick) draws good or a fault kind. Shares are of *all* pings, duplicates included:
with fault shares r_k (sum R) and duplicate share d, a slot is fault k with probability r_k / (1 - d) and a
good ping is followed by a duplicate with probability d / (1 - d - R). A kind that cannot apply yet (out of
order and impossible speed need an earlier good ping) is owed and taken from the courier's next good slot
instead, so the requested shares hold from the first round on.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Iterator

import msgspec

from simulator.config import SimConfig, burst_rounds, fault_shares
from simulator.faults import DUPLICATE, FaultContext, FaultKind, LastGood, inject
from simulator.fleet import Courier, StreetGrid, advance, build_grid, new_courier, wire_ping
from tracker.constants import H_SIM_EXPECT
from tracker.geo import ServiceArea, load_service_area
from tracker.rules import Limits
from tracker.settings import Settings

Headers = tuple[tuple[str, bytes], ...]

_ENCODER = msgspec.json.Encoder()


class SimPing(msgspec.Struct, frozen=True):
    partner_id: str  # the courier; also what ``key`` encodes, even when the payload lost its partner_id
    key: bytes
    value: bytes
    headers: Headers  # (sim.expect, code) on injected pings, empty on good ones
    expect: str | None  # None: must be accepted; "duplicate"; otherwise the reject code
    emitted_at_ms: int  # when the phone sends it; the validator clock to judge it by in tests


class _Draw(msgspec.Struct, frozen=True):
    kinds: tuple[FaultKind, ...]
    upper_bounds: tuple[float, ...]  # cumulative per-slot probabilities, aligned with kinds
    duplicate_after_good: float

    @classmethod
    def for_config(cls, config: SimConfig) -> _Draw:
        shares = {kind: share for kind, share in fault_shares(config).items() if share > 0}
        good = 1 - config.duplicate_rate - sum(shares.values())
        per_slot = [share / (1 - config.duplicate_rate) for share in shares.values()]
        return cls(
            tuple(shares),
            tuple(itertools.accumulate(per_slot)),
            config.duplicate_rate / good if config.duplicate_rate else 0.0,
        )

    def fault(self, rng: random.Random) -> FaultKind | None:
        index = bisect.bisect_right(self.upper_bounds, rng.random())
        return self.kinds[index] if index < len(self.kinds) else None


def iter_pings(config: SimConfig, now_ms: int, *, settings: Settings | None = None) -> Iterator[SimPing]:
    """Pings in emission order until ``count`` pings or ``duration`` of event time (forever without either).

    ``settings`` gives the service area and the validator thresholds the faults must cross (defaults when
    None). ``config.seed`` None means an unseeded run.
    """
    return Fleet(config, settings).pings(now_ms)


class Fleet:
    """A run's set-up (service area, street grid, couriers), made before its clock starts.

    Building the grid takes 70-250 ms of CPU; made lazily, on the first ping, a real-time run would send its
    first pings that late. The set-up and the pings draw from one random stream, in that order, so a seed
    gives the same bytes either way.
    """

    def __init__(self, config: SimConfig, settings: Settings | None = None) -> None:
        self.config = config.checked()
        self.settings = settings or Settings()
        self.rng = random.Random(self.config.seed)
        self.area = load_service_area(self.settings.service_area_file)
        self.grid = build_grid(self.area, self.rng)
        self.couriers = [
            new_courier(index, self.grid, self.rng, self.config.id_prefix) for index in range(self.config.couriers)
        ]

    def pings(self, now_ms: int) -> Iterator[SimPing]:
        """The run's pings, its clock starting at ``now_ms``; once per fleet (it moves the couriers)."""
        return _pings(self.config, self.settings, self.rng, self.area, self.grid, self.couriers, now_ms)


def _pings(
    config: SimConfig,
    settings: Settings,
    rng: random.Random,
    area: ServiceArea,
    grid: StreetGrid,
    couriers: list[Courier],
    now_ms: int,
) -> Iterator[SimPing]:
    limits = Limits.from_settings(settings)
    keys = [courier.partner_id.encode() for courier in couriers]
    last_good: list[LastGood | None] = [None] * config.couriers
    draw = _Draw.for_config(config)
    owed: Counter[FaultKind] = Counter()

    interval_ms = config.interval_s * 1000
    start_ms = now_ms - round(burst_rounds(config) * interval_ms) if config.burst else now_ms
    end_ms = None if config.duration_s is None else start_ms + round(config.duration_s * 1000)
    last_emitted = [start_ms] * config.couriers
    queue = [(start_ms + rng.randrange(max(1, round(interval_ms))), index) for index in range(config.couriers)]
    heapq.heapify(queue)
    sent = 0

    while config.count is None or sent < config.count:
        emitted_ms, index = queue[0]
        if end_ms is not None and emitted_ms >= end_ms:
            return
        # ms resolution, and a courier's timestamps strictly increase, however short the interval.
        heapq.heapreplace(queue, (emitted_ms + max(1, round(interval_ms * rng.uniform(0.9, 1.1))), index))
        courier = couriers[index] = advance(couriers[index], grid, (emitted_ms - last_emitted[index]) / 1000, rng)
        last_emitted[index] = emitted_ms
        ping = wire_ping(courier, grid, emitted_ms)

        kind, payload = draw.fault(rng), None
        if kind is not None:
            payload = inject(kind, FaultContext(ping, last_good[index], grid, area, limits), rng)
            if payload is None and owed[kind] < config.couriers:
                owed[kind] += 1
        elif owed:
            kind, payload = _pay_owed(owed, FaultContext(ping, last_good[index], grid, area, limits), rng)

        if kind is not None and payload is not None:  # (a payload always comes with its kind)
            yield SimPing(
                courier.partner_id, keys[index], payload, ((H_SIM_EXPECT, kind.value.encode()),), kind.value, emitted_ms
            )
            sent += 1
            continue

        value = _ENCODER.encode(ping)
        last_good[index] = LastGood(ping.ts, ping.lat, ping.lon, value)
        yield SimPing(courier.partner_id, keys[index], value, (), None, emitted_ms)
        sent += 1
        if rng.random() < draw.duplicate_after_good and (config.count is None or sent < config.count):
            yield SimPing(
                courier.partner_id, keys[index], value, ((H_SIM_EXPECT, DUPLICATE.encode()),), DUPLICATE, emitted_ms
            )
            sent += 1


def _pay_owed(
    owed: Counter[FaultKind], context: FaultContext, rng: random.Random
) -> tuple[FaultKind, bytes] | tuple[None, None]:
    """The first owed fault that applies to this courier now, taken off ``owed``."""
    for kind in list(owed):
        payload = inject(kind, context, rng)
        if payload is not None:
            owed[kind] -= 1
            if not owed[kind]:
                del owed[kind]
            return kind, payload
    return None, None
