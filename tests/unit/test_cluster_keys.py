"""The key layout for Redis Cluster (tracker/store.py): every Lua script's keys in one hash slot, a courier's
keys in its Kafka partition's slot, the partitions spread over the nodes; and the redis-cluster:// URL.

The slot is computed here from Redis Cluster's specification (CRC16-CCITT/XMODEM of the hash tag, mod 16384),
not taken from the code under test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.dlq.entry import Entry, Original
from tracker.dlq.index import DlqIndex
from tracker.kafka import partition_for
from tracker.local import redis_cluster
from tracker.settings import Settings, SettingsError, cluster_nodes
from tracker.store import ReviewKeys, Slice, Store, StoreError

ROOT = Path(__file__).resolve().parents[2]


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    raw = key.encode()
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16(raw) % 16384


def test_the_slot_function_matches_the_specification():
    assert crc16(b"123456789") == 0x31C3  # the specification's check value
    assert slot("{user1000}.following") == slot("{user1000}.followers")
    assert slot("foo{}{bar}") == crc16(b"foo{}{bar}") % 16384  # an empty "{}" is no tag: the whole key


class Recorder:
    """Stands in for the client: records each script call's KEYS (nothing here talks to Redis)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list]] = []

    def pipeline(self, transaction: bool = False) -> Recorder:
        return self

    async def script_load(self, source: str) -> str:
        return "sha"

    def execute_command(self, name: str, sha: str, keys: int, *args) -> None:
        assert name == "EVALSHA"
        self.calls.append((keys, list(args[:keys])))

    async def execute(self) -> list:
        return [1] * len(self.calls)

    async def aclose(self) -> None:
        pass


def store(namespace: str = "t1.") -> tuple[Store, Recorder]:
    recorder = Recorder()
    return Store(Settings(namespace=namespace), client=recorder), recorder  # type: ignore[arg-type]


def one_slot(keys: list[str]) -> int:
    slots = {slot(key) for key in keys}
    assert len(slots) == 1, keys
    return slots.pop()


async def test_a_validator_slice_touches_only_its_partition_slot():
    held, recorder = store()
    for partition in range(held.settings.location_partitions):
        await held.apply("location-updates", [Slice(partition, -2, 0, 0, [], [], {})])
    slots = [one_slot(keys) for count, keys in recorder.calls]
    assert [count for count, _ in recorder.calls] == [8] * 12
    assert len(set(slots)) == 12  # one slot per partition, none shared


async def test_every_courier_key_a_slice_writes_is_in_the_slot_the_slice_runs_on():
    held, recorder = store()
    partner_id = "courier-42"
    partition = held.partition_of(partner_id)
    assert partition == partition_for(partner_id.encode(), 12)  # Kafka's default partitioner
    await held.apply("location-updates", [Slice(partition, -2, 0, 0, [], [], {})])
    [(_, keys)] = recorder.calls
    # The script builds the courier's keys from the prefixes it is given: pos:, trail:, hist:*:, fleet.
    built = [keys[1] + partner_id, keys[3] + partner_id, keys[5] + "0:" + partner_id, keys[6] + "0:" + partner_id]
    built.append(keys[7] + "0")
    assert {slot(key) for key in built} == {slot(keys[0])}
    # and the readers by id look there
    courier = held.courier_keys(partner_id)
    assert slot(courier.pos + partner_id) == slot(courier.trail + partner_id) == slot(keys[0])


async def test_the_expiry_script_touches_one_partition_slot():
    held, recorder = store()
    await held.expire_couriers(3, 0, [b"a", b"b"])
    [(count, keys)] = recorder.calls
    assert count == 3 and slot(keys[0]) == slot(held.keys(3).pos + "a")
    one_slot(keys)


async def test_the_events_slice_keys_are_in_the_partition_slot():
    held, _ = store()
    for partition in range(12):
        keys = held.event_slice_keys("courier-positions", partition)
        assert one_slot(keys) == slot(held.keys(partition).pos)


async def test_the_review_index_scripts_touch_one_slot():
    held, recorder = store()
    index = DlqIndex(held)
    original = Original("location-updates", 0, 1, 60_000)
    entry = Entry("e1", "bad_json", "", "c1", 60_000, original, None, None, 0, None, None, [], [], "")
    await index.add([entry])
    [(count, keys)] = recorder.calls
    assert count == 8
    one_slot([*keys, keys[0] + "e1"])
    review = ReviewKeys.under(held.prefix)
    assert slot(review.entry + "x") == slot(review.statuses)  # set_status.lua's two keys


async def test_the_device_scripts_and_the_events_index_touch_one_slot_each():
    held, recorder = store()
    await held.add_device("d1", "digest", 1)
    [(count, keys)] = recorder.calls
    assert count == 2
    one_slot(keys)
    events = held.events
    one_slot([events.data, events.index, events.partner + "c1", events.zone + "north", events.counts])


def test_no_lua_script_spells_a_key_or_reads_a_key_from_argv():
    """Keys come in KEYS (the client routes by them); a script that read key names from ARGV would run on
    whichever node the client picked."""
    scripts = sorted(ROOT.glob("tracker/**/*.lua"))
    assert len(scripts) >= 6
    for script in scripts:
        code = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())
        assert "KEYS[" in code, script
        for call in re.findall(r"redis\.call\('(\w+)', ARGV\[", code):
            pytest.fail(f"{script.name}: {call} on a key from ARGV")


def test_production_partitions_spread_evenly_over_an_evenly_split_3_node_cluster():
    held, _ = store(namespace="")
    ranges = redis_cluster.slot_ranges(3)
    per_node = [0, 0, 0]
    for partition in range(12):
        key = held.keys(partition).pos
        per_node[next(i for i, r in enumerate(ranges) if slot(key) in r)] += 1
    assert per_node == [4, 4, 4]
    assert held.keys(3).pos == "{tracker:p3}:pos:"


def test_the_cluster_slots_cover_every_slot_once():
    ranges = redis_cluster.slot_ranges(3)
    assert [slot for r in ranges for slot in r] == list(range(16384))


def test_redis_cluster_urls():
    assert cluster_nodes("redis://127.0.0.1:6379/0") is None
    parsed = cluster_nodes("redis-cluster://127.0.0.1:7000,127.0.0.1:7001")
    assert parsed is not None and parsed.nodes == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    secret = cluster_nodes("redis-cluster://app:s3cret@10.0.0.1:7000")
    assert secret is not None and (secret.username, secret.password) == ("app", "s3cret")
    with pytest.raises(SettingsError, match=r"^redis_url: redis-cluster:// wants host:port") as caught:
        Settings.from_env({"REDIS_URL": "redis-cluster://host"})
    assert "\n" not in str(caught.value) and str(caught.value).endswith("got 'host'")
    assert Settings.from_env({"TRACKER_EMBEDDED_REDIS": "cluster"}).embedded_redis == "cluster"


async def test_a_cluster_no_node_of_which_answers_is_a_store_error():
    """What the callers handle as an outage (retry, 503), as for a single Redis: redis-py's own exception for
    this is not a RedisError."""
    [port] = redis_cluster.node_ports(1)  # free: nothing listens there
    async with Store(Settings(redis_url=f"redis-cluster://127.0.0.1:{port}", redis_timeout_s=0.5)) as held:
        with pytest.raises(StoreError, match="cannot be connected"):
            await held.ping()
        with pytest.raises(StoreError):
            await held.counters()  # a pipeline
