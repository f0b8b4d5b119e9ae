"""Property tests: no payload can make the rules raise, and nothing they accept can fail downstream.

For any JSON value (huge integers, NaN/Infinity, lone surrogates and control characters, nesting of any depth),
any object with the ping's field names mapped to anything, any bytes, and any mutation of a good ping's bytes:
``parse`` returns a Ping or a Verdict with a known reason and a short, valid UTF-8 detail; the fast path and the
slow path (``parse_slowly``) agree; and an accepted Ping can be judged, encoded for Redis, the positions topic
and the page.
"""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tracker.geo import load_service_area
from tracker.models import ID_MAX, TS_MS_MAX, LastFix, Outcome, Ping, Position, Reason, Verdict
from tracker.rules import MAX_JSON_DEPTH, Limits, StatefulChecker, decode_json, judge, judge_replay, parse, parse_slowly
from tracker.settings import Settings

NOW = 1_795_000_000_000
SETTINGS = Settings()
LIMITS = Limits.from_settings(SETTINGS)
AREA = load_service_area(None)
FIELDS = ("partner_id", "lat", "lon", "ts", "speed", "heading", "accuracy", "vehicle", "order_id")
DETAIL_MAX = 200
JS_SAFE_INT = 2**53

# 300 examples a property keep the file within ~20 s on the 2-core CI machine. No example database: nothing
# is written into the working tree (a failure prints its example).
EXAMPLES = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# -- strategies ----------------------------------------------------------------------------------------------

# Control, separator, format (zero-width, bidi override, BOM, tag), private-use and unassigned characters, and
# JSON's own punctuation.
ODD = '\x00\x1b\t\n\x7f\x85\u2028\u2029\u200b\u202e\ufeff\ue000\U000e0001\U0010ffff\u0378 []{}"\\'
characters = st.characters() | st.characters(categories=["Cs"]) | st.sampled_from(ODD)  # Cs: lone surrogates
texts = st.text(characters, max_size=20) | st.text(characters, min_size=ID_MAX - 1, max_size=ID_MAX + 1)
# Mostly good id characters with the odd one in: the shape that gets furthest before a rule refuses it.
ids = st.lists(st.sampled_from("courier-0123") | characters, min_size=1, max_size=ID_MAX + 1).map("".join)
integers = (
    st.integers()
    | st.integers(-(10**330), 10**330)
    | st.sampled_from([0, -1, 2**53, 2**63 - 1, 2**63, 2**63 + 1, -(2**63) - 1, 2**64, TS_MS_MAX - 1, TS_MS_MAX, NOW])
)
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | integers | floats | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=8
)


@st.composite
def nestings(draw, inner=scalars) -> tuple[int, str]:
    """(depth, JSON text of a value inside that many arrays/objects); built as text, as json.dumps would
    recurse. The depth counts only the wrapping levels, not any inside ``inner``'s value."""
    depth = draw(st.integers(1, 1500) | st.integers(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 2))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    openers = ["[" if kinds[i % len(kinds)] else '{"k":' for i in range(depth)]
    closers = ["]" if opener == "[" else "}" for opener in reversed(openers)]
    return depth, "".join(openers) + to_json(draw(inner)) + "".join(closers)


def deeply_nested(inner=scalars) -> st.SearchStrategy[str]:
    return nestings(inner).map(lambda nesting: nesting[1])


def to_json(value: object, ascii_only: bool = True) -> str:
    # allow_nan writes NaN/Infinity literals; ensure_ascii writes a lone surrogate as a \ud800 escape.
    return json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)


@st.composite
def encoded(draw, values) -> bytes:
    """A value as JSON bytes: \\u escapes, or raw UTF-8 (a lone surrogate then makes the bytes invalid UTF-8)."""
    text = to_json(draw(values), ascii_only=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


# Values that pass parse (and mostly judge), so that examples reach acceptance and judging, not only rejection.
GOOD = {
    "partner_id": st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1, max_size=ID_MAX),
    "lat": st.floats(12.85, 13.1),
    "lon": st.floats(77.45, 77.75),
    "ts": st.integers(NOW - 200_000, NOW + 20_000) | st.just("2026-11-18T11:06:40+00:00"),
    "speed": st.floats(0, 60),
    "heading": st.floats(0, 360),
    "accuracy": st.floats(0.5, 100),
    "vehicle": st.sampled_from(["walk", "bike", "scooter", "car"]),
    "order_id": st.text(st.characters(categories=["L", "N", "P"]), min_size=1, max_size=ID_MAX),
}
# Any subset of the fields, each good or anything; or the required four good and the optional ones anything.
ping_like = st.fixed_dictionaries(
    {}, optional={name: GOOD[name] | json_values for name in FIELDS}
) | st.fixed_dictionaries(
    {name: GOOD[name] for name in FIELDS[:4]}, optional={name: GOOD[name] | json_values for name in FIELDS[4:]}
)
extra_fields = st.dictionaries(texts.filter(lambda key: key not in FIELDS), json_values, max_size=3)


