"""Tracking links over HTTP, on a TestClient gateway with a real Redis behind it: the operators' POST
/api/orders (auth, validation), the customers' /track/<token> and /api/track/<token> and their refusals."""

from __future__ import annotations

import time
import uuid

import pytest
from starlette.testclient import TestClient

from tracker.gateway import create_app
from tracker.models import Position
from tracker.orders.link import Link, sign

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

ADMIN = "test-admin-token"
SECRET = "test-tracking-secret"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
DROPOFF = {"lat": 12.9716, "lon": 77.5946}
PICKUP = {"lat": 12.9352, "lon": 77.6245}


@pytest.fixture
def app_settings(infra):
    return infra.replace(
        namespace=f"or{uuid.uuid4().hex[:8]}.",
        tick_ms=20,
        allowed_hosts="testserver",
        admin_token=ADMIN,
        viewer_token="test-viewer-token",  # the tracking routes must not need it
        tracking_secret=SECRET,
    )


@pytest.fixture
def client(app_settings):
    with TestClient(create_app(app_settings, consume=False)) as test_client:
        yield test_client


def create(client: TestClient, **body) -> dict:
    body = {"order_id": f"o-{uuid.uuid4().hex[:6]}", "partner_id": "courier-1", "dropoff": DROPOFF, **body}
    response = client.post("/api/orders", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_needs_an_operator_token(client):
    body = {"order_id": "o1", "partner_id": "c1", "dropoff": DROPOFF}
    assert client.post("/api/orders", json=body).status_code == 401
    assert client.post("/api/orders", json=body, headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    viewer = {"Authorization": "Bearer test-viewer-token"}
    assert client.post("/api/orders", json=body, headers=viewer).status_code == 401


def test_create_without_operators_configured_is_forbidden(app_settings):
    settings = app_settings.replace(viewer_token="")
    settings = type(settings)(**{**{f: getattr(settings, f) for f in settings.__struct_fields__}, "admin_token": None})
    with TestClient(create_app(settings, consume=False)) as client:
        response = client.post("/api/orders", json={"order_id": "o", "partner_id": "c", "dropoff": DROPOFF})
        assert response.status_code == 403


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 422),
        (b'{"order_id": "o", "partner_id": "c"}', 422),  # no drop-off
        (b'{"order_id": "", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}}', 422),
        (b'{"order_id": "o", "partner_id": "' + b"x" * 65 + b'", "dropoff": {"lat": 1, "lon": 2}}', 422),
        (b'{"order_id": "o\\u0000", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}}', 422),
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": 91, "lon": 2}}', 422),
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": "1", "lon": 2}}', 422),
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}, "ttl_s": 5}', 422),
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}, "extra": 1}', 422),
        (b'{"order_id": ', 400),  # truncated
        (b" " * 5000, 413),
        (b"x" * (1 << 20), 413),  # 1 MiB
        (b"null", 422),
        (b"[" * 2000 + b"]" * 2000, 422),  # nesting 2,000 deep, inside the size limit
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": ' + b"9" * 400 + b', "lon": 2}}', 422),
        (b'{"order_id": "o", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}, "ttl_s": ' + b"9" * 400 + b"}", 422),
        (rb'{"order_id": "o\ud800", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}}', 400),  # lone surrogate
        (rb'{"order_id": "o\u001b[2J", "partner_id": "c", "dropoff": {"lat": 1, "lon": 2}}', 422),  # control chars
        (b'{"order_id": "o", "partner_id": null, "dropoff": {"lat": 1, "lon": 2}}', 422),
    ],
)
def test_create_refuses_a_bad_body_in_one_line(client, body, status):
    response = client.post("/api/orders", content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert isinstance(error, str) and "\n" not in error


def test_create_returns_a_link_that_serves_the_order(client):
    created = create(client, pickup=PICKUP, ttl_s=600)
    assert created["url"] == "/track/" + created["token"]
    assert abs(created["expires_at"] - (time.time() + 600) * 1000) < 5000
    again = client.post(
        "/api/orders", json={"order_id": created["order_id"], "partner_id": "c", "dropoff": DROPOFF}, headers=AUTH
    )
    assert again.status_code == 409
    body = client.get("/api/track/" + created["token"]).json()  # no viewer token needed
    assert body["order"] == {
        "order_id": created["order_id"],
        "state": "to_pickup",
        "pickup": PICKUP,
        "dropoff": DROPOFF,
        "expires_at": created["expires_at"],
    }
    assert body["courier"] is None and body["tick_ms"] == 20
    page = client.get(created["url"])
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "unsafe-" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_api_track_shows_only_its_courier_coarse_before_pickup(client):
    created = create(client, partner_id="courier-1", pickup=PICKUP)
    hub = client.app.state.gateway.hub
    now = int(time.time() * 1000)
    client.portal.call(hub.ingest, Position("courier-1", 12.95, 77.61, now, now, 5.0, 90.0, None, "bike"))
    client.portal.call(hub.ingest, Position("courier-2", 12.96, 77.60, now, now, 5.0, 90.0, None, "bike"))
    courier = client.get("/api/track/" + created["token"]).json()["courier"]
    assert courier["coarse"] is True and courier["heading"] is None
    assert abs(courier["lat"] - 12.95) < 0.002 and (courier["lat"], courier["lon"]) != (12.95, 77.61)
    assert courier["ts"] == now and 1000 < courier["distance_m"] < 4000


@pytest.mark.parametrize("route", ["/track/", "/api/track/"])
def test_refusals(client, route):
    created = create(client)
    token = created["token"]
    payload, signature = token.split(".")
    forged = sign(Link(created["order_id"], "courier-9", (1.0, 2.0), None, int(time.time()) + 60), "another-secret")
    expired = sign(Link(created["order_id"], "courier-1", (12.9716, 77.5946), None, int(time.time()) - 1), SECRET)
    cases = {
        forged: (403, "invalid tracking link"),
        payload[:-2] + "xy." + signature: (403, "invalid tracking link"),
        "not-a-token": (403, "invalid tracking link"),
        "%ED%A0%80." + signature: (403, "invalid tracking link"),  # a lone surrogate's bytes
        "%00%1b." + signature: (403, "invalid tracking link"),  # control characters
        "9" * 400 + "." + signature: (403, "invalid tracking link"),
        ("a" * 4000) + "." + signature: (403, "invalid tracking link"),
        expired: (410, "tracking link expired"),
    }
    for bad, (status, text) in cases.items():
        response = client.get(route + bad)
        assert response.status_code == status, bad
        assert text in response.text.lower() and "courier-1" not in response.text
    revoked = client.post(f"/api/orders/{created['order_id']}/revoke", headers=AUTH)
    assert revoked.status_code == 200
    response = client.get(route + token)
    assert response.status_code == 410 and "tracking link revoked" in response.text.lower()
