"""The review API's edges, through Starlette's TestClient on a real Redis and broker: who a replay or a
discard is recorded as, who sees it, hostile request bodies, error texts, deeply nested payloads and ids
with a ``/``. Dead letters are put straight into the review index (the indexer is tested elsewhere)."""

from __future__ import annotations

import json
import time

import msgspec
import pytest
from starlette.testclient import TestClient

from tracker import constants as c
from tracker.dlq.entry import Entry, entry_from_record
from tracker.gateway import create_app
from tracker.models import Record

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

ADMIN = "admin-token-9c1d"
ALICE = "alice-token-5b7e"
BOB = "bob-token-11aa7"
PROXY = "198.51.100.7"
FORGED = "203.0.113.66"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def dead_letter(offset: int, value: bytes, reason: str = "invalid_coordinates", key: bytes = b"courier-h") -> Entry:
    now = int(time.time() * 1000)
    headers = (
        (c.H_REASON, reason.encode()),
        (c.H_DETAIL, b"lat 95 is outside \xc2\xb190"),
        (c.H_ORIGINAL_TOPIC, b"location-updates"),
        (c.H_ORIGINAL_PARTITION, b"0"),
        (c.H_ORIGINAL_OFFSET, str(offset).encode()),
        (c.H_REJECTED_AT, str(now - offset).encode()),
    )
    record = Record("location-updates.DLQ", 0, offset, now, key, value, headers)
    return entry_from_record(record, replay_secret=None, payload_max_bytes=4096)


def ping(lat: float = 95.0) -> bytes:
    return json.dumps({"partner_id": "courier-h", "lat": lat, "lon": 77.6, "ts": int(time.time() * 1000)}).encode()


@pytest.fixture
def app_settings(settings):
    return settings.replace(admin_token=ADMIN, operator_tokens=f"alice:{ALICE},bob:{BOB}")


def gateway_client(app_settings, peer: str = PROXY) -> TestClient:
    return TestClient(create_app(app_settings, consume=False), base_url="http://localhost", client=(peer, 50000))


def seed(client: TestClient, *entries: Entry) -> None:
    assert client.portal is not None  # inside `with TestClient(...)`
    client.portal.call(client.app.state.gateway.dlq_index.add, list(entries))  # type: ignore[attr-defined]


def test_a_replay_records_the_operators_label_whatever_x_forwarded_for_says(app_settings):
    # No trusted proxy: X-Forwarded-For is the client's own word, and is not believed.
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, ping()), dead_letter(2, ping()))
        forged = {"X-Forwarded-For": f"{FORGED}, 10.0.0.1", **auth(ALICE)}
        assert client.post("/api/dlq/0:1/replay", headers=forged).status_code == 200
        assert client.get("/api/dlq/0:1", headers=auth(ALICE)).json()["status_by"] == f"alice@{PROXY}"
    # Behind a trusted proxy, the address the proxy saw is recorded; the label is still the token's.
    with gateway_client(app_settings.replace(trusted_proxies=f"{PROXY}/32")) as client:
        forwarded = {"X-Forwarded-For": f"{FORGED}, 192.0.2.9", **auth(BOB)}
        assert client.post("/api/dlq/discard", json={"ids": ["0:2"]}, headers=forwarded).status_code == 200
        assert client.get("/api/dlq/0:2", headers=auth(BOB)).json()["status_by"] == "bob@192.0.2.9"


def test_status_by_is_shown_with_an_operator_token_only(app_settings):
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, ping()))
        assert client.post("/api/dlq/0:1/discard", headers=auth(ADMIN)).status_code == 200
        for headers in ({}, auth("not-a-token-at-all"), {"Authorization": ADMIN}):
            detail = client.get("/api/dlq/0:1", headers=headers).json()
            [row] = client.get("/api/dlq", headers=headers).json()["items"]
            assert detail["status"] == row["status"] == "discarded"
            assert "status_by" not in detail and "status_by" not in row, headers
        for token in (ADMIN, ALICE):
            assert client.get("/api/dlq/0:1", headers=auth(token)).json()["status_by"] == f"admin@{PROXY}"
            [row] = client.get("/api/dlq", headers=auth(token)).json()["items"]
            assert row["status_by"] == f"admin@{PROXY}"


def test_writes_need_an_operator_token(settings):
    assert settings.admin_token is None and settings.operator_tokens is None
    with gateway_client(settings.replace(operator_tokens=f"bob:{BOB}")) as client:
        seed(client, dead_letter(1, ping()))
        assert client.post("/api/dlq/0:1/discard", headers=auth(ADMIN)).status_code == 401  # not configured
        assert client.post("/api/dlq/0:1/discard", headers=auth(BOB)).status_code == 200
    with gateway_client(settings) as client:
        response = client.post("/api/dlq/0:1/discard", headers=auth(BOB))
        assert response.status_code == 403
        assert "TRACKER_OPERATOR_TOKENS" in response.json()["error"]