@st.composite
def one_field_replaced(draw) -> dict:
    """A good ping with one field set to anything, or removed: each rule meets every kind of value alone."""
    doc = draw(st.fixed_dictionaries({name: GOOD[name] for name in FIELDS}))
    field = draw(st.sampled_from(FIELDS))
    value = draw(json_values | ids | integers | floats | st.just(...))
    if value is ...:
        del doc[field]
    else:
        doc[field] = value
    return doc


@st.composite
def ping_objects(draw) -> bytes:
    """An object with the ping's field names mapped to anything, perhaps with unknown fields too."""
    doc = draw(one_field_replaced() | ping_like | st.fixed_dictionaries(GOOD)) | draw(extra_fields)
    return draw(encoded(st.just(doc)))


@st.composite
def with_deep_value(draw) -> tuple[str, int, bytes]:
    """A good ping with one field (known or unknown) set to a nested value: (field, depth of the ping, bytes)."""
    doc = draw(st.fixed_dictionaries({name: GOOD[name] for name in FIELDS}))
    field = draw(st.sampled_from([*FIELDS, "extra"]))
    depth, value = draw(nestings(st.none() | st.booleans() | st.floats() | st.text(max_size=5)))
    body = to_json({name: value for name, value in doc.items() if name != field})
    return field, depth + 1, (body[:-1] + f', "{field}": ' + value + "}").encode()


@st.composite
def mutated_ping(draw) -> bytes:
    """A good ping's bytes, truncated, with bytes flipped, inserted or deleted."""
    raw = bytearray(to_json(draw(st.fixed_dictionaries({name: GOOD[name] for name in FIELDS}))).encode())
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        operation = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if operation == "truncate":
            del raw[position:]
        elif operation == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            raw[position:position] = draw(
                st.binary(max_size=8)
                | st.sampled_from(
                    [b"[" * 40, b'{"a":' * 40, b"NaN", b"9" * 400, b"\\ud800", b"\xed\xa0\x80", b"1e999", b"\x00"]
                )
            )
        elif operation == "delete":
            del raw[position : position + draw(st.integers(1, 8))]
    return bytes(raw)


fixes = (
    st.none()
    | st.builds(LastFix, st.integers(0, TS_MS_MAX - 1), st.floats(-90, 90), st.floats(-180, 180))
    | st.builds(LastFix, st.integers(NOW - 100_000, NOW), st.floats(12.9, 13.0), st.floats(77.5, 77.7))
)
clocks = st.just(NOW) | st.integers(0, TS_MS_MAX + 10**6)

# -- the properties ------------------------------------------------------------------------------------------


def assert_verdict_is_sound(verdict: Verdict) -> None:
    assert isinstance(verdict, Verdict)
    assert isinstance(verdict.outcome, Outcome)
    assert verdict.reason is None or isinstance(verdict.reason, Reason)
    assert (verdict.reason is None) == (verdict.outcome is not Outcome.REJECTED)
    assert isinstance(verdict.detail, str)
    assert len(verdict.detail) <= DETAIL_MAX
    verdict.detail.encode("utf-8")  # a dead letter's header value


def assert_safe_downstream(ping: Ping) -> None:
    """What the validator, Redis, the positions topic and the page do with an accepted ping."""
    ping.partner_id.encode("utf-8")  # Redis keys
    position = Position.from_ping(ping, NOW)
    text = msgspec.json.encode(position)  # courier-positions, the WebSocket
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(position), type=Position) == position  # Redis hash
    # What a browser's JSON.parse sees: standard JSON, finite numbers, integers it holds exactly.
    page = json.loads(text, parse_constant=lambda literal: pytest.fail(f"non-standard JSON literal {literal}"))
    assert 0 <= page["ts"] < JS_SAFE_INT
    assert all(math.isfinite(page[name]) for name in ("lat", "lon", "speed", "heading", "accuracy") if name in page)
    assert ping.partner_id.isprintable() and 1 <= len(ping.partner_id) <= ID_MAX
    assert ping.order_id is None or (ping.order_id.isprintable() and 1 <= len(ping.order_id) <= ID_MAX)


def check_total(raw: bytes | None, last: LastFix | None = None, now_ms: int = NOW) -> Ping | Verdict:
    parsed = parse(raw, LIMITS)
    slow = parse_slowly(raw, LIMITS) if raw is not None else parsed
    # Shown by --hypothesis-show-statistics.
    event(parsed.reason.value if isinstance(parsed, Verdict) and parsed.reason else "accepted")
    if isinstance(parsed, Verdict):
        assert_verdict_is_sound(parsed)
        assert parsed.outcome is Outcome.REJECTED
        assert isinstance(slow, Verdict) and slow.reason is parsed.reason
        return parsed
    assert type(parsed) is Ping
    assert slow == parsed, "the fast path accepted what the slow path reads differently"
    assert_safe_downstream(parsed)
    for rule in (judge, judge_replay):
        assert_verdict_is_sound(rule(parsed, last, now_ms, LIMITS, AREA))
    return parsed


