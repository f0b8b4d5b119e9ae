"""The Redis edge: the only module that imports redis.

Data model (names in :mod:`tracker.constants`; ``P`` is ``Settings.redis_prefix``, ``tracker:`` + namespace):

- per partition N of ``location-updates``, under the hash tag ``{Pp<N>}`` (:class:`PartitionKeys`):
  - ``pos:<partner_id>`` hash ``ts, lat, lon, json``: the latest accepted position, newer-wins by event time.
  - ``geo``: GEO set of the same positions, for bounding-box queries.
  - ``trail:<partner_id>``: capped sorted set of accepted points ``[ts, lat, lon, speed]`` by event time.
  - ``counters``: ``accepted``, ``duplicates``, ``rejected``, ``rejected:<reason>`` (summed over partitions).
  - ``progress:<topic>``: partition -> last offset whose effects are in Redis.
  - ``hist:full:*``, ``hist:step:*``, ``hist:fleet:*``: history, packed fixes per courier and time bucket
    (tracker/history/), written by the validator's script with the rest of a slice; each expires by itself.
  - ``events:progress:<topic>``, ``events:state:<N>``, ``events:clock``: the events' fold state of partition N
    of ``courier-positions`` (same partition numbers: both topics are keyed by courier with murmur2).
- ``{Pdlq}:dlq:*``: the review index of dead letters (:class:`ReviewKeys`; rules in tracker/dlq/index.py).
- ``{Pevents}:events:*``: the zone and status events' index (:class:`EventKeys`; tracker/events/).
- ``{Pdevices}:devices``, ``{Pdevices}:devices:tokens``: who may post to the ingest, by id and by token
  digest (:class:`DeviceRecord`).
- ``Phighwater:<topic>``, ``Pdeaths:<topic>``: crash-loop detection (validator.py); no script touches them, so
  they need no tag.

Redis Cluster (``REDIS_URL=redis-cluster://host:port,host:port``; tracker/settings.py): a Lua script may only
touch keys of one hash slot, and the client routes EVALSHA by its first key. So every key a script touches
carries the same hash tag (the part in braces, the only part Redis hashes), and scripts take their keys (and
key prefixes, which carry the tag too) in KEYS. A validator's slice is one partition's records, so its keys are
tagged by that partition: the partitions' slots spread over the nodes, and validators, which own disjoint
partitions, shard their writes with them. The tag holds the prefix, like the orders' ``{Porders}``, so that
deployments (and test namespaces) sharing a cluster spread over it too; ``{tracker:p0}`` .. ``{tracker:p11}`` fall
4/4/4 on a 3-node cluster with evenly split slots (what ``redis-cli --cluster create`` makes). The review
index, the events' index and the device registry are one script's keys each and get one fixed tag each (so
each lives on one node: they are written far less than positions).
One layout for a single Redis and a cluster (tags mean nothing to a single Redis), so there is one code path;
only the client differs (:func:`connect`). Cost on a single Redis: none measurable on the apply path (bench
throughput, docs/architecture.md); readers of every courier (the gateway's snapshot, /api/couriers, counters,
the expiry walk, the fleet's history) make one call per partition instead of one, pipelined.

A courier's keys are found by id through its partition: Kafka's default partitioner (murmur2 of the
``partner_id`` key, :func:`tracker.kafka.partition_for`) over ``TRACKER_LOCATION_PARTITIONS``, which must be
the topic's partition count. A record keyed by something else than its ``partner_id`` (docs/contract.md says
it must be) is stored under the partition it arrived on: it is in the per-partition reads (map, expiry,
counters) but not found by id (its courier's page, the validator's cold-cache lookup of its last fix).

Pipelines send EVALSHA, MGET and SUNION with ``execute_command``: redis-py's cluster pipeline refuses them by
name (they may span slots), though each of ours is within one slot. Every raw Redis call of the product is a
method here; the callers keep their logic (expiry.py the cut-off
and the walk, tracker/dlq/index.py the filters, cursors, pages and caps). A Lua script is passed every key it
touches and spells none; the review index's scripts live beside it and run through :meth:`Store.run_script`.

Exactly-once effects on at-least-once delivery: the validator writes a partition's slice of a batch with
one Lua script that also records the slice's last offset, and only then commits the Kafka offset. If it
dies between the two, the next owner reads ``progress`` on assignment and skips the records already
applied, so counters never double-count and trails never get a point twice. A slice names the progress it
was judged on (``prev``) and is refused (-1, "fenced") when Redis recorded another: some other member
wrote the partition meanwhile, and the slice's judgement rests on a history that is not the real one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.exceptions import ClusterError, NoScriptError, RedisClusterException, RedisError

from tracker import constants as c
from tracker.kafka import partition_for
from tracker.models import LastFix
from tracker.settings import Settings, cluster_nodes

log = logging.getLogger(__name__)

# Re-exported so callers can catch Redis errors without importing redis.
StoreError = RedisError

FENCED = -1

# The client never decodes replies (no decode_responses), so a reply redis-py types as ``bytes | str`` is
# bytes; the casts below say so, as its types cannot follow that setting.


def lua(name: str, package: str = "tracker") -> str:
    """The source of a Lua script shipped in ``package`` (package data: see pyproject.toml)."""
    return resources.files(package).joinpath(name).read_text("utf-8")


_APPLY_SCRIPT = lua("apply_batch.lua")
_EXPIRE_SCRIPT = lua("expire_couriers.lua")

# The device registry (keys: tracker/constants.py). Each script is given its keys as KEYS[1] (device id ->
# record) and KEYS[2] (token digest -> device id), so that a device and its digest come and go together.
_ADD_DEVICE_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
_REVOKE_DEVICE_SCRIPT = """
local record = redis.call('HGET', KEYS[1], ARGV[1])
if not record then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], cjson.decode(record)['sha256'])
return 1
"""
_DEVICE_BY_TOKEN_SCRIPT = """
local device = redis.call('HGET', KEYS[2], ARGV[1])
if not device then return false end
return {device, redis.call('HGET', KEYS[1], device)}
"""

# Hash tags (the docstring says why): a partition's is "p<N>", the others fixed.
TAG_DLQ = "dlq"
TAG_EVENTS = "events"
TAG_DEVICES = "devices"


def tagged(prefix: str, tag: str) -> str:
    """The start of every key under hash tag ``tag``: ``{<prefix><tag>}:`` (Redis Cluster hashes only what is
    between the first braces, so all such keys are in one slot)."""
    return "{" + prefix + tag + "}:"


def partition_tag(partition: int) -> str:
    return f"p{partition}"


class PartitionKeys(msgspec.Struct, frozen=True):
    """The keys of one partition (of ``location-updates``; the events' of ``courier-positions``), all under
    its hash tag."""

    pos: str  # + partner_id
    geo: str
    trail: str  # + partner_id
    counters: str
    progress: str  # + topic
    hist_full: str  # + history key suffix
    hist_step: str  # + history key suffix
    hist_fleet: str  # + hour start
    events_progress: str  # + topic
    events_state: str
    events_clock: str

    @classmethod
    def of(cls, prefix: str, partition: int) -> PartitionKeys:
        base = tagged(prefix, partition_tag(partition))
        return cls(
            pos=base + c.KEY_POSITION,
            geo=base + c.KEY_GEO,
            trail=base + c.KEY_TRAIL,
            counters=base + c.KEY_COUNTERS,
            progress=base + c.KEY_PROGRESS,
            hist_full=base + c.KEY_HISTORY_FULL,
            hist_step=base + c.KEY_HISTORY_STEP,
            hist_fleet=base + c.KEY_HISTORY_FLEET,
            events_progress=base + c.KEY_EVENTS_PROGRESS,
            events_state=base + c.KEY_EVENTS_STATE + str(partition),
            events_clock=base + c.KEY_EVENTS_CLOCK,
        )


class _Cluster(RedisCluster):
    """The cluster client, whose failures are all StoreErrors: redis-py raises RedisClusterException, which is no
    RedisError, when no node can be reached (a cluster down at start, or all of it gone), so callers that
    handle a single Redis's outage (retry, 503) would let it through as a crash."""

    def __init__(self, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(max_connections=max_connections, **kwargs)
        # redis-py's cluster pools raise MaxConnectionsError at once beyond max_connections per node: commands
        # beyond that many in flight wait here instead (bounded by the whole client, so by every node's too).
        self._in_flight = asyncio.Semaphore(max_connections)

    async def initialize(self, *args: Any, **kwargs: Any) -> _Cluster:  # pipelines start here too
        try:
            await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterError(str(exc)) from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            async with self._in_flight:
                return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise ClusterError(str(exc)) from exc

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as redis-py makes its own


class _ClusterPipeline(ClusterPipeline):
    """A cluster pipeline that takes its turn with the client's commands (one connection per node at most)."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = cast("_Cluster", self.cluster_client)
        async with client._in_flight:
            return await super().execute(raise_on_error, allow_redirections)


def connect(settings: Settings) -> aioredis.Redis | RedisCluster:
    """The client for ``REDIS_URL``: a Redis Cluster client for ``redis-cluster://host:port,...``, else a
    single Redis's."""
    if not settings.redis_url:
        raise RuntimeError("REDIS_URL is not set and no embedded Redis was started")
    timeout = settings.redis_timeout_s
    cluster = cluster_nodes(settings.redis_url)
    if cluster is None:
        # A blocking pool: beyond redis_max_connections in flight (a storm of sockets connecting at once, each
        # checking its link), a command waits for a connection instead of failing with MaxConnectionsError.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        return aioredis.Redis.from_pool(pool)
    return _Cluster(
        max_connections=settings.redis_max_connections,
        startup_nodes=[ClusterNode(host, port) for host, port in cluster.nodes],
        username=cluster.username,
        password=cluster.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )


class Slice(msgspec.Struct, frozen=True):
    """One partition's share of a validator batch, ready to apply."""

    p: int
    prev: int  # the progress this slice was judged on; -2: apply whatever is recorded
    first: int
    last: int
    pos: list[tuple[str, int, float, float, str]]  # partner_id, ts, lat, lon, position JSON
    trail: list[tuple[str, list[int | str]]]  # partner_id, [ts, point, ts, point, ...]
    cnt: dict[str, int]
    # History appends (tracker/history/plan.py, Writes): to the full tier (key suffix, expiry) and to the step
    # tier (key suffix, expiry, partner id, hour, slot bounds); their packed points are passed beside the slice.
    hist: list[tuple[str, int]] = msgspec.field(default_factory=list)
    hist_step: list[tuple[str, int, str, str, int, int]] = msgspec.field(default_factory=list)


class ReviewKeys(msgspec.Struct, frozen=True):
    """The review index's key names under the deployment's prefix (what each holds: tracker/constants.py)."""

    entry: str  # + entry id
    index: str
    seen: str
    reasons: str
    statuses: str
    partners: str
    minute: str  # + minute start (epoch ms)
    bytes: str

    @classmethod
    def under(cls, prefix: str) -> ReviewKeys:
        base = tagged(prefix, TAG_DLQ)
        return cls(
            entry=base + c.KEY_DLQ_ENTRY,
            index=base + c.KEY_DLQ_INDEX,
            seen=base + c.KEY_DLQ_SEEN,
            reasons=base + c.KEY_DLQ_REASONS,
            statuses=base + c.KEY_DLQ_STATUSES,
            partners=base + c.KEY_DLQ_PARTNERS,
            minute=base + c.KEY_DLQ_MINUTE,
            bytes=base + c.KEY_DLQ_BYTES,
        )


class ReviewCounts(msgspec.Struct, frozen=True):
    """The review index's counters as stored (tracker/dlq/index.py shapes them for the API and the CLI)."""

    by_reason: dict[str, int]  # dead letters ever indexed
    by_status: dict[str, int]  # entries in the index
    by_partner: list[tuple[str, int]]  # the busiest couriers, most rejected first
    per_minute: list[int]  # one count per minute asked for
    indexed: int  # entries in the index
    indexed_bytes: int  # bytes of their JSON


class EventKeys(msgspec.Struct, frozen=True):
    """The events' index's key names under the deployment's prefix (what each holds: tracker/constants.py;
    the script that writes them is tracker/events/index_event.lua). The fold's per-partition keys are in
    :class:`PartitionKeys`."""

    data: str
    index: str
    partner: str  # + partner_id
    zone: str  # + zone name
    counts: str

    @classmethod
    def under(cls, prefix: str) -> EventKeys:
        base = tagged(prefix, TAG_EVENTS)
        return cls(
            data=base + c.KEY_EVENTS_DATA,
            index=base + c.KEY_EVENTS_INDEX,
            partner=base + c.KEY_EVENTS_PARTNER,
            zone=base + c.KEY_EVENTS_ZONE,
            counts=base + c.KEY_EVENTS_COUNTS,
        )


class DeviceRecord(msgspec.Struct, frozen=True):
    """A device that may post to the ingest, as stored: its token's SHA-256 (hex), never the token."""

    sha256: str
    created_ms: int


_decode_device = msgspec.json.Decoder(DeviceRecord).decode


class Store:
    def __init__(self, settings: Settings, client: aioredis.Redis | RedisCluster | None = None) -> None:
        # Typed loosely: both clients take the same calls, but redis-py types them apart.
        self.redis: Any = connect(settings) if client is None else client
        self.settings = settings
        prefix = self.prefix = settings.redis_prefix
        self.partitions = range(settings.location_partitions)  # what readers of every courier walk
        self._keys: dict[int, PartitionKeys] = {}
        self._courier_partitions: dict[str, int] = {}
        self.high_water_prefix = prefix + c.KEY_HIGH_WATER
        self.deaths_prefix = prefix + c.KEY_DEATHS
        self.review = ReviewKeys.under(prefix)
        self.events = EventKeys.under(prefix)
        devices = tagged(prefix, TAG_DEVICES)
        self.key_devices = devices + c.KEY_DEVICES
        self.key_device_tokens = devices + c.KEY_DEVICE_TOKENS
        self._shas: dict[str, str] = {}
        # Slices travel as MessagePack (cmsgpack in Redis's Lua): the position JSON inside is a plain string,
        # not an escaped one inside JSON. (Redis's cmsgpack reads no msgpack bin type, so no bytes here.)
        self._encoder = msgspec.msgpack.Encoder()

    async def close(self) -> None:
        await self.redis.aclose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- the key layout (the docstring says why) -----------------------------------------------------------

    def keys(self, partition: int) -> PartitionKeys:
        """The keys of ``partition`` (of any topic keyed by courier: the numbers are the same)."""
        keys = self._keys.get(partition)
        if keys is None:
            keys = self._keys[partition] = PartitionKeys.of(self.prefix, partition)
        return keys

    def partition_of(self, partner_id: str) -> int:
        """The ``location-updates`` partition of a courier's records, so of its keys: Kafka's default
        partitioner over the topic's partition count. Remembered (murmur2 is pure Python, ~5 us)."""
        partition = self._courier_partitions.get(partner_id)
        if partition is None:
            if len(self._courier_partitions) >= 200_000:
                self._courier_partitions.clear()  # bounded: ids are minted by anyone
            partition = partition_for(partner_id.encode(), self.settings.location_partitions)
            self._courier_partitions[partner_id] = partition
        return partition

    def courier_keys(self, partner_id: str) -> PartitionKeys:
        return self.keys(self.partition_of(partner_id))

    async def last_fixes(self, partner_ids: list[str]) -> dict[str, LastFix | None]:
        """The last accepted fix of each courier (None for couriers never accepted)."""
        if not partner_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for partner_id in partner_ids:
            pipe.hmget(self.courier_keys(partner_id).pos + partner_id, "ts", "lat", "lon")
        rows = await pipe.execute()
        fixes: dict[str, LastFix | None] = {}
        for partner_id, (ts, lat, lon) in zip(partner_ids, rows, strict=True):
            fixes[partner_id] = None if ts is None else LastFix(int(ts), float(lat), float(lon))
        return fixes

    async def progress(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """Last applied offset per partition (-1 when nothing was applied)."""
        return await self._per_partition(lambda p: self.keys(p).progress + topic, partitions)

    async def _per_partition(self, key: Callable[[int], str], partitions: list[int]) -> dict[int, int]:
        """Field ``<partition>`` of each partition's hash ``key(partition)``, pipelined (-1 when none)."""
        if not partitions:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for p in partitions:
            pipe.hget(key(p), str(p))
        values = await pipe.execute()
        return {p: -1 if v is None else int(v) for p, v in zip(partitions, values, strict=True)}

    # -- crash-loop detection (validator.py, "A record a validator dies on") -------------------------------

    async def mark_high_water(self, topic: str, offsets: dict[int, int]) -> None:
        """Record, per partition, the last offset a validator is about to judge."""
        if offsets:
            await self.redis.hset(self.high_water_prefix + topic, mapping={str(p): o for p, o in offsets.items()})

    async def high_water(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """Last offset a validator started judging per partition (-1 when none)."""
        if not partitions:
            return {}
        values = await self.redis.hmget(self.high_water_prefix + topic, [str(p) for p in partitions])
        return {p: -1 if v is None else int(v) for p, v in zip(partitions, values, strict=True)}

    async def note_attempt(self, topic: str, partition: int, offset: int) -> int:
        """Count one more validator about to judge this record after a crash; returns the count."""
        return int(await self.redis.hincrby(self.deaths_prefix + topic, f"{partition}:{offset}", 1))

    async def clear_attempts(self, topic: str, records: list[tuple[int, int]]) -> None:
        if records:
            await self.redis.hdel(self.deaths_prefix + topic, *(f"{p}:{o}" for p, o in records))

    async def apply(self, topic: str, slices: list[Slice], blobs: list[list[bytes]] | None = None) -> list[int]:
        """Apply slices (one Lua call each, pipelined); 1 for applied, :data:`FENCED` for refused. ``blobs[i]``
        are the packed history points ``slices[i].hist`` points at."""
        if not slices:
            return []
        cap = self.settings.trail_max
        packed = blobs or [[] for _ in slices]
        calls = []
        for item, extra in zip(slices, packed, strict=True):
            k = self.keys(item.p)
            keys = [k.progress + topic, k.pos, k.geo, k.trail, k.counters, k.hist_full, k.hist_step, k.hist_fleet]
            calls.append([*keys, cap, self._encoder.encode(item), *extra])
        return [int(result) for result in await self.run_script(_APPLY_SCRIPT, calls, keys=8)]

    async def run_script(self, source: str, calls: list[list], keys: int = 0) -> list:
        """Run a Lua script once per argument list, pipelined (EVALSHA, loading it when the server lost it).
        The first ``keys`` items of each list are its KEYS (every key, or key prefix, it touches: all under one
        hash tag, for Redis Cluster, which routes the call by the first), the rest its ARGV."""
        for _ in range(2):
            sha = self._shas.get(source)
            if sha is None:
                sha = self._shas[source] = await self.redis.script_load(source)
            pipe = self.redis.pipeline(transaction=False)
            for args in calls:
                pipe.execute_command("EVALSHA", sha, keys, *args)
            try:
                return await pipe.execute()
            except NoScriptError:
                self._shas.pop(source, None)  # the server restarted and lost its script cache; nothing ran
        raise StoreError("a Lua script could not be loaded")

    async def counters(self) -> dict[str, int]:
        """The counters, summed over the partitions."""
        pipe = self.redis.pipeline(transaction=False)
        for p in self.partitions:
            pipe.hgetall(self.keys(p).counters)
        totals: dict[str, int] = {}
        for raw in await pipe.execute():
            for k, v in cast("dict[bytes, bytes]", raw).items():
                name = k.decode()
                totals[name] = totals.get(name, 0) + int(v)
        return totals

    async def position_json(self, partner_id: str) -> bytes | None:
        return cast("bytes | None", await self.redis.hget(self.courier_keys(partner_id).pos + partner_id, "json"))

    async def positions_json(self, partner_ids: list[str]) -> list[bytes | None]:
        pipe = self.redis.pipeline(transaction=False)
        for partner_id in partner_ids:
            pipe.hget(self.courier_keys(partner_id).pos + partner_id, "json")
        return await pipe.execute()

    async def trail(self, partner_id: str, limit: int | None = None) -> list[list]:
        """Trail points ``[ts, lat, lon, speed]``, newest first by event time."""
        stop = (limit or self.settings.trail_max) - 1
        key = self.courier_keys(partner_id).trail + partner_id
        points = cast("list[bytes]", await self.redis.zrevrange(key, 0, stop))
        return [msgspec.json.decode(point) for point in points]

    async def partner_ids(self) -> list[str]:
        """Every courier with a position: the partitions' GEO sets, read together."""
        pipe = self.redis.pipeline(transaction=False)
        for p in self.partitions:
            pipe.zrange(self.keys(p).geo, 0, -1)
        return [member.decode() for members in await pipe.execute() for member in members]

    # -- courier expiry (expiry.py walks each partition's GEO set and decides the cut-off) -----------------

    async def scan_couriers(self, partition: int, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """One ZSCAN step over the partition's GEO set: the next cursor (0: done) and about ``count`` ids."""
        cursor, members = await self.redis.zscan(self.keys(partition).geo, cursor, count=count)
        return int(cursor), [cast("bytes", member) for member, _ in members]

    async def expire_couriers(self, partition: int, cutoff: int, partner_ids: list[bytes]) -> int:
        """Drop position, trail and GEO member of each of the partition's couriers whose latest fix is older
        than ``cutoff`` (epoch ms), atomically (expire_couriers.lua); returns how many expired."""
        if not partner_ids:
            return 0
        k = self.keys(partition)
        [count] = await self.run_script(_EXPIRE_SCRIPT, [[k.geo, k.pos, k.trail, cutoff, *partner_ids]], keys=3)
        return int(count)

    # -- history (tracker/history/ keeps the rules: the packing, the buckets, the window) ----------------------

    async def history_buckets(
        self, partner_id: str, full: list[str], step: list[str]
    ) -> tuple[list[bytes | None], list[bytes | None]]:
        """The stored points of the courier's full-tier and step-tier keys with these suffixes (None: no key),
        together."""
        k = self.courier_keys(partner_id)
        names = [k.hist_full + name for name in full] + [k.hist_step + name for name in step]
        values = cast("list[bytes | None]", await self.redis.execute_command("MGET", *names)) if names else []
        return values[: len(full)], values[len(full) :]

    async def history_fleet(self, hours: list[int]) -> list[str]:
        """The couriers with step-tier history in any of these hours (their starts, epoch ms), sorted."""
        pipe = self.redis.pipeline(transaction=False)
        for p in self.partitions:
            pipe.execute_command("SUNION", *[self.keys(p).hist_fleet + str(hour) for hour in hours])
        return sorted({member.decode() for members in await pipe.execute() for member in members})

    async def history_steps(
        self, partner_ids: list[str], suffixes: list[list[str]], chunk: int = 10_000
    ) -> list[list[bytes | None]]:
        """The step-tier points of each courier's keys (``suffixes[i]``: courier ``partner_ids[i]``'s): per
        partition (one slot), MGETs of up to ``chunk`` keys, pipelined (one reply to parse per chunk, not one
        per courier)."""
        names: dict[int, list[str]] = {}
        for partner_id, courier in zip(partner_ids, suffixes, strict=True):
            p = self.partition_of(partner_id)
            prefix = self.keys(p).hist_step
            names.setdefault(p, []).extend(prefix + name for name in courier)
        pipe = self.redis.pipeline(transaction=False)
        for group in names.values():
            for start in range(0, len(group), chunk):
                pipe.execute_command("MGET", *group[start : start + chunk])
        replies = iter(await pipe.execute())
        values: dict[int, list[bytes | None]] = {}
        for p, group in names.items():
            got = values[p] = []
            for _ in range(0, len(group), chunk):
                got.extend(next(replies))
        found: list[list[bytes | None]] = []
        at = dict.fromkeys(names, 0)
        for partner_id, courier in zip(partner_ids, suffixes, strict=True):
            p = self.partition_of(partner_id)
            found.append(values[p][at[p] : at[p] + len(courier)])
            at[p] += len(courier)
        return found

    # -- review index (tracker/dlq/index.py keeps the logic: its scripts, filters, cursors, pages) -----------

    async def review_fields(self, entry_ids: list[str], *fields: str) -> list[list[bytes | None]]:
        """The named fields of each entry's hash, pipelined (all None for an entry not in the index)."""
        if not entry_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.hmget(self.review.entry + entry_id, *fields)
        return await pipe.execute()

    async def review_ids(self, since_ms: int | None, until_ms: int | None) -> list[tuple[str, float]]:
        """Ids and rejected_at of the indexed entries rejected within ``since_ms``..``until_ms`` (inclusive,
        None: open), newest first."""
        high = "+inf" if until_ms is None else until_ms
        low = "-inf" if since_ms is None else since_ms
        scored = cast(
            "list[tuple[bytes, float]]",
            await self.redis.zrevrangebyscore(self.review.index, high, low, withscores=True),
        )
        return [(member.decode(), score) for member, score in scored]

    async def review_counts(self, minutes: list[int], top_partners: int) -> ReviewCounts:
        """The index's counters, read together (one round trip); ``minutes`` are minute starts (epoch ms)."""
        keys = self.review
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.reasons)
        pipe.hgetall(keys.statuses)
        pipe.zrevrange(keys.partners, 0, top_partners - 1, withscores=True)
        pipe.execute_command("MGET", *[keys.minute + str(m) for m in minutes])
        pipe.zcard(keys.index)
        pipe.get(keys.bytes)
        reasons, statuses, partners, per_minute, indexed, indexed_bytes = await pipe.execute()
        return ReviewCounts(
            by_reason={k.decode(): int(v) for k, v in reasons.items()},
            by_status={k.decode(): int(v) for k, v in statuses.items()},
            by_partner=[(member.decode(), int(score)) for member, score in partners],
            per_minute=[int(v or 0) for v in per_minute],
            indexed=int(indexed),
            indexed_bytes=int(indexed_bytes or 0),
        )

    # -- zone and status events (tracker/events/ keeps the logic: the fold, its scripts, the index's filters) --

    async def event_progress(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """Per partition of ``topic``, the last offset whose event decisions are applied (-1 when none)."""
        return await self._per_partition(lambda p: self.keys(p).events_progress + topic, partitions)

    async def event_clocks(self, partitions: list[int]) -> dict[int, int]:
        """Per partition, its event-time clock (epoch ms; -1 when none)."""
        return await self._per_partition(lambda p: self.keys(p).events_clock, partitions)

    def event_slice_keys(self, topic: str, partition: int) -> list[str]:
        """The KEYS of tracker/events/apply_events.lua for a slice of ``partition``."""
        k = self.keys(partition)
        return [k.events_progress + topic, k.events_state, k.events_clock]

    async def event_states(self, partition: int) -> dict[str, bytes]:
        """Every courier's stored fold state in ``partition`` (``<clock> <state JSON>``), by partner id."""
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(self.keys(partition).events_state))
        return {partner_id.decode(): value for partner_id, value in raw.items()}

    async def event_ids(
        self, key: str, since_ms: int | None, until_ms: int | None, start: int, count: int
    ) -> list[str]:
        """Up to ``count`` ids of the sorted set ``key`` (one of :class:`EventKeys`' indexes) with event time in
        ``since_ms``..``until_ms`` (inclusive; None: open), newest first, skipping the first ``start``."""
        high = "+inf" if until_ms is None else until_ms
        low = "-inf" if since_ms is None else since_ms
        members = cast("list[bytes]", await self.redis.zrevrangebyscore(key, high, low, start=start, num=count))
        return [member.decode() for member in members]

    async def event_docs(self, event_ids: list[str]) -> list[bytes | None]:
        """The JSON of each event (None for one evicted meanwhile)."""
        if not event_ids:
            return []
        return cast("list[bytes | None]", await self.redis.hmget(self.events.data, event_ids))

    async def event_counts(self) -> tuple[dict[str, int], int]:
        """Events ever indexed by type, and how many the index holds now."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.events.counts)
        pipe.zcard(self.events.index)
        counts, indexed = await pipe.execute()
        return {k.decode(): int(v) for k, v in counts.items()}, int(indexed)

    # -- devices that may post to the ingest (tracker/ingest/devices.py keeps the rules: ids, tokens) ---------

    async def add_device(self, device_id: str, token_sha256: str, created_ms: int) -> bool:
        """Register ``device_id`` with its token's SHA-256 (hex), atomically; False, and nothing changed, when
        the id is already registered."""
        record = msgspec.json.encode(DeviceRecord(token_sha256, created_ms))
        [added] = await self.run_script(
            _ADD_DEVICE_SCRIPT, [[self.key_devices, self.key_device_tokens, device_id, token_sha256, record]], keys=2
        )
        return bool(added)

    async def revoke_device(self, device_id: str) -> bool:
        """Forget ``device_id`` and its token's digest, atomically; False when it was not registered."""
        [revoked] = await self.run_script(
            _REVOKE_DEVICE_SCRIPT, [[self.key_devices, self.key_device_tokens, device_id]], keys=2
        )
        return bool(revoked)

    async def devices(self) -> dict[str, DeviceRecord]:
        """Every registered device and its record."""
        raw = cast("dict[bytes, bytes]", await self.redis.hgetall(self.key_devices))
        return {device_id.decode(): _decode_device(record) for device_id, record in raw.items()}

    async def device_by_token(self, token_sha256: str) -> tuple[str, DeviceRecord] | None:
        """The device whose token has this SHA-256 (hex), and its record, in one round trip; None if none."""
        [found] = await self.run_script(
            _DEVICE_BY_TOKEN_SCRIPT, [[self.key_devices, self.key_device_tokens, token_sha256]], keys=2
        )
        if not found or found[1] is None:
            return None
        return found[0].decode(), _decode_device(found[1])


# -- orders and their tracking links (tracker/orders/ keeps the rules: links, states, the fold) -------------
# A block of its own: every key here is under the one hash tag "{<prefix>orders}" and every script gets its
# keys in KEYS, so the orders' commands and scripts also run on Redis Cluster (one slot).

_ORDERS_SCRIPT = lua("orders.lua", "tracker.orders")
ORDERS_PRUNE_MAX = 100  # expired orders forgotten per create, at most
ORDERS_CHANGES_MAX = 10_000  # the changes stream keeps about this many entries (a reader further behind reads all)


class OrderKeys(msgspec.Struct, frozen=True):
    """The orders' key names (what each holds: tracker/constants.py), in the order orders.lua takes them."""

    data: str
    state: str
    open: str
    revoked: str
    expiry: str
    changes: str

    @classmethod
    def under(cls, prefix: str) -> OrderKeys:
        tag = "{" + prefix + c.KEY_ORDERS_TAG + "}"
        return cls(
            data=tag + c.KEY_ORDERS_DATA,
            state=tag + c.KEY_ORDERS_STATE,
            open=tag + c.KEY_ORDERS_OPEN,
            revoked=tag + c.KEY_ORDERS_REVOKED,
            expiry=tag + c.KEY_ORDERS_EXPIRY,
            changes=tag + c.KEY_ORDERS_CHANGES,
        )

    @property
    def all(self) -> list[str]:
        return [self.data, self.state, self.open, self.revoked, self.expiry, self.changes]


class OrderStore:
    """The orders' Redis reads and writes (``Store.orders``); values are passed and returned as stored."""

    def __init__(self, store: Store) -> None:
        self.redis = store.redis
        self.keys = OrderKeys.under(store.settings.redis_prefix)
        self._sha: str | None = None

    async def _script(self, op: str, *args: str | int | bytes) -> object:
        keys = self.keys.all
        for _ in range(2):
            if self._sha is None:
                self._sha = await self.redis.script_load(_ORDERS_SCRIPT)
            try:
                return await self.redis.evalsha(self._sha, len(keys), *keys, op, ORDERS_CHANGES_MAX, *args)
            except NoScriptError:
                self._sha = None  # the server restarted and lost its script cache; nothing ran
        raise StoreError("the orders' script could not be loaded")

    async def create(
        self, order_id: str, partner_id: str, record: bytes, state: str, expires_ms: int, now_ms: int
    ) -> bool:
        """Store a new order (``state``: ``"<state> <since ms>"``); False, and nothing changed, if the id is
        taken. Forgets a few orders that expired before ``now_ms`` on the way."""
        created = await self._script(
            "create", order_id, partner_id, record, state, expires_ms, now_ms, ORDERS_PRUNE_MAX
        )
        return bool(created)

    async def advance(self, states: list[str], delivered: str, moves: list[tuple[str, str, int]]) -> list[bool]:
        """Move each order (order_id, state, since ms) forward to ``state``, if it is not there or past it
        already (``states``: every state in the order they happen); True for each one moved."""
        if not moves:
            return []
        args = [part for move in moves for part in move]
        moved = cast("list[int]", await self._script("advance", ",".join(states), delivered, *args))
        return [bool(one) for one in moved]

    async def revoke(self, order_id: str) -> bool:
        """Refuse the order's links from now on; False for an unknown order."""
        return bool(await self._script("revoke", order_id))

    async def status(self, order_ids: list[str]) -> list[tuple[bytes | None, bool]]:
        """Each order's stored state (None: no such order, or forgotten) and whether it is revoked, in one
        round trip."""
        if not order_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.state, order_ids)
        pipe.zmscore(self.keys.revoked, order_ids)
        states, revoked = await pipe.execute()
        return [(held, score is not None) for held, score in zip(states, revoked, strict=True)]

    async def open_for(self, partner_ids: list[str]) -> list[tuple[str, bytes, bytes]]:
        """The open orders (not delivered, not revoked) of these couriers: (order_id, record, state) each;
        one round trip when none has any (the usual case), two otherwise."""
        if not partner_ids:
            return []
        lists = cast("list[bytes | None]", await self.redis.hmget(self.keys.open, partner_ids))
        order_ids = [order_id for raw in lists if raw is not None for order_id in msgspec.json.decode(raw)]
        if not order_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.data, order_ids)
        pipe.hmget(self.keys.state, order_ids)
        records, states = await pipe.execute()
        return [
            (order_id, record, state)
            for order_id, record, state in zip(order_ids, records, states, strict=True)
            if record is not None and state is not None
        ]

    async def last_change(self) -> str:
        """The id of the newest entry of the changes stream ("0-0": none): where a new reader starts."""
        newest = cast("list", await self.redis.xrevrange(self.keys.changes, count=1))
        return newest[0][0].decode() if newest else "0-0"

    async def changes(self, after: str, count: int = ORDERS_CHANGES_MAX) -> tuple[str, list[str] | None]:
        """The orders whose state moved, or which were revoked, after the changes stream's entry ``after``: the
        newest entry's id and their ids; None instead of the ids when more than ``count`` (or trimmed ones)
        may be missing: the reader must read every order it cares about."""
        entries = cast("list", await self.redis.xrange(self.keys.changes, min="(" + after, count=count + 1))
        if not entries:
            return after, []
        last = entries[-1][0].decode()
        if len(entries) > count:
            return last, None
        return last, [fields[b"o"].decode() for _, fields in entries]

    async def records(self, order_ids: list[str]) -> list[bytes | None]:
        if not order_ids:
            return []
        return cast("list[bytes | None]", await self.redis.hmget(self.keys.data, order_ids))

    async def listed(self, limit: int) -> list[tuple[str, bytes, bytes | None, bool]]:
        """Up to ``limit`` orders, latest expiry first: (order_id, record, state, revoked)."""
        ids = [i.decode() for i in cast("list[bytes]", await self.redis.zrevrange(self.keys.expiry, 0, limit - 1))]
        if not ids:
            return []
        records = await self.records(ids)
        statuses = await self.status(ids)
        return [
            (order_id, record, held, revoked)
            for order_id, record, (held, revoked) in zip(ids, records, statuses, strict=True)
            if record is not None
        ]
