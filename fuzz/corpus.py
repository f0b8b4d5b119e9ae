"""The fuzz corpus: seeded payloads for ``location-updates``, good ones and every hostile shape we know of.

Pure and deterministic: the same seed and the same clock readings give the same bytes. The clock is the
caller's (epoch milliseconds), read once per ping that carries a timestamp, so good pings are fresh when
they are produced live and a test can pass a fake clock.

Good pings come from a fixed pool of couriers parked inside the built-in service area; each ping moves its
courier by at most a few metres with a reported accuracy larger than that, and its ``ts`` never goes back,
so a good ping judged in order is accepted. Hostile kinds that start from a good ping (a mutation, an odd key
that sends it to another partition, ...) take their couriers from a second pool, so whatever they do to a
courier's history, good pings never pay for it. A duplicate is an exact repeat (key, value and headers) of
the latest good ping. Every other kind is hostile; :data:`KINDS` names them with their share of the corpus.
The first payloads are one of each kind, so even a short run covers them all.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from tracker.geo import ServiceArea, load_service_area
from tracker.models import VEHICLES

Clock = Callable[[], int]
HeaderName = str | bytes  # bytes: a name that is not valid UTF-8 (aiokafka can't produce it; see fuzz.wire)
Headers = tuple[tuple[HeaderName, bytes | None], ...]
Made = tuple[bytes | None, bytes | None, Headers]  # key, value, headers: what each kind's maker returns

PAYLOAD_LIMIT = 4096  # the validator's default TRACKER_MAX_PAYLOAD_BYTES: hostile shapes come on both sides
# Largest value we produce: a Kafka broker refuses batches over max.message.bytes (1 MiB + 12 bytes by
# default, counting the batch framing, ~90 bytes with a short key). A value this close to the limit has no
# room left for the headers its dead letter adds: the validator must cut it (dlq.truncated).
HUGE_VALUE_MAX = 1_048_400
NUMERIC_FIELDS = ("lat", "lon", "ts", "speed", "heading", "accuracy")
STRING_FIELDS = ("partner_id", "vehicle", "order_id")
FIELDS = ("partner_id", "lat", "lon", "ts", "speed", "heading", "accuracy", "vehicle", "order_id")

# Kind -> relative share. Values over 4 KiB cost the broker and the dead-letter queue far more than the
# rest, so ``huge_value`` is rare (about 20 in 100,000).
KINDS: dict[str, float] = {
    "valid": 30.0,
    "duplicate": 4.0,
    "truncated": 4.0,
    "deep_nesting": 4.0,
    "huge_number": 5.0,
    "non_finite": 4.0,
    "wrong_type": 4.0,
    "unicode": 5.0,
    "control_chars": 3.0,
    "long_string": 3.0,
    "nulls": 3.0,
    "empty": 2.0,
    "random_bytes": 3.0,
    "non_utf8": 3.0,
    "not_object": 3.0,
    "unknown_fields": 4.0,
    "mutation": 6.0,
    "huge_value": 0.02,
    "tombstone": 1.0,
    "odd_key": 2.0,
    "odd_headers": 3.0,
    "forged_replay": 2.0,
    "raw_header_name": 1.0,
}


class Payload(NamedTuple):
    """One record for ``location-updates``; ``kind`` is a key of :data:`KINDS` (it is not produced)."""

    kind: str
    key: bytes | None
    value: bytes | None
    headers: Headers

    @property
    def record(self) -> Made:
        return self.key, self.value, self.headers

    @property
    def raw_header_names(self) -> bool:
        """Whether a header name is bytes that aiokafka's producer can't encode."""
        return any(isinstance(name, bytes) for name, _ in self.headers)


def payloads(
    seed: int,
    clock: Clock,
    *,
    kinds: dict[str, float] | None = None,
    area: ServiceArea | None = None,
    couriers: int = 500,
) -> Iterator[Payload]:
    """Endless payloads: one of each kind of ``kinds`` (default :data:`KINDS`) first, then a seeded mix."""
    corpus = Corpus(seed, clock, area=area, couriers=couriers)
    mix = dict(KINDS if kinds is None else kinds)
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown payload kind(s): {', '.join(sorted(unknown))}")
    names = list(mix)
    cumulative = list(itertools.accumulate(mix[name] for name in names))
    for name in sorted(names, key=lambda n: n != "valid"):  # a good ping first: a duplicate repeats one
        yield corpus.payload(name)
    choose = corpus.rng.choices
    while True:
        yield corpus.payload(choose(names, cum_weights=cumulative)[0])


# Strings that have broken parsers, ids, Redis keys, JSON encoders or pages somewhere. Escaped lone
# surrogates ("\ud800") are valid JSON that decodes to a str Python can't encode as UTF-8.
UNICODE = (
    "\ud800",
    "\udfff",
    "\udc00\ud800",
    "a\ud83d",
    "\ud83d\ude00",
    "😀",
    "👩‍👩‍👧‍👦",
    "\u202eright-to-left\u202c",
    "\u200b",
    "zero\u200bwidth\u200d",
    "\ufeffbom",
    "\uffff",
    "\ufffe",
    "\U0010ffff",
    "e\u0301\u0301\u0301",
    "ｆｕｌｌｗｉｄｔｈ",
    "ﷺ",
    "\u2028line\u2029sep",
    "𝕳𝖊𝖑𝖑𝖔",
    "courier\u0000nul",
    "İı",
    "ß",
    "\u00a0",
    " ",
    "\t",
    "\\",
    '"',
    "'; DROP TABLE couriers; --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%s%n",
    "${jndi:x}",
    "\u0085",
    "\x7f",
    "*",
    "pos:*",
    "{partner}",
    "\r\n",
    "ⅷ",
    "٣",
    "🇮🇳",
)
CONTROL = (*(chr(i) for i in range(32)), "\x7f", "\x85")
WRONG_VALUES: tuple[object, ...] = (
    True,
    False,
    "12.97",
    "",
    "77.59",
    [],
    {},
    [12.97, 77.59],
    {"v": 1},
    0,
    -1,
    1.5,
    "null",
    "NaN",
    [[[]]],
    {"lat": 12.97},
    -0.0,
    1e-300,
)
INVALID_UTF8 = (
    b"\xff",
    b"\xfe\xff",
    b"\xc0\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
    b"\x80",
    b"\xc3",
    b"\xf8\x88\x80\x80\x80",
    b"\xef\xbf",
)
NON_FINITE = ("NaN", "Infinity", "-Infinity")
ODD_HEADER_NAMES = (
    "",
    " ",
    "\u202ename",
    "zero\u200bwidth",
    "😀",
    "\ufeff",
    "\uffff",
    "\x00",
    "\n",
    "a" * 300,
    "dlq.reason",
    "dlq.original.offset",
    "replay.sig",
    "sim.expect",
    "İ",
    "ä",
    "\U0010ffff",
    "content-type",
)


class Corpus:
    """Makes one payload of a given kind at a time (:meth:`payload`); holds the seeded state."""

    def __init__(self, seed: int, clock: Clock, *, area: ServiceArea | None = None, couriers: int = 500) -> None:
        self.rng = random.Random(seed)
        self.clock = clock
        self.area = area or load_service_area()
        self.couriers = couriers  # ids 0..couriers-1 ping only good pings; the next as many, hostile ones
        self.homes = [self._inside_point() for _ in range(2 * couriers)]
        self.last_ts = [0] * (2 * couriers)
        self.recent_good: deque[Payload] = deque(maxlen=64)  # newest last
        self._makers: dict[str, Callable[[], Made]] = {kind: getattr(self, "_" + kind) for kind in KINDS}

    def payload(self, kind: str) -> Payload:
        key, value, headers = self._makers[kind]()
        return Payload(kind, key, value, tuple(headers))

    # --- good pings -------------------------------------------------------------------------------------

    def _inside_point(self) -> tuple[float, float]:
        """A point ~100 m or more inside the service area, so jitter never takes a courier out."""
        west, south, east, north = self.area.bounds
        margin = 0.001  # degrees, ~110 m
        while True:
            lat = round(self.rng.uniform(south, north), 6)
            lon = round(self.rng.uniform(west, east), 6)
            if all(
                self.area.contains(lat + dy, lon + dx)
                for dy, dx in ((0, 0), (margin, 0), (-margin, 0), (0, margin), (0, -margin))
            ):
                return lat, lon

    def good_doc(self, *, good_pool: bool = False) -> dict:
        """A ping that is accepted when judged in order: a few metres from home, accuracy 10-20 m.
        ``good_pool``: a courier that only good pings use (else one that hostile kinds share)."""
        rng = self.rng
        index = rng.randrange(self.couriers) + (0 if good_pool else self.couriers)
        lat, lon = self.homes[index]
        ts = max(self.clock(), self.last_ts[index] + 1)
        self.last_ts[index] = ts
        doc: dict = {
            "partner_id": f"fuzz-{index:04d}",
            "lat": round(lat + rng.uniform(-1.5e-5, 1.5e-5), 7),
            "lon": round(lon + rng.uniform(-1.5e-5, 1.5e-5), 7),
            "ts": ts,
        }
        if rng.random() < 0.1:  # ISO-8601 with an offset is a timestamp too
            doc["ts"] = datetime.datetime.fromtimestamp(ts / 1000, datetime.UTC).isoformat(timespec="milliseconds")
        if rng.random() < 0.8:
            doc["accuracy"] = round(rng.uniform(10, 20), 1)
            doc["speed"] = round(rng.uniform(0, 12), 2)
            doc["heading"] = round(rng.uniform(0, 360), 1)
            doc["vehicle"] = rng.choice(VEHICLES)
        else:
            doc["accuracy"] = 15.0
        if rng.random() < 0.3:
            doc["order_id"] = f"order-{rng.randrange(10**6):06d}"
        return doc

    def good_bytes(self) -> tuple[bytes | None, bytes]:
        """(key, value) of a good ping from the pool hostile kinds share."""
        doc = self.good_doc()
        return key_of(doc), dumps(doc)

    def _valid(self):
        doc = self.good_doc(good_pool=True)
        key, value = key_of(doc), dumps(doc)
        headers = (("app", b"courier-android/4.2.1"),) if self.rng.random() < 0.2 else ()
        self.recent_good.append(Payload("valid", key, value, headers))
        return key, value, headers

    def _duplicate(self):
        if not self.recent_good:
            return self._valid()
        # Mostly the latest good ping (a duplicate); sometimes an older one (out of order, or a duplicate
        # if its courier has not pinged since).
        pick = self.recent_good[-1] if self.rng.random() < 0.8 else self.rng.choice(self.recent_good)
        return pick.record

    # --- broken JSON ------------------------------------------------------------------------------------

    def _truncated(self):
        key, value = self.good_bytes()
        return key, value[: self.rng.randrange(len(value))], ()

    def _mutation(self):
        rng = self.rng
        key, value = self.good_bytes()
        data = bytearray(value)
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(3)
            at = rng.randrange(len(data) + (op == 1)) if data else 0
            if op == 0 and data:
                data[at] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[at:at] = rng.choice(
                    (
                        b"{",
                        b"}",
                        b"[",
                        b"]",
                        b'"',
                        b"\\",
                        b",",
                        b":",
                        b"9" * rng.randint(1, 400),
                        b"\xff",
                        b"\x00",
                        b"-",
                        b"e999",
                        b".",
                        rng.randbytes(rng.randint(1, 8)),
                    )
                )
            elif data:
                del data[at : at + rng.randint(1, 4)]
        return key, bytes(data), ()

    def _random_bytes(self):
        rng = self.rng
        data = rng.randbytes(rng.choice((1, 2, 8, 64, 512, rng.randint(1, PAYLOAD_LIMIT))))
        if rng.random() < 0.3:
            data = b'{"partner_id":' + data
        return rng.choice((None, b"fuzz-0000", rng.randbytes(8))), data, ()

    def _empty(self):
        return b"fuzz-0000", self.rng.choice((b"", b" ", b"\n\t\r ", b"{}", b"[]", b'""', b"0", b"\x00")), ()

    def _tombstone(self):
        return self.rng.choice((None, b"fuzz-0001", b"")), None, ()

    # --- JSON that is not a ping ------------------------------------------------------------------------

    def _deep_nesting(self):
        rng = self.rng
        key = f"fuzz-{rng.randrange(len(self.homes)):04d}".encode()
        variant = rng.randrange(6)
        if variant == 0:  # arrays, closed, as deep as 4 KiB allows
            depth = rng.randint(500, PAYLOAD_LIMIT // 2 - 8)
            return key, b"[" * depth + b"]" * depth, ()
        if variant == 1:  # objects, closed
            depth = rng.randint(200, (PAYLOAD_LIMIT - 2) // 6)
            return key, b'{"a":' * depth + b"0" + b"}" * depth, ()
        if variant == 2:  # deep inside a field of an otherwise good ping, within 4 KiB
            doc = self.good_doc()
            field = rng.choice(("lat", "lon", "ts", "partner_id", "order_id", "vehicle", "speed"))
            budget = (PAYLOAD_LIMIT - len(dumps(doc)) - 16) // 2
            doc[field] = Raw(b"[" * budget + b"12.97" + b"]" * budget)
            return key, dumps(doc), ()
        if variant == 3:  # deep inside an unknown field of a good ping
            doc = self.good_doc()
            budget = (PAYLOAD_LIMIT - len(dumps(doc)) - 24) // 2
            depth = rng.randint(budget // 2, budget)
            doc["extra"] = Raw(b"[" * depth + b"1" + b"]" * depth)
            return key, dumps(doc), ()
        if variant == 4:  # never closed
            depth = rng.randint(1000, PAYLOAD_LIMIT - 20)
            return key, b'{"partner_id":' + b"[" * depth, ()
        opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))  # beyond 4 KiB; rarely up to the broker's limit
        depth = (
            (HUGE_VALUE_MAX - 1) // (len(opener) + len(closer))
            if rng.random() < 0.02
            else rng.choice((PAYLOAD_LIMIT, 10_000, 50_000))
        )
        return key, opener * depth + b"1" + closer * depth, ()

    def _not_object(self):
        rng = self.rng
        key, good = self.good_bytes()
        value = rng.choice(
            (
                b"[" + good + b"]",
                b'"' + good.replace(b'"', b'\\"') + b'"',
                b"12.97",
                b"true",
                b"false",
                b"null",
                b"-0",
                b"[]",
                b'"partner_id"',
                b"[" + good + b"," + good + b"]",
                b"1e400",
                b"NaN",
                b'"\\ud800"',
            )
        )
        return key, value, ()

    def _unknown_fields(self):
        rng = self.rng
        doc = self.good_doc()
        for _ in range(rng.randint(1, 10)):
            name = rng.choice(
                (
                    "extra",
                    "battery",
                    "meta",
                    "",
                    "LAT",
                    "lat ",
                    "__proto__",
                    "constructor",
                    rng.choice(UNICODE),
                    "x" * rng.randint(1, 200),
                )
            )
            doc[name] = self.random_json(rng.randint(0, 6))
        value = dumps(doc, ascii=True)
        if rng.random() < 0.2:  # a duplicate known field after the good one: which one wins?
            field = rng.choice(FIELDS)
            value = value[:-1] + b',"' + field.encode() + b'":' + dumps(rng.choice(WRONG_VALUES)) + b"}"
        return key_of(doc), value, ()

    def random_json(self, depth: int) -> object:
        rng = self.rng
        if depth <= 0 or rng.random() < 0.3:
            leaf = rng.randrange(8)
            if leaf == 0:
                return Raw(big_int(rng, rng.randint(20, 400)))
            if leaf == 1:
                return Raw(rng.choice(NON_FINITE).encode())
            if leaf == 2:
                return rng.choice(UNICODE)
            if leaf == 3:
                return "x" * rng.randint(0, 100)
            if leaf == 4:
                return rng.randint(-(10**6), 10**6)
            return rng.choice((None, True, False, 0, -1, 0.5, ""))
        if rng.random() < 0.5:
            return [self.random_json(depth - 1) for _ in range(rng.randint(0, 4))]
        return {
            rng.choice(("a", "b", "", "😀", "\ud800", "lat", "ts")) + str(i): self.random_json(depth - 1)
            for i in range(rng.randint(0, 4))
        }

    # --- bad values in the ping's fields ----------------------------------------------------------------

    def _huge_number(self):
        rng = self.rng
        doc = self.good_doc()
        fields = rng.sample(NUMERIC_FIELDS, rng.choice((1, 1, 1, 2, len(NUMERIC_FIELDS))))
        if rng.random() < 0.1:
            fields.append(rng.choice(("partner_id", "order_id", "vehicle", "extra")))
        beyond = rng.random() < 0.1
        room = (PAYLOAD_LIMIT - len(dumps(doc)) - 8 * len(fields)) // len(fields)
        for field in fields:
            form = rng.randrange(5)
            if form == 0 or beyond:  # 300+ digits, up to what fits (or well beyond 4 KiB)
                digits = rng.randint(300, max(300, room)) if not beyond else rng.randint(5_000, 50_000)
                doc[field] = Raw(big_int(rng, digits))
            elif form == 1:  # exponent past float range either way
                doc[field] = Raw(
                    rng.choice((b"1e400", b"-1e400", b"1e-400", b"123456789e999999999", b"1E+309", b"-0.0e-999"))
                )
            elif form == 2:  # a float with 300+ digits before the point
                doc[field] = Raw(big_int(rng, rng.randint(300, max(300, min(room, 1200)))) + b".5")
            elif form == 3:  # 300+ digits after the point
                doc[field] = Raw(b"12." + b"9" * rng.randint(300, max(300, min(room, 1200))))
            else:  # just past the 64-bit range
                doc[field] = Raw(str(rng.choice((2**63, -(2**63) - 1, 2**64, 10**20, -(10**20)))).encode())
        return key_of(doc), dumps(doc), ()

    def _non_finite(self):
        rng = self.rng
        doc = self.good_doc()
        for field in rng.sample(NUMERIC_FIELDS, rng.randint(1, 3)):
            doc[field] = Raw(rng.choice(NON_FINITE).encode()) if rng.random() < 0.8 else rng.choice(NON_FINITE)
        if rng.random() < 0.2:
            doc["extra"] = Raw(b"[NaN, Infinity, -Infinity]")
        return key_of(doc), dumps(doc), ()

    def _wrong_type(self):
        rng = self.rng
        doc = self.good_doc()
        for field in rng.sample(FIELDS, rng.randint(1, 3)):
            doc[field] = rng.choice(WRONG_VALUES)
        return key_of(doc), dumps(doc), ()

    def _nulls(self):
        rng = self.rng
        doc = self.good_doc()
        fields = FIELDS if rng.random() < 0.2 else rng.sample(FIELDS, rng.randint(1, 4))
        for field in fields:
            if rng.random() < 0.8:
                doc[field] = None
            else:
                doc.pop(field, None)
        return rng.choice((None, b"fuzz-0002")), dumps(doc), ()

    def _unicode(self):
        rng = self.rng
        doc = self.good_doc()
        text = "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 4)))
        field = rng.choice(("partner_id", "partner_id", "order_id", "vehicle", "extra", "key"))
        if field == "partner_id":
            text = text[:64]
        if field == "key":
            doc[text] = rng.choice(UNICODE)
        else:
            doc[field] = text
        partner_id = doc["partner_id"]
        # Lone surrogates can only travel escaped; otherwise send raw UTF-8 half of the time.
        encodable = _utf8(partner_id) is not None and _utf8(text) is not None
        value = dumps(doc, ascii=not encodable or rng.random() < 0.5)
        return key_of(doc), value, ()

    def _control_chars(self):
        rng = self.rng
        doc = self.good_doc()
        text = "".join(rng.choice(CONTROL) + rng.choice(("", "id", "x")) for _ in range(rng.randint(1, 6)))
        field = rng.choice(STRING_FIELDS)
        if rng.random() < 0.5:
            doc[field] = text  # escaped: valid JSON
        else:  # raw control bytes inside a JSON string: not JSON
            doc[field] = Raw(b'"' + text.encode() + b'"')
        return key_of(doc), dumps(doc), ()

    def _long_string(self):
        rng = self.rng
        doc = self.good_doc()
        field = rng.choice(("partner_id", "partner_id", "order_id", "vehicle", "extra"))
        if rng.random() < 0.8:  # within 4 KiB (ASCII, so characters are bytes)
            length = rng.choice((65, 100, 1000, PAYLOAD_LIMIT - len(dumps(doc)) - 20))
            alphabet = "abcxyz0123 -_."
        else:
            length = int(PAYLOAD_LIMIT * 50 ** rng.random())  # log-uniform, 4 KiB to 200 K characters
            alphabet = "abcxyz0123 é😀"
        unit = "".join(rng.choice(alphabet) for _ in range(50))
        doc[field] = (unit * (length // len(unit) + 1))[:length]
        return key_of(doc), dumps(doc), ()

    def _non_utf8(self):
        rng = self.rng
        key, good = self.good_bytes()
        variant = rng.randrange(4)
        if variant == 0:  # invalid bytes inside a string
            junk = rng.choice(INVALID_UTF8)
            value = good.replace(b'"fuzz-', b'"fuzz-' + junk, 1)
        elif variant == 1:
            value = good.decode().encode(rng.choice(("utf-16", "utf-16-be", "utf-32")))
        elif variant == 2:  # Latin-1 where UTF-8 belongs
            value = good[:-1] + ',"note":"caf\xe9"}'.encode("latin-1")
        else:  # a byte-order mark: valid UTF-8, not valid JSON
            value = b"\xef\xbb\xbf" + good
        return key, value, ()

    def _huge_value(self):
        rng = self.rng
        # Log-uniform from 4 KiB to the broker's limit; a third of them within 1 KiB of it.
        size = (
            HUGE_VALUE_MAX - rng.randrange(1024)
            if rng.random() < 1 / 3
            else min(HUGE_VALUE_MAX, int(PAYLOAD_LIMIT * (HUGE_VALUE_MAX / PAYLOAD_LIMIT) ** rng.random()) + 1)
        )
        variant = rng.randrange(3)
        if variant == 0:  # a good ping padded with an unknown field
            doc = self.good_doc()
            head = dumps(doc)[:-1] + b',"pad":"'
            value = head + b"x" * max(0, size - len(head) - 2) + b'"}'
        elif variant == 1:
            value = rng.randbytes(size)
        else:
            value = b"[" * (size // 2) + b"]" * (size // 2)
        return rng.choice((None, b"fuzz-0004")), value, ()

    # --- keys and headers -------------------------------------------------------------------------------

    def _odd_key(self):
        rng = self.rng
        _, value = self.good_bytes()
        key = rng.choice(
            (
                None,
                b"",
                rng.randbytes(rng.randint(1, 32)),
                b"\xff\xfe\xfd",
                b"\x00" * 16,
                b"k" * 10_000,
                b"fuzz-9999",
                "\u202ekey".encode(),
                "\ud800".encode("utf-8", "surrogatepass"),
            )
        )
        return key, value, ()

    def _odd_headers(self):
        rng = self.rng
        key, value = self.good_bytes()
        headers: list[tuple[str, bytes | None]] = []
        variant = rng.randrange(4)
        if variant == 0:  # many
            headers = [(f"h{i}", b"v") for i in range(rng.choice((100, 500, 2000)))]
        elif variant == 1:  # None and binary values
            headers = [
                (f"h{i}", rng.choice((None, b"", rng.randbytes(rng.randint(1, 64)), b"\xff" * 8)))
                for i in range(rng.randint(1, 10))
            ]
        elif variant == 2:  # unusual names, repeated names, forged dead-letter headers
            headers = [
                (rng.choice(ODD_HEADER_NAMES), rng.choice((b"x", None, b"\x00\xff", b"-1000")))
                for _ in range(rng.randint(1, 12))
            ]
        else:  # one large header value
            headers = [("blob", rng.randbytes(rng.choice((1000, 10_000, 60_000))))]
        return key, value, headers

    def _forged_replay(self):
        rng = self.rng
        doc = self.good_doc()
        # Old enough to be stale: a replay header that skipped the age check would let it through.
        if not isinstance(doc["ts"], int):
            doc["ts"] = self.clock()
        doc["ts"] -= rng.choice((3_600_000, 86_400_000, 30 * 86_400_000))
        count = rng.choice((b"-1000", b"0", b"1", b"3", b"-1", b"99999999999", big_int(rng, 400), b"abc", b"", None))
        headers = [
            ("replay.of", rng.choice((b"0:1", b"2:1534", b"", b"\xff", b"x" * 1000, None))),
            ("replay.count", count),
        ]
        sig = rng.choice((None, b"", b"0" * 64, rng.randbytes(32).hex().encode(), b"\xff"))
        if sig is not None:
            headers.append(("replay.sig", sig))
        if rng.random() < 0.2:  # the same header twice
            headers.append(("replay.count", b"1"))
        rng.shuffle(headers)
        return key_of(doc), dumps(doc), headers

    def _raw_header_name(self):
        rng = self.rng
        key, value = self.good_bytes()
        headers: list[tuple[HeaderName, bytes | None]] = [
            (rng.choice(INVALID_UTF8) + rng.choice((b"", b"name")), rng.choice((b"v", None)))
            for _ in range(rng.randint(1, 3))
        ]
        headers.append(("\ud800".encode("utf-8", "surrogatepass"), b"lone surrogate, encoded"))
        if rng.random() < 0.5:
            headers.insert(0, ("app", b"courier-android/4.2.1"))
        return key, value, headers


class Raw:
    """JSON text to splice into a document as is (numbers JSON's encoder can't write, broken strings)."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


