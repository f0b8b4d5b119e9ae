"""Review entries are total and bounded, replay counts cannot be forged, replays are signed, and edited
payloads are checked by the validator's parser (tracker/dlq/entry.py, tracker/dlq/actions.py)."""

from __future__ import annotations

import base64
import hashlib
import json

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tracker import constants as c
from tracker import replay_sig, rules
from tracker.dlq import entry as entry_module  # "entry" names the entries under test
from tracker.dlq.actions import ReplaysDisabled, check_edited, check_replays_enabled
from tracker.dlq.entry import (
    TOO_LARGE,
    Entry,
    PayloadRejected,
    ReplayRefused,
    entry_from_record,
    payload_of,
    replay_record,
)
from tracker.dlq.letter import dead_letter
from tracker.models import Reason, Record
from tracker.settings import Settings

SECRET = "unit-secret"
PAYLOAD_MAX = 4096
# The most an entry can take, whatever its record held: a payload preview (4 KiB, base64), the replay
# headers (the 16 KiB headers budget, base64), 64 headers shown at 256 characters a name and a value
# (6 bytes a character at worst, as JSON \u escapes), and a few short fields.
ENTRY_MAX_BYTES = 4 * PAYLOAD_MAX // 3 + 4 * 16 * 1024 // 3 + 64 * 2 * 256 * 6 + 16 * 1024
GOOD = {"partner_id": "courier-7", "lat": 12.97, "lon": 77.59, "ts": 1_795_000_000_000}


def dlq_record(value: bytes | None, headers=(), key: bytes | None = b"courier-7", offset: int = 9) -> Record:
    return Record("location-updates.DLQ", 1, offset, 1_795_000_002_000, key, value, tuple(headers))


def letter_headers(reason: str = "invalid_coordinates", **extra: bytes) -> list[tuple[str, bytes]]:
    headers = [
        (c.H_REASON, reason.encode()),
        (c.H_DETAIL, b"lat 95 is outside \xc2\xb190"),
        (c.H_ORIGINAL_TOPIC, b"location-updates"),
        (c.H_ORIGINAL_PARTITION, b"4"),
        (c.H_ORIGINAL_OFFSET, b"77"),
        (c.H_ORIGINAL_TIMESTAMP, b"1795000000000"),
        (c.H_REJECTED_AT, b"1795000001000"),
        (c.H_VALIDATOR, b"v1"),
    ]
    return headers + list(extra.items())


def entry_of(record: Record) -> Entry:
    return entry_from_record(record, replay_secret=SECRET, payload_max_bytes=PAYLOAD_MAX)


def stored_size(entry: Entry) -> int:
    return len(msgspec.json.encode(entry))


