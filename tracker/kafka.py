"""The Kafka edge: the only module that imports aiokafka.

Everything else sees :class:`~tracker.models.Record` (an immutable consumed record) and
:class:`~tracker.models.OutRecord` (what to produce), plain values defined with the other models.

Producing goes through aiokafka's batch API (``create_batch``/``send_batch``): we partition with the same
murmur2 rule as the Java client, so a courier's records land on the same partition number in every topic
that has the same partition count, and we avoid the per-message future overhead of ``send`` (about ten
times faster in our measurements on Tansu).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import IllegalStateError, KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from tracker.constants import H_UNREADABLE
from tracker.models import OutRecord, Record
from tracker.settings import Settings

log = logging.getLogger(__name__)

# Re-exported so callers can catch broker errors without importing aiokafka.
BrokerError = KafkaError

FETCH_MAX_WAIT_MS = 500  # Kafka's default; see Settings.kafka_fetch_max_wait_ms


class _Reassigned(Exception):
    """A partition was assigned afresh while :meth:`Consumer._isolate` searched it."""


def unreadable(topic: str, partition: int, offset: int, error: BaseException) -> Record:
    """Stands in for a record the client could not parse: no key or value, and the reason in the
    :data:`~tracker.constants.H_UNREADABLE` header. The original stays in the topic at ``offset``."""
    reason = (
        f"the Kafka client could not parse this record or an earlier one of its batch: {type(error).__name__}: {error}"
    )[:500]
    read_at_ms = time.time_ns() // 1_000_000  # its own timestamp is in the part that could not be read
    return Record(
        topic, partition, offset, read_at_ms, None, None, ((H_UNREADABLE, reason.encode("utf-8", "replace")),)
    )


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """Java client's default rule: murmur2(key) mod partitions; ``fallback`` for keyless records."""
    if key is None:
        return fallback % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _client_args(settings: Settings) -> dict:
    if not settings.kafka_bootstrap_servers:
        raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set and no embedded broker was started")
    return {"bootstrap_servers": settings.kafka_bootstrap_servers, **security_args(settings)}


def security_args(settings: Settings) -> dict:
    """aiokafka's arguments for the cluster's security settings (none for the default plain text)."""
    protocol = settings.kafka_security_protocol
    args: dict = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        args["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile, certfile=settings.kafka_ssl_certfile, keyfile=settings.kafka_ssl_keyfile
        )
    if protocol.startswith("SASL"):
        args.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return args


