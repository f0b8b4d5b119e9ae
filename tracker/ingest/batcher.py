"""Many requests, few produce calls: the ingest's group commit in front of :class:`~tracker.kafka.Producer`.

A request hands its records to :meth:`Batcher.produce` and waits for the broker's acknowledgement (the
producer is acks=all and, unless KAFKA_IDEMPOTENCE=false, idempotent). One task, the flusher, takes
everything pending at once and hands it to the producer as one batch per partition; up to ``max_in_flight``
of these flushes await their acknowledgements while the next requests queue. So a phone alone is sent at once
(one round trip), and a thousand phones at once share a handful of round trips: the busier the broker, the
bigger each flush. (Handing each request to the producer by itself would cost one round trip per request and
partition: aiokafka queues at most one batch per partition behind the one in flight, and a request that
brings another waits for the first to leave.)

A request that is not acknowledged within its timeout gets :class:`ProduceTimeout` (the ingest answers 503
with Retry-After). If its records were still waiting for a flush they are withdrawn and never produced; if
they were already handed to the producer they may still be written (the producer retries until the broker
is back), and the phone's retry of the same fix is then dropped by the validator as a duplicate. Either way
nothing is acknowledged that the broker did not acknowledge.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from tracker.ingest.metrics import IngestMetrics
from tracker.kafka import Producer, partition_for
from tracker.models import OutRecord

log = logging.getLogger(__name__)


# A courier's partition, remembered: murmur2 in pure Python costs microseconds a record (a fifth of the ingest's
# CPU at 40,000 pings/s), and a courier's is the same every time. Bounded, so that ids never registered (open
# mode) cannot grow it.
_partition_of = functools.lru_cache(maxsize=100_000)(partition_for)


class ProduceTimeout(Exception):
    """The broker did not acknowledge a request's records in time."""


class ProduceFailed(Exception):
    """The producer refused a request's records (the broker or the client said why)."""


class _Waiting(msgspec.Struct):
    records: Sequence[OutRecord]
    done: asyncio.Future[None]
    queued_at: float


class Batcher:
    def __init__(
        self,
        producer: Producer,
        topic: str,
        metrics: IngestMetrics,
        *,
        max_in_flight: int = 2,
        max_records: int = 5000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.max_records = max_records
        self.clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: dict[int, _Waiting] = {}  # in arrival order; a request that gives up withdraws its own
        self._keys = itertools.count()
        self._round_robin = itertools.count()
        self._wakeup = asyncio.Event()
        self._partitions = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._partitions = await self.producer.partition_count(self.topic)
        self._task = asyncio.create_task(self._run(), name="ingest-flusher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for waiting in self._pending.values():
            _settle(waiting.done, ProduceFailed("the ingest is stopping"))
        self._pending.clear()

    async def produce(self, records: Sequence[OutRecord], timeout_s: float) -> None:
        """Return once the broker has acknowledged every one of ``records``; raise :class:`ProduceTimeout`
        after ``timeout_s`` without that, :class:`ProduceFailed` when the producer refused them."""
        if not records:
            return
        if self._task is None or self._task.done():
            raise ProduceFailed("the ingest's producer is not running")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        key = next(self._keys)
        queued_at = self.clock()
        self._pending[key] = _Waiting(records, done, queued_at)
        self._wakeup.set()
        try:
            await asyncio.wait_for(asyncio.shield(done), timeout_s)
        except TimeoutError:
            raise ProduceTimeout(f"the broker did not acknowledge within {timeout_s:g} s") from None
        finally:
            self._pending.pop(key, None)  # not handed to the producer yet: it never will be
            if not done.done():
                done.cancel()  # the flusher sees it and forgets it
        self.metrics.produce_latency.observe(self.clock() - queued_at)

    # -- the flusher ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()
            taken = self._take()
            if not taken:
                self._slots.release()
                continue
            try:
                await self._flush(taken)
            except Exception as exc:  # the flusher must outlive any one flush; its requests hear why
                log.exception("handing %d requests to the producer failed", len(taken))
                for waiting in taken:
                    _settle(waiting.done, ProduceFailed(f"{type(exc).__name__}: {exc}"))
                self._slots.release()

    def _take(self) -> list[_Waiting]:
        """The oldest pending requests, up to about ``max_records`` records, out of the queue."""
        taken: list[_Waiting] = []
        count = 0
        for key in list(self._pending):
            if count >= self.max_records:
                break
            waiting = self._pending.pop(key)
            if waiting.done.done():
                continue
            taken.append(waiting)
            count += len(waiting.records)
        return taken

    async def _flush(self, taken: list[_Waiting]) -> None:
        """Hand ``taken`` to the producer, one batch per partition; each request's future resolves when every
        partition it wrote to is acknowledged, and the slot is freed when the whole flush is."""
        by_partition: dict[int, list[OutRecord]] = {}
        partitions_of: list[set[int]] = []
        for waiting in taken:
            mine = set()
            for record in waiting.records:
                partition = self._partition(record)
                by_partition.setdefault(partition, []).append(msgspec.structs.replace(record, partition=partition))
                mine.add(partition)
            partitions_of.append(mine)
        loop = asyncio.get_running_loop()
        acks: dict[int, asyncio.Future] = {}
        for partition, records in by_partition.items():
            try:
                acks[partition] = asyncio.gather(*await self.producer.send_many(self.topic, records))
            except Exception as exc:  # noqa: BLE001 - one partition's refusal is its requests' answer
                refused: asyncio.Future[None] = loop.create_future()
                refused.set_exception(exc)
                acks[partition] = refused
        self.metrics.batches.inc()
        self.metrics.batch_pings.observe(sum(len(records) for records in by_partition.values()))
        for waiting, mine in zip(taken, partitions_of, strict=True):
            asyncio.gather(*(acks[partition] for partition in mine)).add_done_callback(
                functools.partial(_acknowledged, waiting.done)
            )
        everything = asyncio.gather(*acks.values(), return_exceptions=True)  # retrieves every error
        everything.add_done_callback(lambda _: self._slots.release())

    def _partition(self, record: OutRecord) -> int:
        if record.key is None:  # open mode, no courier named: any partition (the validator dead-letters it)
            return next(self._round_robin) % self._partitions
        return _partition_of(record.key, self._partitions)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its request gave up already
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # its request may be gone; nobody else is to be warned about it


def _acknowledged(done: asyncio.Future[None], acks: asyncio.Future) -> None:
    if acks.cancelled():
        _settle(done, ProduceFailed("the produce call was cancelled"))
        return
    error = acks.exception()
    _settle(done, None if error is None else ProduceFailed(f"{type(error).__name__}: {error}"))