HOSTILE = {
    "no value": dlq_record(None, letter_headers("malformed_payload")),
    "300-digit int, no partner_id": dlq_record(
        b'{"lat": 1' + b"0" * 300 + b', "lon": 77.6, "ts": 1}', letter_headers("missing_partner_id")
    ),
    "lone surrogate id, bad coordinates": dlq_record(
        b'{"partner_id": "\\ud800", "lat": 95, "lon": 77.6, "ts": 1}', letter_headers(), key=b"\xed\xa0\x80"
    ),
    "lone surrogate id, json.loads only": dlq_record(
        b'{"partner_id": "\\ud800x", "lat": NaN, "lon": 1}', letter_headers()
    ),
    "60 KiB value": dlq_record(
        b'{"partner_id": "c", "pad": "' + b"p" * 60 * 1024 + b'"}', letter_headers("malformed_payload")
    ),
    "1 MiB value": dlq_record(b"\xff" * 1024 * 1024, letter_headers("malformed_payload")),
    "nested 1000 deep": dlq_record(b"[" * 1000 + b"]" * 1000, letter_headers("malformed_payload")),
    "nested 100000 deep": dlq_record(b"[" * 100_000, letter_headers("malformed_payload")),
    "not UTF-8": dlq_record(b"\xff\xfe{}", letter_headers("malformed_payload")),
    "null and non-UTF-8 header values": dlq_record(
        b"{}", [("null", None), ("bytes", b"\xff\x00\xfe"), *letter_headers()]
    ),
    "garbage dlq headers": dlq_record(
        b"{}",
        [
            (c.H_REASON, b"\xff" * 5000),
            (c.H_DETAIL, b"d" * 100_000),
            (c.H_REJECTED_AT, b"9" * 5000),
            (c.H_ORIGINAL_PARTITION, b"abc"),
            (c.H_ORIGINAL_OFFSET, b"\xd9\xa3"),
            (c.H_ATTEMPTS, b"-"),
            (c.H_TRUNCATED, b"yes"),
            (c.H_ORIGINAL_SIZE, b"-5"),
            (c.H_ORIGINAL_SHA256, b"not hex"),
            (c.H_VALIDATOR, None),
            (c.H_ORIGINAL_TOPIC, b"t" * 100_000),
        ],
    ),
    "no headers at all": dlq_record(b'{"partner_id": "c-9", "lat": 12.9, "lon": 77.6}', ()),
    "10000 headers": dlq_record(b"{}", [(f"h{i}", b"v" * 100) for i in range(10_000)] + letter_headers()),
    "huge header name": dlq_record(b"{}", [("n" * 1024 * 1024, b"v"), *letter_headers()]),
    "header names with lone surrogates": dlq_record(b"{}", [("bad\ud800", b"v"), ("\udcff", None), *letter_headers()]),
    "huge key": dlq_record(b"{}", letter_headers(), key=b"k" * 1024 * 1024),
    "control characters in partner_id": dlq_record(
        b'{"partner_id": "a\\u0000b", "lat": 12.9, "lon": 77.6}', letter_headers(), key=b"\x00\x01"
    ),
    "partner_id of 65 characters": dlq_record(
        json.dumps({"partner_id": "p" * 65}).encode(), letter_headers(), key=b"q" * 65
    ),
    "huge ints everywhere": dlq_record(
        json.dumps({"partner_id": "c", "lat": 10**400, "lon": -(10**400), "ts": 10**1000}).encode(), letter_headers()
    ),
    "forged replay count": dlq_record(
        json.dumps(GOOD).encode(), [*letter_headers(), (c.H_REPLAY_OF, b"0:1"), (c.H_REPLAY_COUNT, b"-1000")]
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_hostile_record_becomes_a_bounded_storable_entry(name):
    record = HOSTILE[name]
    entry = entry_of(record)
    assert entry.id == "1:9"
    assert isinstance(entry.reason, str)
    assert entry.reason.isprintable() and 0 < len(entry.reason) <= 64
    assert stored_size(entry) <= ENTRY_MAX_BYTES
    assert msgspec.json.decode(msgspec.json.encode(entry), type=Entry) == entry
    assert entry.replay_count >= 0
    if entry.partner_id is not None:
        assert entry.partner_id.isprintable() and len(entry.partner_id) <= 64
    for text in (entry.detail, entry.key or "", *(part for pair in entry.headers for part in pair)):
        text.encode("utf-8")  # JSON and Redis can carry every string of an entry


def test_a_readable_dead_letter_gives_its_fields():
    entry = entry_of(dlq_record(json.dumps(GOOD | {"lat": 95}).encode(), [*letter_headers(), ("null", None)]))
    assert (entry.reason, entry.detail) == ("invalid_coordinates", "lat 95 is outside ±90")
    assert (entry.partner_id, entry.lat, entry.lon) == ("courier-7", None, None)  # 95 is no latitude
    assert (entry.original.topic, entry.original.partition, entry.original.offset) == ("location-updates", 4, 77)
    assert entry.rejected_at == 1_795_000_001_000 and entry.validator == "v1"
    assert entry.replay_as_is and not entry.payload_truncated
    assert ["null", ""] in [list(pair) for pair in entry.headers]
    assert entry.headers_b64 == [("null", None)]  # the replay carries the original headers only


def test_hostile_fields_are_read_as_nothing_rather_than_wrongly():
    assert entry_of(HOSTILE["300-digit int, no partner_id"]).lat is None
    surrogate = entry_of(HOSTILE["lone surrogate id, bad coordinates"])
    assert surrogate.partner_id is None  # not printable, and the key is not UTF-8 either
    assert surrogate.reason == "invalid_coordinates"
    assert entry_of(HOSTILE["control characters in partner_id"]).partner_id is None
    assert entry_of(HOSTILE["partner_id of 65 characters"]).partner_id is None
    assert entry_of(HOSTILE["no headers at all"]).partner_id == "c-9"
    assert entry_of(HOSTILE["no headers at all"]).reason == "unknown"
    garbage = entry_of(HOSTILE["garbage dlq headers"])
    assert garbage.reason == "unknown" and len(garbage.detail) <= c.DETAIL_MAX_BYTES
    assert garbage.rejected_at == 1_795_000_002_000  # the record's own time, not a 5000-digit number
    assert (garbage.original.partition, garbage.original.offset) == (-1, -1)
    assert not garbage.replay_as_is  # dlq.truncated says the dead letter holds only part of the original
    assert garbage.payload_size is None and garbage.payload_sha256 is None  # their headers are garbage
    many = entry_of(HOSTILE["10000 headers"])
    assert len(many.headers) == 48 + 1 + 16
    assert many.headers[48] == ("…", "9944 more headers not shown")
    assert many.headers[-8][0] == c.H_REASON  # the dead letter's own headers come last and are shown


def test_a_large_payload_keeps_a_preview_with_its_size_and_sha256_and_is_not_replayed_as_is():
    value = b'{"partner_id": "c", "pad": "' + b"p" * 60 * 1024 + b'"}'
    entry = entry_of(dlq_record(value, letter_headers("malformed_payload")))
    assert entry.payload_truncated and not entry.replay_as_is
    assert payload_of(entry) == value[:PAYLOAD_MAX]
    assert (entry.payload_size, entry.payload_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    assert entry.partner_id == "courier-7"  # from the key: the preview is not decoded
    with pytest.raises(ReplayRefused, match="too large to replay as is; replay an edited payload"):
        replay_record(entry, cap=3, secret=SECRET)
    edited = json.dumps(GOOD).encode()
    assert replay_record(entry, cap=3, secret=SECRET, payload=edited, partner_id="courier-7").value == edited


def test_a_dead_letter_that_was_cut_reports_the_original_size_and_sha256():
    value = b'{"partner_id": "c", "lat": 1}' + b" " * 2000
    letter = dead_letter(
        Record("location-updates", 0, 5, 1, b"c", value, ()),
        Reason.MALFORMED_PAYLOAD,
        "x",
        group="g",
        validator_id="v",
        rejected_at_ms=2,
        value_max_bytes=1000,
    )
    assert letter.value is not None
    entry = entry_of(dlq_record(letter.value, letter.headers))
    assert len(letter.value) == 1000 <= PAYLOAD_MAX  # small enough to keep whole, but not the original
    assert entry.payload_truncated and not entry.replay_as_is
    assert (entry.payload_size, entry.payload_sha256) == (len(value), hashlib.sha256(value).hexdigest())
    with pytest.raises(ReplayRefused) as refused:
        replay_record(entry, cap=3, secret=SECRET)
    assert TOO_LARGE in str(refused.value)


def test_a_forged_replay_count_counts_for_nothing():
    entry = entry_of(HOSTILE["forged replay count"])
    assert entry.replay_count == 0
    out = replay_record(entry, cap=3, secret=SECRET)
    assert dict(out.headers)[c.H_REPLAY_COUNT] == b"1"  # the cap counts from zero, not from -1000


def test_a_genuine_replay_count_is_read_and_capped():
    value = json.dumps(GOOD | {"lat": 95}).encode()
    signed = replay_sig.replay_headers(SECRET, "0:1", 3, value)
    entry = entry_of(dlq_record(value, letter_headers() + list(signed)))
    assert entry.replay_count == 3
    with pytest.raises(ReplayRefused, match="already replayed 3 times; the cap is 3"):
        replay_record(entry, cap=3, secret=SECRET)
    # The same headers under another secret, or over another value, are not genuine.
    assert (
        entry_from_record(
            dlq_record(value, list(signed)), replay_secret="other", payload_max_bytes=PAYLOAD_MAX
        ).replay_count
        == 0
    )
    assert entry_of(dlq_record(value + b" ", list(signed))).replay_count == 0


def test_a_replay_is_signed_and_drops_earlier_dlq_and_replay_headers():
    value = json.dumps(GOOD).encode()
    headers = [
        ("trace", b"t1"),
        ("null", None),
        (c.H_REPLAY_OF, b"0:1"),
        (c.H_REPLAY_COUNT, b"1"),
        (c.H_REPLAY_SIG, b"forged"),
        *letter_headers(),
    ]
    entry = entry_of(dlq_record(value, headers))
    out = replay_record(entry, cap=3, secret=SECRET)
    assert out.value == value and out.key == b"courier-7"
    assert out.headers[:2] == (("trace", b"t1"), ("null", None))
    assert [name for name, _ in out.headers[2:]] == [c.H_REPLAY_OF, c.H_REPLAY_COUNT, c.H_REPLAY_SIG]
    assert dict(out.headers)[c.H_REPLAY_OF] == b"1:9"
    assert replay_sig.verified_count(out.headers, out.value, SECRET) == 1
    assert replay_sig.verified_count(out.headers, out.value, "another secret") is None


def test_the_minimal_entry_when_building_one_fails_anyway(monkeypatch):
    def a_future_bug(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(entry_module, "payload_fields", a_future_bug)
    entry = entry_of(dlq_record(b'{"partner_id": "c"}', letter_headers()))
    assert entry.id == "1:9" and entry.reason == "invalid_coordinates"
    assert "could not be read fully" in entry.detail and "RuntimeError" in entry.detail
    assert base64.b64decode(entry.payload_b64) == b'{"partner_id": "c"}' and not entry.replay_as_is
    big = entry_of(dlq_record(b"x" * 10_000, [("reason-less", None)]))
    assert big.reason == "unknown" and big.payload_truncated and big.payload_size == 10_000
    assert len(payload_of(big)) == PAYLOAD_MAX


header_values = st.one_of(st.none(), st.binary(max_size=300))
header_names = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            c.H_REASON,
            c.H_DETAIL,
            c.H_REJECTED_AT,
            c.H_ORIGINAL_PARTITION,
            c.H_ORIGINAL_SIZE,
            c.H_TRUNCATED,
            c.H_ORIGINAL_SHA256,
            c.H_ATTEMPTS,
            c.H_REPLAY_OF,
            c.H_REPLAY_COUNT,
            c.H_REPLAY_SIG,
        ]
    ),
)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.one_of(st.none(), st.binary(max_size=6000)),
    headers=st.lists(st.tuples(header_names, header_values), max_size=30),
    key=st.one_of(st.none(), st.binary(max_size=100)),
)
def test_any_value_and_any_headers_make_an_entry(value, headers, key):
    entry = entry_from_record(dlq_record(value, headers, key=key), replay_secret=SECRET, payload_max_bytes=1000)
    assert stored_size(entry) <= ENTRY_MAX_BYTES and entry.replay_count >= 0


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    doc=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(["partner_id", "lat", "lon", "ts", "x"]), children, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_any_json_value_makes_an_entry(doc):
    value = json.dumps(doc).encode()
    entry = entry_of(dlq_record(value, letter_headers()))
    assert entry.reason == "invalid_coordinates" and stored_size(entry) <= ENTRY_MAX_BYTES