class Producer:
    """acks=all producer that sends per-partition batches (:meth:`send_many`)."""

    def __init__(self, settings: Settings, *, linger_ms: int = 5, max_batch_bytes: int = 1024 * 1024) -> None:
        self._producer = AIOKafkaProducer(
            **_client_args(settings),
            client_id=f"{settings.kafka_client_id}-producer",
            acks="all",
            linger_ms=linger_ms,
            max_batch_size=max_batch_bytes,
            max_request_size=max(max_batch_bytes, 1024 * 1024),
            enable_idempotence=settings.kafka_idempotence,
        )
        self._idempotent = settings.kafka_idempotence
        self._bootstrap = settings.kafka_bootstrap_servers
        self._partition_counts: dict[str, int] = {}
        self._round_robin = itertools.count()
        # murmur2 is pure Python in aiokafka (~5 µs); couriers repeat, so remember each key's partition.
        self._partitions: dict[tuple[bytes, int], int] = {}

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaConnectionError as exc:
            await self._producer.stop()
            raise KafkaConnectionError(
                f"cannot connect to Kafka at {self._bootstrap} ({exc}); check KAFKA_BOOTSTRAP_SERVERS and, for a "
                "cluster that authenticates, KAFKA_SECURITY_PROTOCOL and the KAFKA_SASL_* / KAFKA_SSL_* settings "
                "(the client's log above says why it failed)"
            ) from exc
        except KafkaError as exc:
            await self._producer.stop()
            if self._idempotent:
                raise KafkaError(
                    f"the broker refused an idempotent producer ({exc}); if it has none (the "
                    "Tansu has none), set KAFKA_IDEMPOTENCE=false"
                ) from exc
            raise

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> Producer:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            partitions = await self._producer.partitions_for(topic)
            count = self._partition_counts[topic] = len(partitions)
        return count

    async def send_many(self, topic: str, records: Iterable[OutRecord]) -> list[asyncio.Future]:
        """Queue records in per-partition batches; returns futures that resolve on the broker's ack.

        Records for one partition keep their order. Await the returned futures (``asyncio.gather``) before
        treating the records as written.
        """
        count = await self.partition_count(topic)
        batches: dict[int, BatchBuilder] = {}
        futures: list[asyncio.Future] = []
        cache = self._partitions
        if len(cache) > 500_000:
            cache.clear()
        for record in records:
            partition = record.partition
            if partition is None:
                if record.key is None:
                    partition = next(self._round_robin) % count
                else:
                    partition = cache.get((record.key, count))
                    if partition is None:
                        partition = cache[(record.key, count)] = partition_for(record.key, count)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = self._producer.create_batch()
            if batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers)) is None:
                futures.append(await self._send_batch(batch, topic, partition))
                batch = batches[partition] = self._producer.create_batch()
                if (
                    batch.append(key=record.key, value=record.value, timestamp=None, headers=list(record.headers))
                    is None
                ):
                    raise ValueError(f"record of {len(record.value or b'')} bytes does not fit in a batch")
        for partition, batch in batches.items():
            futures.append(await self._send_batch(batch, topic, partition))
        return futures

    async def _send_batch(self, batch, topic: str, partition: int) -> asyncio.Future:
        batch.close()
        return await self._producer.send_batch(batch, topic, partition=partition)

    async def flush(self) -> None:
        await self._producer.flush()

    async def reachable(self, timeout_s: float) -> bool:
        """Whether the broker answers this producer's metadata request within ``timeout_s`` (a readiness
        probe: it uses the producer's own connections and credentials)."""
        try:
            return bool(await asyncio.wait_for(self._producer.client.force_metadata_update(), timeout_s))
        except (TimeoutError, KafkaError):
            return False


