"""Dead letters always fit the broker: the value, the key and the original headers are bounded, and what is
cut is said in headers (tracker/dlq/letter.py)."""

from __future__ import annotations

import hashlib

from tracker import constants as c
from tracker.dlq.letter import dead_letter
from tracker.models import Reason, Record
from tracker.settings import Settings

MIB = 1024 * 1024
# Apache Kafka's default max.message.bytes (a record batch of one record must fit it).
BROKER_LIMIT = 1024 * 1024 + 12


def record(value: bytes | None, headers=(), key: bytes | None = b"courier-1") -> Record:
    return Record("location-updates", 3, 42, 1_795_000_000_000, key, value, tuple(headers))


def letter(rec: Record, **bounds):
    return dead_letter(
        rec,
        Reason.MALFORMED_PAYLOAD,
        "payload is too big",
        group="g",
        validator_id="v1",
        rejected_at_ms=1_795_000_001_000,
        **bounds,
    )


def size_of(out) -> int:
    return (
        len(out.value or b"")
        + len(out.key or b"")
        + sum(len(name.encode()) + len(value or b"") for name, value in out.headers)
    )


def headers_of(out) -> dict:
    return dict(out.headers)


def test_a_one_mib_payload_is_cut_to_a_prefix_with_its_size_and_sha256():
    value = bytes(range(256)) * (4 * 1024)  # 1 MiB
    out = letter(record(value, headers=[("trace", b"abc")]))
    defaults = Settings()
    assert out.value == value[: defaults.dlq_value_max_bytes]
    found = headers_of(out)
    assert found[c.H_TRUNCATED] == b"true"
    assert found[c.H_ORIGINAL_SIZE] == str(MIB).encode()
    assert found[c.H_ORIGINAL_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert found["trace"] == b"abc" and found[c.H_REASON] == b"malformed_payload"
    assert size_of(out) < defaults.dlq_value_max_bytes + defaults.dlq_headers_max_bytes + 2 * c.DETAIL_MAX_BYTES
    assert size_of(out) < BROKER_LIMIT // 8


def test_a_value_within_the_bound_is_kept_whole_without_truncation_headers():
    value = b"x" * 100
    out = letter(record(value), value_max_bytes=100)
    assert out.value == value
    assert not {c.H_TRUNCATED, c.H_ORIGINAL_SIZE, c.H_ORIGINAL_SHA256, c.H_HEADERS_DROPPED} & set(headers_of(out))
    cut = letter(record(value + b"y"), value_max_bytes=100)
    assert cut.value == value and headers_of(cut)[c.H_ORIGINAL_SIZE] == b"101"


def test_original_headers_are_kept_in_order_while_they_fit_and_the_rest_are_counted():
    headers = [("a", b"1" * 40), ("b", b"2" * 40), ("c", b"3" * 40), ("d", b"4")]
    out = letter(record(b"{}", headers=headers), headers_max_bytes=100)
    names = [name for name, _ in out.headers]
    assert names[:2] == ["a", "b"]  # 41 + 41 bytes fit; "c" would make 123; "d" comes after it: dropped too
    assert "c" not in names and "d" not in names
    assert headers_of(out)[c.H_HEADERS_DROPPED] == b"2"
    assert c.H_TRUNCATED not in headers_of(out)  # the value is whole


def test_one_huge_header_cannot_make_the_dead_letter_too_big():
    out = letter(record(b"{}", headers=[("big", b"z" * MIB)]))
    assert "big" not in headers_of(out)
    assert headers_of(out)[c.H_HEADERS_DROPPED] == b"1"
    assert size_of(out) < 64 * 1024


def test_null_header_values_are_kept_as_null():
    out = letter(record(b"{}", headers=[("empty", None), ("x", b"")]))
    assert out.headers[:2] == (("empty", None), ("x", b""))


def test_a_none_value_stays_none():
    out = letter(record(None))
    assert out.value is None and c.H_TRUNCATED not in headers_of(out)


def test_a_huge_key_is_cut_and_marked():
    out = letter(record(b"{}", key=b"k" * MIB))
    assert out.key == b"k" * Settings().dlq_value_max_bytes
    found = headers_of(out)
    assert found[c.H_TRUNCATED] == b"true" and c.H_ORIGINAL_SIZE not in found  # the value is whole


def test_earlier_dlq_headers_are_replaced_not_accumulated_nor_counted():
    headers = [(c.H_REASON, b"stale_timestamp"), (c.H_DETAIL, b"old"), ("keep", b"1")]
    out = letter(record(b"{}", headers=headers))
    assert [value for name, value in out.headers if name == c.H_REASON] == [b"malformed_payload"]
    assert c.H_HEADERS_DROPPED not in headers_of(out)
    assert out.headers[0] == ("keep", b"1")


def test_a_header_name_no_producer_can_encode_is_dropped_and_counted():
    out = letter(record(b"{}", headers=[("bad\ud800", b"1"), ("good", b"2")]))
    assert [name for name, _ in out.headers][:1] == ["good"]
    assert headers_of(out)[c.H_HEADERS_DROPPED] == b"1"
