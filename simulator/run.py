"""The Kafka loop: the ping stream, paced by the wall clock (or not, in burst mode), produced in batches.

Counts are of acknowledged pings: each partition's share of a batch is counted once the broker acks it,
so ``produced`` is the left-hand side of the accounting identity (produced = accepted + rejected +
duplicates dropped). A share the producer gives up on (its own retries and delivery timeout exhausted, e.g.
a broker down for longer than that) is counted as ``unsent``, with the error, and the run goes on: it is
never re-sent, since a produce that timed out may still have been written, and a copy would count twice.
So ``unsent`` is also the slack of the identity: accepted + rejected + duplicates lies between
``produced`` and ``produced + unsent`` (exactly ``produced`` when nothing was unsent).
A stop request lets the batch in flight finish; nothing is left unacknowledged on return.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import msgspec

from simulator.config import SimConfig
from simulator.faults import DUPLICATE
from simulator.stream import Fleet, SimPing
from tracker.kafka import BrokerError, Producer, partition_for
from tracker.models import OutRecord
from tracker.settings import Settings

BATCH_MAX = 2_000
# With a rate cap, batches are small enough to send about this many times a second: smooth, not bursty.
PACED_BATCHES_PER_S = 20
REASON_MAX_CHARS = 200  # an error's message, as shown in unsent_by_reason
# A broker that is down stalls a batch for as long as the producer retries (with idempotence: until it is
# back); this often, the caller hears how long it has been waiting.
WAITING_REPORT_S = 1.0


class SimStats(msgspec.Struct, frozen=True, kw_only=True):
    produced: int
    good: int
    bad: int
    duplicates: int
    bad_by_reason: dict[str, int]
    elapsed_s: float
    pings_per_s: float
    seed: int  # rerun with --seed to get the same couriers, routes and faults
    unsent: int = 0  # pings the producer gave up on, never counted in produced (module docstring)
    unsent_by_reason: dict[str, int] = {}  # "<error type>: <message>" -> pings
    # Through the ingest: requests sent again after a 429, a 5xx or a network error, as a phone does
    # (simulator/via_ingest.py). A fix resent after a 503 may reach the topic twice: the validator drops a good
    # fix's second copy as a duplicate and dead-letters a bad one's again.
    retries: int = 0


class _Tally:
    """Running counts; :meth:`snapshot` freezes them into :class:`SimStats`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.good = 0
        self.duplicates = 0
        self.bad_by_reason: Counter[str] = Counter()
        self.unsent_by_reason: Counter[str] = Counter()

    def add_unsent(self, batch: list[SimPing], error: BaseException) -> None:
        self.unsent_by_reason[unsent_reason(error)] += len(batch)

    def add(self, batch: list[SimPing]) -> None:
        for ping in batch:
            if ping.expect is None:
                self.good += 1
            elif ping.expect == DUPLICATE:
                self.duplicates += 1
            else:
                self.bad_by_reason[ping.expect] += 1

    @property
    def produced(self) -> int:
        return self.good + self.duplicates + sum(self.bad_by_reason.values())

    @property
    def unsent(self) -> int:
        return sum(self.unsent_by_reason.values())

    def snapshot(self, elapsed_s: float, retries: int = 0) -> SimStats:
        produced = self.produced
        return SimStats(
            produced=produced,
            good=self.good,
            bad=produced - self.good - self.duplicates,
            duplicates=self.duplicates,
            bad_by_reason=dict(sorted(self.bad_by_reason.items())),
            elapsed_s=round(elapsed_s, 3),
            pings_per_s=round(produced / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            seed=self.seed,
            unsent=self.unsent,
            unsent_by_reason=dict(self.unsent_by_reason),
            retries=retries,
        )


def unsent_reason(error: BaseException) -> str:
    """One line naming what went wrong: the error's type (Kafka errors name theirs) and its message."""
    name, message = type(error).__name__, " ".join(str(error).split())[:REASON_MAX_CHARS]
    if name in message:
        return message
    return f"{name}: {message}" if message else name


# Sends one batch and says how each share of it fared: (pings, None) when acknowledged, (pings, error) when
# given up on. The Kafka loop's is _send below; simulator/via_ingest.py has the HTTP one.
Send = Callable[[list[SimPing]], Awaitable[list[tuple[list[SimPing], BaseException | None]]]]


async def run_simulation(
    settings: Settings,
    config: SimConfig,
    producer: Producer,
    progress: Callable[[SimStats], None] | None = None,
    stop: asyncio.Event | None = None,
    waiting: Callable[[float], None] | None = None,
    on_fleet: Callable[[Fleet], None] | None = None,
) -> SimStats:
    """Produce the simulation to the location topic until ``count``, ``duration`` or ``stop`` (see :func:`drive`)."""
    topic = settings.location_topic
    partition_of = _partitioner(await producer.partition_count(topic))

    async def send(batch: list[SimPing]) -> list[tuple[list[SimPing], BaseException | None]]:
        return await _send(producer, topic, batch, partition_of)

    return await drive(settings, config, send, progress, stop, waiting, finish=producer.flush, on_fleet=on_fleet)


async def drive(
    settings: Settings,
    config: SimConfig,
    send: Send,
    progress: Callable[[SimStats], None] | None = None,
    stop: asyncio.Event | None = None,
    waiting: Callable[[float], None] | None = None,
    finish: Callable[[], Awaitable[None]] | None = None,
    retries: Callable[[], int] = lambda: 0,
    on_fleet: Callable[[Fleet], None] | None = None,
) -> SimStats:
    """Send the simulation, batch by batch, until ``count``, ``duration`` or ``stop``; ``finish`` before the
    final count (the producer's flush); ``retries`` says how many requests the sender has sent again so far.

    Real-time mode sleeps until a ping is due, then ``linger_ms`` more, and sends every ping due by then in
    one batch: a ping's ``ts`` is when it fell due, up to ``linger_ms`` before it is sent. ``duration``
    is event time: in real-time mode that is also wall time; in burst mode it is the span of virtual time.
    ``progress`` is called with the running stats after every batch, acknowledged or given up on;
    ``waiting`` every ``WAITING_REPORT_S`` while a batch waits for the broker, with the seconds waited.
    """
    config = config.checked()
    seed = config.seed
    if seed is None:
        seed = random.SystemRandom().randrange(2**32)
        config = msgspec.structs.replace(config, seed=seed)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    fleet = Fleet(config, settings)  # before the clock starts: the first pings are not late by the set-up
    if on_fleet is not None:
        on_fleet(fleet)  # e.g. the demo orders (simulator/orders.py) watch its couriers
    started = loop.time()
    start_ms = time.time_ns() // 1_000_000
    batch_max = BATCH_MAX if config.rate is None else max(1, min(BATCH_MAX, int(config.rate / PACED_BATCHES_PER_S)))
    tally = _Tally(seed)
    pings = fleet.pings(start_ms)
    upcoming = next(pings, None)

    while upcoming is not None and not stop.is_set():
        if not config.burst:
            due_in = started + (upcoming.emitted_at_ms + config.linger_ms - start_ms) / 1000 - loop.time()
            if due_in > 0 and await _stopped_within(stop, due_in):
                break
        horizon_ms = start_ms + (loop.time() - started) * 1000
        batch: list[SimPing] = []
        while (
            upcoming is not None and len(batch) < batch_max and (config.burst or upcoming.emitted_at_ms <= horizon_ms)
        ):
            batch.append(upcoming)
            upcoming = next(pings, None)

        sending = asyncio.ensure_future(send(batch))
        for share, error in await _reporting_waits(sending, waiting):
            if error is None:
                tally.add(share)
            else:
                tally.add_unsent(share, error)
        if progress is not None:
            progress(tally.snapshot(loop.time() - started, retries()))

        if config.rate is not None:
            ahead_s = started + (tally.produced + tally.unsent) / config.rate - loop.time()
            if ahead_s > 0 and await _stopped_within(stop, ahead_s):
                break

    if finish is not None:
        await finish()
    return tally.snapshot(loop.time() - started, retries())


def _partitioner(partitions: int) -> Callable[[bytes], int]:
    """The partition of a courier's key (the producer's own rule), remembered per courier."""
    known: dict[bytes, int] = {}

    def partition_of(key: bytes) -> int:
        partition = known.get(key)
        if partition is None:
            partition = known[key] = partition_for(key, partitions)
        return partition

    return partition_of


async def _send(
    producer: Producer, topic: str, batch: list[SimPing], partition_of: Callable[[bytes], int]
) -> list[tuple[list[SimPing], BaseException | None]]:
    """Produce ``batch`` and wait for the broker: each partition's share with its error, None when acked.

    Shares are queued one partition at a time, so a failure is pinned on the pings it concerns; all are
    queued before any ack is awaited, so they still travel together (one produce request per broker).
    """
    shares: dict[int, list[SimPing]] = {}
    for ping in batch:
        shares.setdefault(partition_of(ping.key), []).append(ping)
    queued: list[tuple[list[SimPing], list[asyncio.Future] | BaseException]] = []
    for partition, share in shares.items():
        try:
            queued.append(
                (
                    share,
                    await producer.send_many(
                        topic,
                        [
                            OutRecord(value=ping.value, key=ping.key, headers=ping.headers, partition=partition)
                            for ping in share
                        ],
                    ),
                )
            )
        except BrokerError as error:  # e.g. no room in the producer's queue within its timeout
            queued.append((share, error))
    outcomes: list[tuple[list[SimPing], BaseException | None]] = []
    for share, futures in queued:
        if isinstance(futures, BaseException):
            outcomes.append((share, futures))
            continue
        errors = [
            ack for ack in await asyncio.gather(*futures, return_exceptions=True) if isinstance(ack, BaseException)
        ]
        for failure in errors:
            if not isinstance(failure, BrokerError):
                raise failure  # not a delivery failure: a bug, or a cancellation
        outcomes.append((share, errors[0] if errors else None))
    return outcomes


async def _reporting_waits(sending: asyncio.Future, waiting: Callable[[float], None] | None):
    """``sending``'s result; meanwhile ``waiting(seconds)`` every ``WAITING_REPORT_S``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        while waiting is not None and not sending.done():
            await asyncio.wait({sending}, timeout=WAITING_REPORT_S)
            if not sending.done():
                waiting(loop.time() - started)
        return await sending
    finally:
        sending.cancel()  # only when we were cancelled ourselves: a finished send ignores it


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