HOSTILE_BODIES = {
    "deep payload": b'{"payload": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "deep beside it": b'{"other": ' + b"[" * 5000 + b"]" * 5000 + b', "payload": {}}',
    "deep ids": b'{"ids": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "lone surrogate text": b'{"payload": "\\ud800"}',
    "lone surrogate value": b'{"payload": {"partner_id": "\\udfff", "lat": 1, "lon": 1, "ts": 1}}',
    "lone surrogate key": b'{"payload": {"\\ud800": 1}}',
    "lone surrogate id": b'{"ids": ["\\ud800"]}',
    "5,000-digit int": b'{"payload": {"partner_id": "c", "lat": 1' + b"0" * 5000 + b', "lon": 1, "ts": 1}}',
    "1e400": b'{"payload": {"partner_id": "c", "lat": 1e400, "lon": 77.6, "ts": 1}}',
    "NaN": b'{"payload": {"partner_id": "c", "lat": NaN, "lon": 77.6, "ts": 1}}',
    "-Infinity": b'{"payload": {"partner_id": "c", "lat": -Infinity, "lon": 77.6, "ts": 1}}',
    "not UTF-8": b'{"payload": "\xff\xfe"}',
    "truncated": b'{"payload": {',
    "an array": b"[]",
    "a string": b'"\\ud800"',
    "payload a number": b'{"payload": 5}',
    "payload an array": b'{"payload": [1]}',
    "payload text, not JSON": b'{"payload": "not json"}',
    "ids a string": b'{"ids": "0:1"}',
    "ids numbers": b'{"ids": [1, 2]}',
    "ids empty": b'{"ids": []}',
}


def test_hostile_bodies_get_a_clear_400_or_422(app_settings):
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, ping()))
        for name, body in HOSTILE_BODIES.items():
            urls = ["/api/dlq/replay", "/api/dlq/discard"] + ([] if "ids" in name else ["/api/dlq/0:1/replay"])
            for url in urls:
                response = client.post(url, content=body, headers=auth(ADMIN))
                assert response.status_code in (400, 422), (name, url, response.text)
                error = response.json()["error"]
                assert isinstance(error, str) and "\n" not in error and len(error) < 200, (name, url, error)
                if url != "/api/dlq/0:1/replay":  # a bulk body has no payload to blame
                    assert "payload" not in error, (name, url, error)
        huge = client.post("/api/dlq/0:1/replay", content=b" " * (65 * 1024), headers=auth(ADMIN))
        assert huge.status_code == 413
        assert client.get("/api/dlq/0:1").json()["status"] == "new"


def test_edited_payloads_are_judged_as_the_operator_wrote_them(app_settings):
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, ping()))
        # JSON the body's decoder could not turn into numbers, which the validator judges all the same.
        for lat, reason in [(b"1e400", "invalid_coordinates"), (b"1" + b"0" * 5000, "malformed_payload")]:
            body = b'{"payload": {"partner_id": "courier-h", "lat": ' + lat + b', "lon": 77.6, "ts": 1}}'
            response = client.post("/api/dlq/0:1/replay", content=body, headers=auth(ADMIN))
            assert response.status_code == 422, (lat[:10], response.text)
            assert response.json()["reason"] == reason, response.text  # the 5,000 digits are over 4 KiB
        assert client.get("/api/dlq/0:1").json()["status"] == "new"


def test_error_texts_are_fixed_and_name_the_parameter(app_settings):
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, ping()))
        errors = {}
        queries = ("since=abc", "since=" + "9" * 16, "until=1e9", "limit=x", "cursor=nonsense", "cursor=1_a:b")
        for query in (*queries, "since=" + "9" * 5000):
            response = client.get(f"/api/dlq?{query}")
            assert response.status_code == 400, query
            errors[query] = response.json()["error"]
        assert errors["since=abc"] == errors["since=" + "9" * 16] == errors["since=" + "9" * 5000]
        assert errors["since=abc"] == "since must be epoch milliseconds (at most 15 digits)"
        assert errors["until=1e9"] == "until must be epoch milliseconds (at most 15 digits)"
        assert errors["limit=x"] == "limit must be a whole number (at most 15 digits)"
        assert client.get("/api/dlq?since=-999999999999999&until=999999999999999").json()["total"] == 1
        assert errors["cursor=nonsense"] == errors["cursor=1_a:b"] == "cursor is not one this listing gave"
        missing = client.get("/api/dlq/9:9" + "x" * 300)
        assert (missing.status_code, missing.json()) == (404, {"error": "no such rejected ping"})
        every = json.dumps(errors) + missing.text
        for python_wording in ("invalid literal", "int()", "Exceeds the limit", "could not convert", "'"):
            assert python_wording not in every


def test_a_deeply_nested_payload_is_shown(app_settings):
    deep = b'{"partner_id": "courier-h", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    assert len(deep) < 4096
    with gateway_client(app_settings) as client:
        seed(client, dead_letter(1, deep, reason="malformed_payload"))
        response = client.get("/api/dlq/0:1")
        assert response.status_code == 200, response.text
        assert response.json()["payload_text"] == deep.decode()
        assert response.json()["payload_json"] is None  # too deep to be shown as a tree: the page shows the text


def test_ids_with_a_slash_are_looked_up_replayed_and_discarded(app_settings):
    with gateway_client(app_settings) as client:
        slashed = [msgspec.structs.replace(dead_letter(n, ping()), id=f"dlq/0/{n}") for n in (1, 2)]
        seed(client, *slashed)
        detail = client.get("/api/dlq/dlq/0/1")
        assert detail.status_code == 200, detail.text
        assert detail.json()["id"] == "dlq/0/1"
        assert client.get("/api/dlq/dlq%2F0%2F2").json()["id"] == "dlq/0/2"
        assert client.post("/api/dlq/dlq/0/1/replay", headers=auth(ADMIN)).json()["status"] == "replayed"
        assert client.post("/api/dlq/dlq/0/2/discard", headers=auth(ADMIN)).json()["status"] == "discarded"
        assert client.get("/api/dlq/dlq/0/2").json()["status"] == "discarded"
        missing = client.get("/api/dlq/no/such/id")
        assert (missing.status_code, missing.json()) == (404, {"error": "no such rejected ping"})