_PLAIN = (str, int, float, bool, type(None))


def dumps(doc: object, *, ascii: bool = False) -> bytes:
    """JSON bytes of ``doc``; :class:`Raw` values are spliced in verbatim."""
    if isinstance(doc, dict) and all(isinstance(v, _PLAIN) for v in doc.values()):  # most pings: no splicing
        return json.dumps(doc, ensure_ascii=ascii, separators=(",", ":"), allow_nan=True).encode(
            "utf-8", "surrogatepass"
        )
    raws: list[bytes] = []

    def placeholder(value: object) -> object:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x1eraw{len(raws) - 1}\x1e"
        if isinstance(value, dict):
            return {k: placeholder(v) for k, v in value.items()}
        if isinstance(value, list):
            return [placeholder(v) for v in value]
        return value

    text = json.dumps(placeholder(doc), ensure_ascii=ascii, separators=(",", ":"), allow_nan=True)
    data = text.encode("utf-8", "surrogatepass")
    for index, raw in enumerate(raws):
        data = data.replace(f'"\\u001eraw{index}\\u001e"'.encode(), raw, 1)
    return data


_DIGITS = bytes(ord("0") + b % 10 for b in range(256))


def big_int(rng: random.Random, digits: int) -> bytes:
    """A ``digits``-digit integer as JSON text (sometimes negative); not built as a Python int."""
    body = rng.randbytes(digits - 1).translate(_DIGITS)
    return (b"-" if rng.random() < 0.3 else b"") + str(rng.randint(1, 9)).encode() + body


def key_of(doc: dict) -> bytes | None:
    """The key a phone would send: its partner_id's bytes (None when the id is not a string)."""
    partner_id = doc.get("partner_id")
    return partner_id.encode("utf-8", "surrogatepass") if isinstance(partner_id, str) else None


def _utf8(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None