# --- edited payloads --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (json.dumps(GOOD | {"lat": 10**400}), "invalid_coordinates"),
        ("[" * 1000 + "]" * 1000, "malformed_payload"),
        (json.dumps(GOOD | {"lat": 95}), "invalid_coordinates"),
        (json.dumps(GOOD | {"partner_id": ""}), "missing_partner_id"),
        ('{"partner_id": "\\ud800", "lat": 12.9, "lon": 77.6, "ts": 1}', None),
        ("not json", "malformed_payload"),
        ('{"partner_id": "c", "lat": 12.9, "lon": 77.6, "ts": 1, "pad": "' + "x" * 5000 + '"}', "malformed_payload"),
        ("\ud800", "malformed_payload"),
    ],
)
def test_an_edited_payload_the_parser_rejects_is_refused_with_its_code(payload, reason):
    with pytest.raises(PayloadRejected) as refused:
        check_edited(Settings(), payload)
    if reason is not None:
        assert refused.value.reason == reason
    assert str(refused.value).startswith(f"the edited payload would be rejected: {refused.value.reason}: ")


def test_an_edited_payload_is_refused_in_this_packages_words_not_pythons(monkeypatch):
    with pytest.raises(PayloadRejected) as surrogate:
        check_edited(Settings(), "ab\ud800")
    assert surrogate.value.detail == "payload is not UTF-8: a lone surrogate at character 2"

    def broken_parser(raw, limits):
        raise ValueError("invalid literal for int() with base 10: 'x'")

    monkeypatch.setattr(rules, "parse", broken_parser)
    with pytest.raises(PayloadRejected) as unchecked:
        check_edited(Settings(), json.dumps(GOOD))
    assert (unchecked.value.reason, unchecked.value.detail) == ("malformed_payload", "the payload could not be checked")


def test_an_edited_payload_the_parser_accepts_is_replayed_as_given():
    text = json.dumps(GOOD | {"partner_id": "courier-8"})
    assert check_edited(Settings(), text) == (text.encode(), "courier-8")
    assert check_edited(Settings(), text.encode()) == (text.encode(), "courier-8")


def test_no_replay_secret_no_replays():
    with pytest.raises(ReplaysDisabled, match="replays are disabled: no TRACKER_REPLAY_SECRET is configured"):
        check_replays_enabled(Settings())
    check_replays_enabled(Settings(replay_secret=SECRET))