@EXAMPLES
@given(encoded(json_values))
def test_any_json_value(raw):
    check_total(raw)


@EXAMPLES
@given(nestings(st.none() | st.booleans() | integers | floats | st.text(max_size=5)))
def test_any_nesting_depth(nesting):
    depth, text = nesting
    raw = text.encode()
    verdict = check_total(raw)
    if depth > MAX_JSON_DEPTH and len(raw) <= LIMITS.max_payload_bytes:
        assert isinstance(verdict, Verdict)
        assert verdict.reason is Reason.MALFORMED_PAYLOAD and "nested deeper than" in verdict.detail
        assert isinstance(decode_json(raw, LIMITS.max_payload_bytes), Verdict)
    elif depth <= MAX_JSON_DEPTH:
        assert not isinstance(decode_json(raw, LIMITS.max_payload_bytes), Verdict)


@EXAMPLES
@given(ping_objects(), fixes, clocks)
def test_any_values_under_the_pings_field_names(raw, last, now_ms):
    check_total(raw, last, now_ms)


@EXAMPLES
@given(st.sampled_from(["partner_id", "order_id"]), ids, st.booleans())
def test_an_id_is_accepted_exactly_when_it_is_1_to_64_printable_characters(field, value, ascii_only):
    doc = {"partner_id": "courier-1", "lat": 12.97, "lon": 77.59, "ts": NOW, field: value}
    parsed = check_total(to_json(doc, ascii_only).encode("utf-8", "surrogatepass"))
    meant = what_the_json_says(value, ascii_only)
    readable = meant.isprintable() and 1 <= len(meant) <= ID_MAX and (field == "order_id" or meant.strip())
    assert isinstance(parsed, Ping) == bool(readable), parsed


def what_the_json_says(value: str, ascii_only: bool) -> str:
    """The id a JSON text means. Escaped, a high surrogate followed by a low one ("\\ud834\\udc00") is one
    character, U+1D000, printable (hypothesis found this pair); raw, any surrogate makes the bytes invalid UTF-8,
    and a lone one is never a character: both stay as they are, and unprintable."""
    if not ascii_only:
        return value
    try:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:  # a lone surrogate
        return value


@EXAMPLES
@given(with_deep_value(), fixes)
def test_a_nested_value_in_any_field(deep, last):
    field, depth, raw = deep
    parsed = check_total(raw, last)
    if len(raw) <= LIMITS.max_payload_bytes and (field in FIELDS or depth > MAX_JSON_DEPTH):
        assert isinstance(parsed, Verdict)  # a known field never holds a container; an unknown one is bounded
    if depth > MAX_JSON_DEPTH and len(raw) <= LIMITS.max_payload_bytes:
        assert isinstance(parsed, Verdict)
        assert parsed.reason is Reason.MALFORMED_PAYLOAD and "nested deeper than" in parsed.detail


@EXAMPLES
@given(
    st.binary(max_size=300)
    | st.none()
    | st.tuples(st.binary(min_size=1, max_size=16), st.integers(4000, 4200)).map(lambda b: (b[0] * 4200)[: b[1]])
)
def test_any_bytes(raw):
    check_total(raw)


@EXAMPLES
@given(mutated_ping(), fixes)
def test_mutations_of_a_good_ping(raw, last):
    check_total(raw, last)


@EXAMPLES
@given(st.lists(ping_objects() | mutated_ping(), min_size=1, max_size=3))
def test_the_stateful_checker_gives_every_payload_a_verdict(payloads):
    checker = StatefulChecker(SETTINGS, AREA)
    accepted = set()
    for raw in payloads:
        verdict = checker.check(raw, NOW)
        assert_verdict_is_sound(verdict)
        if verdict.accepted:
            ping = parse(raw, LIMITS)
            assert isinstance(ping, Ping)
            accepted.add(ping.partner_id)
    assert set(checker.last_fixes) == accepted


@EXAMPLES
@given(st.binary(max_size=300) | encoded(json_values) | st.builds(str.encode, deeply_nested(json_values)))
def test_decode_json_returns_a_value_or_a_refusal(raw):
    decoded = decode_json(raw, LIMITS.max_payload_bytes)
    if isinstance(decoded, Verdict):
        assert_verdict_is_sound(decoded)
        assert decoded.reason is Reason.MALFORMED_PAYLOAD
    else:
        assert depth_of(decoded) <= MAX_JSON_DEPTH


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        value = list(value.values())
    return 1 + max(map(depth_of, value), default=0) if isinstance(value, list) else 0
