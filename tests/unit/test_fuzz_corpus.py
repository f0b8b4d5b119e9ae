"""The fuzz corpus: reproducible from its seed, every hostile kind present in the shapes and sizes the live
run needs, good pings that the rules accept, and hand-built batches that a Kafka client reads back."""

from __future__ import annotations

import collections
import itertools
import re

import pytest
from aiokafka.record.default_records import _DefaultRecordBatchPy

from fuzz.corpus import HUGE_VALUE_MAX, KINDS, NUMERIC_FIELDS, PAYLOAD_LIMIT, Corpus, payloads
from fuzz.live import parse_kinds
from fuzz.wire import RawBatch, encode_batch
from tracker.geo import load_service_area
from tracker.models import Outcome, Ping
from tracker.rules import Limits, StatefulChecker, parse
from tracker.settings import Settings

START_MS = 1_800_000_000_000


def fake_clock():
    """A clock that moves 3 ms per reading, so repeated runs read the same times."""
    ticks = itertools.count()
    return lambda: START_MS + 3 * next(ticks)


def take(count: int, seed: int = 7, **kwargs):
    return list(itertools.islice(payloads(seed, fake_clock(), **kwargs), count))


def nesting_depth(data: bytes) -> int:
    """The longest run of openers (the corpus nests with runs of ``[`` or of ``{"a":``)."""
    runs = [len(run) for run in re.findall(rb"\[+", data)]
    runs += [len(run) // 5 for run in re.findall(rb'(?:\{"a":)+', data)]
    return max(runs, default=0)


@pytest.fixture(scope="module")
def sample():
    return take(6000)


@pytest.fixture(scope="module")
def corpus():
    return Corpus(11, fake_clock())


def test_same_seed_same_payloads_other_seed_other_payloads():
    assert take(3000, seed=5) == take(3000, seed=5)
    assert take(300, seed=5) != take(300, seed=6)


def test_first_payloads_are_one_of_each_kind_then_the_mix_follows_the_shares(sample):
    assert next(p.kind for p in sample[: len(KINDS)]) == "valid"
    assert {p.kind for p in sample[: len(KINDS)]} == set(KINDS)
    valid_share = sum(p.kind == "valid" for p in sample) / len(sample)
    assert 0.2 < valid_share < 0.4
    assert sum(p.kind not in ("valid", "duplicate") for p in sample) / len(sample) > 0.5


def test_a_subset_of_kinds_yields_only_those():
    assert {p.kind for p in take(200, kinds=parse_kinds("deep_nesting,tombstone"))} == {"deep_nesting", "tombstone"}
    with pytest.raises(ValueError, match="unknown kind"):
        parse_kinds("deep_nesting,no_such_kind")


def test_good_pings_are_accepted_whatever_hostile_ones_did_and_repeats_are_duplicates(sample):
    area = load_service_area()
    checker = StatefulChecker(Settings(), area)
    clock = fake_clock()
    outcomes = collections.defaultdict(list)
    for payload in sample:  # every payload judged in order, as one partition would
        outcomes[payload.kind].append(checker.check(payload.value, clock()).outcome)
    assert Outcome.ACCEPTED in outcomes["mutation"] and Outcome.ACCEPTED in outcomes["odd_key"]
    assert set(outcomes["valid"]) == {Outcome.ACCEPTED}
    assert outcomes["duplicate"].count(Outcome.DUPLICATE) / len(outcomes["duplicate"]) > 0.7
    for payload in sample[:200]:
        if payload.kind == "valid":
            ping = parse(payload.value, Limits.from_settings(Settings()))
            assert isinstance(ping, Ping) and area.contains(ping.lat, ping.lon)
            assert payload.key == ping.partner_id.encode()


def test_deep_nesting_reaches_thousands_within_the_payload_limit_and_beyond_it(corpus):
    made = [corpus.payload("deep_nesting").value for _ in range(300)]
    within = [nesting_depth(v) for v in made if len(v) <= PAYLOAD_LIMIT]
    beyond = [nesting_depth(v) for v in made if len(v) > PAYLOAD_LIMIT]
    assert max(within) >= 1500 and min(within) >= 100
    assert max(beyond) >= 50_000
    assert max(len(v) for v in made) <= HUGE_VALUE_MAX


def test_huge_numbers_reach_every_numeric_field(corpus):
    made = b"\n".join(corpus.payload("huge_number").value for _ in range(400))
    for field in NUMERIC_FIELDS:
        assert re.search(rb'"' + field.encode() + rb'":-?\d{300,}[,}]', made), field
    assert re.search(rb'":-?\d{5000,}', made)  # past the payload limit too
    assert b"1e400" in made


def test_hostile_text_shapes_are_there(corpus):
    def many(kind: str, count: int = 300) -> list:
        return [corpus.payload(kind) for _ in range(count)]

    assert any(b"\\ud800" in p.value for p in many("unicode"))
    assert any(b"\\u202e" in p.value.lower() or "\u202e".encode() in p.value for p in many("unicode"))
    non_finite = b"".join(p.value for p in many("non_finite"))
    assert all(literal in non_finite for literal in (b":NaN", b":Infinity", b":-Infinity"))
    controls = many("control_chars")
    assert any(b"\\u0000" in p.value for p in controls) and any(b"\x01" in p.value for p in controls)
    assert any(len(p.value) > 100_000 for p in many("long_string"))
    assert any(_not_utf8(p.value) for p in many("non_utf8"))
    assert {p.value for p in many("tombstone", 20)} == {None}
    assert b"" in {p.value for p in many("empty", 100)}


def test_huge_values_go_up_to_the_broker_limit_and_no_further(corpus):
    sizes = [len(corpus.payload("huge_value").value) for _ in range(40)]
    assert min(sizes) > PAYLOAD_LIMIT
    assert HUGE_VALUE_MAX - 1024 < max(sizes) <= HUGE_VALUE_MAX


def test_odd_keys_and_headers(corpus):
    keys = {corpus.payload("odd_key").key for _ in range(200)}
    assert None in keys and any(k is not None and _not_utf8(k) for k in keys)
    headers = [corpus.payload("odd_headers").headers for _ in range(200)]
    assert max(len(h) for h in headers) >= 500
    values = [value for h in headers for _, value in h]
    assert None in values and any(v is not None and _not_utf8(v) for v in values)
    assert any(not name.isascii() for h in headers for name, _ in h)
    forged = [dict(corpus.payload("forged_replay").headers) for _ in range(200)]
    assert any(h.get("replay.count") == b"-1000" and "replay.of" in h for h in forged)
    raw = [corpus.payload("raw_header_name") for _ in range(20)]
    assert all(p.raw_header_names for p in raw)
    assert all(any(isinstance(n, bytes) and _not_utf8(n) for n, _ in p.headers) for p in raw)


def test_hand_built_batches_read_back_as_written():
    records: list[tuple[bytes | None, bytes | None, list[tuple[str | bytes, bytes | None]]]] = [
        (b"k", b'{"partner_id":"c1"}', [("app", b"1"), (b"bin", None)]),
        (None, None, []),
    ]
    batch = _DefaultRecordBatchPy(bytearray(encode_batch(records, START_MS)))
    assert batch.validate_crc()
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in batch] == [
        (0, b"k", b'{"partner_id":"c1"}', [("app", b"1"), ("bin", None)], START_MS),
        (1, None, None, [], START_MS),
    ]

    idempotent = RawBatch(encode_batch(records, START_MS), 2)
    idempotent._set_producer_state(42, 3, 17)  # what aiokafka's sender does for an idempotent producer
    stamped = _DefaultRecordBatchPy(bytearray(idempotent._build()))
    assert (stamped.producer_id, stamped.producer_epoch, stamped.base_sequence) == (42, 3, 17)
    assert stamped.validate_crc()


def test_a_header_name_that_is_not_utf8_reaches_the_wire_as_is():
    data = encode_batch([(b"k", b"v", [(b"\xff\xfename", b"v")])], START_MS)
    assert b"\xff\xfename" in data
    with pytest.raises(Exception, match="UnicodeDecodeError"):  # what every consumer built on aiokafka meets
        list(_DefaultRecordBatchPy(bytearray(data)))


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
