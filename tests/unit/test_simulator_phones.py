"""The simulator's phones speak the apps' protocols: what they send, read back by the ingest's own parsers, is
the ping they meant (speed within float tolerance), and the validator gives every fix the verdict it was
made for, whichever protocol carried it."""

from __future__ import annotations

import base64
import json
from collections import Counter
from urllib.parse import parse_qsl, urlsplit

import pytest

from simulator.config import SimConfig
from simulator.faults import DOOR_SAFE, DUPLICATE
from simulator.phones import PhoneProtocol, PhoneRequest, request_for
from simulator.stream import iter_pings
from tracker import rules
from tracker.geo import load_service_area
from tracker.ingest import protocols
from tracker.ingest.records import Protocol, record
from tracker.settings import Settings

NOW_MS = 1_750_000_000_000
SETTINGS = Settings()
CONFIG = SimConfig(couriers=100, count=2_000, seed=8, burst=True, bad_rate=0.3, duplicate_rate=0.03, via_ingest=True)
PINGS = list(iter_pings(CONFIG, NOW_MS))  # half a second, once for every test here
RECORD_PROTOCOL = {PhoneProtocol.OSMAND: Protocol.OSMAND, PhoneProtocol.OWNTRACKS: Protocol.OWNTRACKS}


def received(request: PhoneRequest) -> list[dict]:
    """The pings the ingest reads from ``request``, as tracker/ingest/app.py reads them."""
    if request.target.startswith("/v1/pings"):
        assert request.body is not None
        pings = protocols.native(json.loads(request.body), SETTINGS.ingest_max_pings)
        assert not isinstance(pings, str)
        return pings
    if request.target.startswith("/owntracks"):
        assert request.body is not None
        fix = protocols.owntracks(json.loads(request.body))
        assert fix is not None
        return [fix.ping]
    fix = protocols.osmand(dict(parse_qsl(urlsplit(request.target).query, keep_blank_values=True)))
    return [fix.ping]


@pytest.mark.parametrize("protocol", list(PhoneProtocol))
def test_every_ping_reads_back_as_the_ping_it_was(protocol):
    compared = 0
    for ping in PINGS:
        sent = json.loads(ping.value)
        [back] = received(request_for(protocol, ping.partner_id, [ping.value]))
        compared += 1
        if protocol is PhoneProtocol.NATIVE:  # our own format: untouched
            assert back == sent
            continue
        assert back.pop("speed", None) == pytest.approx(sent.pop("speed", None), rel=1e-12)
        back.pop("partner_id", None), sent.pop("partner_id"), back.pop("app", None)
        if protocol is PhoneProtocol.OWNTRACKS:  # OwnTracks has no field for either
            sent.pop("vehicle", None), sent.pop("order_id", None)
        if isinstance(sent.get("ts"), str):  # ISO-8601 with an offset: read as the same instant, in ms
            parsed = rules.parse_timestamp(sent["ts"])
            sent["ts"] = parsed if isinstance(parsed, int) else sent["ts"]
        if protocol is PhoneProtocol.OSMAND and isinstance(sent.get("ts"), bool):  # a query string has no types
            sent["ts"] = "true" if sent["ts"] else "false"
        assert back == sent
    assert compared == CONFIG.count


@pytest.mark.parametrize("protocol", list(PhoneProtocol))
def test_through_any_protocol_every_ping_gets_the_verdict_it_was_made_for(protocol):
    checker = rules.StatefulChecker(SETTINGS, load_service_area(None))
    verdicts: Counter[str] = Counter()
    mismatches = []
    for ping in PINGS:
        [fix] = received(request_for(protocol, ping.partner_id, [ping.value]))
        value = record(fix, ping.partner_id, RECORD_PROTOCOL.get(protocol, Protocol.NATIVE), 4096).value
        verdict = checker.check(value, ping.emitted_at_ms)
        got = verdict.reason.value if verdict.reason is not None else verdict.outcome.value
        verdicts[got] += 1
        if got != (ping.expect or "accepted"):
            mismatches.append((ping.expect, got, verdict.detail, value))
    assert mismatches[:3] == []
    assert set(verdicts) == {"accepted", DUPLICATE, *(kind.value for kind in DOOR_SAFE)}


def test_native_carries_a_couriers_pings_as_one_array_of_the_same_bytes():
    values = [b'{"partner_id":"c1","lat":12.9,"lon":77.5,"ts":1}', b'{"partner_id":"c1","lat":12.8,"lon":77.5,"ts":2}']
    request = request_for(PhoneProtocol.NATIVE, "c1", values, token="t0k")
    assert (request.method, request.target) == ("POST", "/v1/pings")
    assert request.body == b"[" + b",".join(values) + b"]"
    assert ("authorization", "Bearer t0k") in request.headers
    assert request_for(PhoneProtocol.NATIVE, "c1", values[:1]).body == values[0]


def test_each_protocol_carries_the_token_as_its_app_does():
    value = b'{"partner_id":"courier-0007","lat":12.9,"lon":77.5,"ts":1750000000000,"speed":5.0}'
    osmand = request_for(PhoneProtocol.OSMAND, "courier-0007", [value], token="s3cr3t+/=")
    query = dict(parse_qsl(urlsplit(osmand.target).query))
    assert (osmand.method, query["id"], query["token"]) == ("GET", "courier-0007", "s3cr3t+/=")
    assert float(query["speed"]) == pytest.approx(5.0 * 3600 / 1852)  # knots
    assert query["timestamp"] == "1750000000000"
    owntracks = request_for(PhoneProtocol.OWNTRACKS, "courier-0007", [value], token="s3cr3t+/=")
    headers = dict(owntracks.headers)
    assert base64.b64decode(headers["authorization"].removeprefix("Basic ")) == b"courier-0007:s3cr3t+/="
    assert headers["x-limit-u"] == "courier-0007"
    assert owntracks.body is not None
    assert json.loads(owntracks.body) == {
        "_type": "location",
        "tid": "07",
        "lat": 12.9,
        "lon": 77.5,
        "tst": 1750000000,
        "vel": pytest.approx(18.0),
    }
    assert "authorization" not in dict(request_for(PhoneProtocol.OWNTRACKS, "courier-0007", [value]).headers)


def test_a_protocol_that_carries_one_fix_refuses_two():
    with pytest.raises(ValueError, match="one fix per request"):
        request_for(PhoneProtocol.OSMAND, "c1", [b"{}", b"{}"])