def _to_record(message) -> Record:
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.key,
        message.value,
        tuple(message.headers or ()),
    )


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign, on_revoke) -> None:
        self._on_assign = on_assign
        self._on_revoke = on_revoke

    async def on_partitions_revoked(self, revoked) -> None:
        if self._on_revoke is not None:
            await self._on_revoke([(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned) -> None:
        if self._on_assign is not None:
            await self._on_assign([(tp.topic, tp.partition) for tp in assigned])


PartitionCallback = Callable[[list[tuple[str, int]]], Awaitable[None]]


class Consumer:
    """A consumer with manual commits.

    With ``group_id`` it joins that group (Kafka's queue model: members share partitions). Without one it
    is a standalone reader of every partition (Kafka's pub/sub model), starting at ``start`` ("earliest"
    or "latest").
    """

    def __init__(
        self,
        settings: Settings,
        topics: Sequence[str],
        *,
        group_id: str | None,
        start: str = "earliest",
        on_assign: PartitionCallback | None = None,
        on_revoke: PartitionCallback | None = None,
        max_poll_records: int | None = None,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._topics = list(topics)
        self._group_id = group_id
        self._start = start
        self._listener = _Listener(on_assign, on_revoke)
        self._consumer = AIOKafkaConsumer(
            **_client_args(settings),
            client_id=f"{settings.kafka_client_id}-{group_id or 'reader'}",
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=start,
            max_poll_records=max_poll_records or settings.max_batch,
            fetch_max_wait_ms=(
                FETCH_MAX_WAIT_MS if settings.kafka_fetch_max_wait_ms is None else settings.kafka_fetch_max_wait_ms
            ),
            fetch_min_bytes=settings.kafka_fetch_min_bytes,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(100, session_timeout_ms // 5),
        )

    async def start(self) -> None:
        await self._consumer.start()
        if self._group_id is not None:
            self._consumer.subscribe(self._topics, listener=self._listener)
        else:
            # Without a group, aiokafka assigns every partition of the subscribed topics once it has their
            # metadata (and follows partitions added later); wait for that first assignment.
            self._consumer.subscribe(self._topics)
            await self._listener.on_partitions_assigned(await self._first_assignment())

    async def _first_assignment(self, timeout_s: float = 30.0) -> list[TopicPartition]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            assigned = self._consumer.assignment()
            if {tp.topic for tp in assigned} >= set(self._topics):
                return sorted(assigned)
            if loop.time() > deadline:
                raise KafkaError(f"no partitions for topic(s) {', '.join(self._topics)} after {timeout_s:g} s")
            await asyncio.sleep(0.05)

    async def wait_for_positions(self, timeout_s: float = 30.0) -> None:
        """Wait until every assigned partition has its fetch position (a reader from "latest" resolves it
        lazily): what is produced from then on, it reads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while set(self._positions()) != set(self._consumer.assignment()):
            if loop.time() > deadline:
                raise KafkaError(f"no fetch positions for {', '.join(self._topics)} after {timeout_s:g} s")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[tuple[str, int], list[Record]]:
        """Records fetched since the last poll, by partition. Never raises for what a record holds: a record
        the client cannot read comes back as an :func:`unreadable` record in its place (see
        :meth:`_read_around`)."""
        positions = self._positions()
        try:
            batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError:
            raise
        except Exception as exc:  # noqa: BLE001 - a record the client could not parse; see _read_around
            return await self._read_around(positions, exc, timeout_ms)
        return {(tp.topic, tp.partition): [_to_record(m) for m in messages] for tp, messages in batches.items()}

    def _positions(self) -> dict[TopicPartition, int]:
        """Each assigned partition's fetch position, read without waiting (aiokafka's subscription state; the
        public ``position()`` is a coroutine that may wait for a committed offset)."""
        try:
            assignment = self._consumer._subscription.subscription.assignment
            states = {tp: assignment.state_value(tp) for tp in self._consumer.assignment()}
        except AttributeError:  # no assignment yet
            return {}
        return {tp: state.position for tp, state in states.items() if state is not None and state.has_valid_position}

    async def _read_around(
        self, positions: dict[TopicPartition, int], error: Exception, timeout_ms: int
    ) -> dict[tuple[str, int], list[Record]]:
        """Find the records aiokafka could not parse, and hand each on as an :func:`unreadable` record.

        aiokafka decodes every header name as UTF-8 while it iterates a fetched batch; a name that is not
        UTF-8 (the broker stores whatever bytes a producer sends) raises out of ``getmany`` on every call, at
        the same offset, so the consumer would never get past it. Worse, records of other partitions drained
        in the same call are lost with the exception while their positions moved on. So: every partition goes
        back to where it was before the call, then partitions that have data are read one at a time, one
        record at a time; a record that raises is replaced by an unreadable record and skipped. A batch is
        parsed front to back, so the records after a bad one in the same producer batch can't be read either:
        each of them becomes an unreadable record too (they came from the same producer).
        """
        log.warning("a fetched record could not be read (%s: %s); isolating it", type(error).__name__, error)
        found: dict[tuple[str, int], list[Record]] = {}
        try:
            await self._isolate(positions, timeout_ms, found)
        except (IllegalStateError, AssertionError, _Reassigned) as exc:  # aiokafka asserts in highwater()
            # A rebalance took partitions away mid-search: hand on what was read; the new owner of the rest
            # starts from the committed offsets and meets the bad record itself.
            log.info("partitions moved while a bad record was isolated (%s); going on", exc)
        return found

    async def _isolate(
        self, positions: dict[TopicPartition, int], timeout_ms: int, found: dict[tuple[str, int], list[Record]]
    ) -> None:
        consumer = self._consumer
        partitions = sorted(consumer.assignment())
        for tp, offset in positions.items():
            if tp in partitions:
                consumer.seek(tp, offset)
        missing = [tp for tp in partitions if tp not in positions]
        if missing:
            # The failing call was the first after an assignment: those partitions had no position before it.
            # Go back to where the first call starts from: the group's committed offset, else the start rule.
            committed = await consumer.seek_to_committed(*missing) if self._group_id is not None else {}
            unset = [tp for tp in missing if not committed.get(tp)]  # it leaves those at 0 or none alone
            if unset:
                if self._start == "earliest":
                    await consumer.seek_to_beginning(*unset)
                else:
                    await consumer.seek_to_end(*unset)
        budget = 1000  # records read one by one per call; the rest come with the next poll
        try:
            consumer.pause(*partitions)
            for tp in partitions:
                if tp not in consumer.assignment():
                    continue  # a rebalance moved it while an earlier partition was searched
                highwater = consumer.highwater(tp)
                start = self._positions().get(tp)
                if highwater is not None and start is not None and start >= highwater:
                    continue  # nothing to read here: not the partition that raised
                consumer.resume(tp)
                try:
                    while budget > 0:
                        position = self._positions().get(tp)
                        try:
                            batch = await consumer.getmany(tp, timeout_ms=timeout_ms, max_records=1)
                        except KafkaError:
                            raise
                        except Exception as exc:  # this record is the one the client could not parse
                            if position is None or tp not in consumer.assignment():
                                # A rebalance assigned the partition afresh while it was searched (its fetch
                                # state starts over from the committed offset, so the bad record's offset is
                                # unknown here): stop; the next poll searches again from known positions.
                                raise _Reassigned(f"{tp.topic}/{tp.partition} was assigned afresh") from exc
                            found.setdefault((tp.topic, tp.partition), []).append(
                                unreadable(tp.topic, tp.partition, position, exc)
                            )
                            consumer.seek(tp, position + 1)
                            budget -= 1
                            continue
                        messages = batch.get(tp, [])
                        if not messages:
                            break
                        found.setdefault((tp.topic, tp.partition), []).extend(_to_record(m) for m in messages)
                        budget -= len(messages)
                finally:
                    if tp in consumer.assignment():
                        consumer.pause(tp)
        finally:
            still = [tp for tp in partitions if tp in consumer.assignment()]
            if still:
                consumer.resume(*still)

    async def commit(self, next_offsets: dict[tuple[str, int], int]) -> None:
        """Commit ``next_offsets`` (the offset of the next record to read, i.e. last processed + 1)."""
        if next_offsets:
            await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in next_offsets.items()})

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``topic``/``partition`` from ``offset`` on; records already fetched past it are dropped."""
        self._consumer.seek(TopicPartition(topic, partition), offset)

    async def lag(self) -> int:
        """Records between this consumer's positions and the end of its partitions.

        Only meaningful on brokers whose ListOffsets "latest" is the real end of the log (Apache Kafka);
        the embedded Tansu may answer with the base offset of the last batch (docs/contract.md, "Brokers").
        """
        partitions = list(self._consumer.assignment())
        if not partitions:
            return 0
        ends = await self._consumer.end_offsets(partitions)
        total = 0
        for tp in partitions:
            total += max(0, ends[tp] - await self._consumer.position(tp))
        return total


def topic_specs(settings: Settings) -> dict[str, int]:
    return {
        settings.location_topic: settings.location_partitions,
        settings.dlq_topic: settings.dlq_partitions,
        settings.positions_topic: settings.positions_partitions,
        settings.events_topic: settings.events_partitions,
    }


def partition_mismatch(settings: Settings, counts: dict[str, int]) -> str | None:
    """Why ``counts`` (topic -> partitions, as the broker has them) cannot be run with ``settings``, or None.

    A courier's keys in Redis are found through the partition its id hashes to over
    ``TRACKER_LOCATION_PARTITIONS`` (tracker/store.py), and readers of every courier walk that many
    partitions: a topic with another count would hide couriers from the map and from lookups by id."""
    actual = counts.get(settings.location_topic)
    if actual is None or actual == settings.location_partitions:
        return None
    return (
        f"{settings.location_topic} has {actual} partitions but TRACKER_LOCATION_PARTITIONS is "
        f"{settings.location_partitions}: set it to {actual} (couriers' keys in Redis are found by partition)"
    )


async def ensure_topics(settings: Settings, extra: dict[str, int] | None = None) -> dict[str, int]:
    """Create the product's topics (and ``extra`` name -> partitions) when missing, idempotently; returns
    topic -> partition count."""
    specs = topic_specs(settings) | (extra or {})
    admin = AIOKafkaAdminClient(**_client_args(settings), client_id=f"{settings.kafka_client_id}-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, partitions, settings.replication_factor)
            for name, partitions in specs.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race: the state we want
                await admin.create_topics(missing)
            log.info("created topics %s", ", ".join(t.name for t in missing))
            await _until_served(settings, {t.name: t.num_partitions for t in missing})
        await _until_coordinated(admin, [settings.validator_group, settings.dlq_indexer_group])
        return await _partition_counts(admin, list(specs))
    finally:
        await admin.close()


async def _until_coordinated(admin: AIOKafkaAdminClient, groups: list[str], timeout_s: float = 30.0) -> None:
    """Wait until the product's consumer groups have a coordinator.

    A fresh cluster creates its offsets topic on the first FindCoordinator request and answers "not
    available" until that topic has leaders; a consumer group that asks first retries, but aiokafka logs
    each refusal at ERROR (one per group on every first `tracker up`). Asking here, quietly, first.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    for group in groups:
        while True:
            try:
                await admin.find_coordinator(group)
                break
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or loop.time() > deadline:
                    log.warning("no coordinator for consumer group %s yet: %r", group, exc)
                    break
                await asyncio.sleep(0.1)


async def _until_served(settings: Settings, topics: dict[str, int]) -> None:
    """Wait until every partition of ``topics`` has a leader that answers ListOffsets.

    A cluster creates partitions asynchronously, and metadata names a leader before that broker has taken
    the partition on. A consumer's first request is ListOffsets: aiokafka retries "no leader yet" and
    NotLeaderForPartition, but logs each at ERROR (17 lines for 8 new topic pairs, measured).
    ``end_offsets`` retries the same errors quietly (refreshing metadata in between), so we ask first.
    """
    reader = AIOKafkaConsumer(
        **_client_args(settings), client_id=f"{settings.kafka_client_id}-admin", enable_auto_commit=False
    )
    await reader.start()
    try:
        await reader.end_offsets(
            [TopicPartition(topic, partition) for topic, count in topics.items() for partition in range(count)]
        )
    except KafkaError as exc:
        log.warning("new topics %s are not served yet: %r", ", ".join(topics), exc)
    finally:
        await reader.stop()


async def describe_topics(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(**_client_args(settings), client_id=f"{settings.kafka_client_id}-admin")
    await admin.start()
    try:
        return await _partition_counts(admin, list(topic_specs(settings)))
    finally:
        await admin.close()


async def _partition_counts(admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, int]:
    described = await admin.describe_topics(topics)
    return {item["topic"]: len(item["partitions"]) for item in described if not item.get("error_code")}


async def broker_ids(bootstrap: str, timeout_s: float) -> set[int]:
    """The broker ids in one metadata answer from ``bootstrap``: the readiness probe of the local Apache Kafka
    launcher (tracker/local/apache_kafka.py), which waits until every node lists exactly the running brokers."""
    from aiokafka import AIOKafkaClient  # the low-level client: only the probe needs a bare metadata request

    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=max(1000, int(timeout_s * 1000)), metadata_max_age_ms=60_000
    )
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return {broker.nodeId for broker in client.cluster.brokers()}
    finally:
        # Closing a client that never connected must not hide the answer or the error.
        with contextlib.suppress(Exception):
            await client.close()
