"""The customers' socket /ws/track/<token>, on a TestClient gateway (hub fed directly) with a real Redis:
refusals close 1008 with the reason, a socket sees its one courier and nothing a client sends widens that,
revocation closes an open socket within about a second, delivered ends it with the final order frame."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tracker.gateway import create_app
from tracker.kafka import ensure_topics
from tracker.models import Position
from tracker.orders.link import Link, sign

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

ADMIN = "test-admin-token"
SECRET = "test-tracking-secret"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
DROPOFF = {"lat": 12.9716, "lon": 77.5946}


@pytest.fixture
def client(infra):
    settings = infra.replace(
        namespace=f"tw{uuid.uuid4().hex[:8]}.",
        tick_ms=20,
        allowed_hosts="testserver",
        admin_token=ADMIN,
        viewer_token="test-viewer-token",
        tracking_secret=SECRET,
        tracking_coarsen_m=0.0,
    )
    with TestClient(create_app(settings, consume=False)) as test_client:
        yield test_client


def create(client: TestClient, partner_id: str = "courier-a", **body) -> dict:
    body = {"order_id": f"o-{uuid.uuid4().hex[:6]}", "partner_id": partner_id, "dropoff": DROPOFF, **body}
    response = client.post("/api/orders", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    return response.json()


def move(client, partner_id: str, lat: float, lon: float, ts: int) -> None:
    hub = client.app.state.gateway.hub

    def ingest_and_tick() -> None:
        hub.ingest(Position(partner_id, lat, lon, ts, ts, 6.0, 90.0, None, "bike"))
        hub.tick()

    assert client.portal is not None
    client.portal.call(ingest_and_tick)


def _drain(ws) -> None:
    for _ in range(100):
        ws.receive_text()


def closed_with(ws) -> tuple[int, str]:
    with pytest.raises(WebSocketDisconnect) as closed:
        _drain(ws)
    return closed.value.code, closed.value.reason


def _move_and_read(client, ws, base: int, frames: list) -> None:
    """The courier goes on moving (its fixes must not reach the socket after delivered) while frames are read."""
    deadline = time.monotonic() + 5.0  # the states are read about once a second
    step = 0
    while time.monotonic() < deadline:
        step += 1
        move(client, "courier-a", 12.90 + step / 100000, 77.60, base + step * 1000)
        frames.append(json.loads(ws.receive_text()))
        time.sleep(0.01)


def test_refused_links_close_1008_with_the_reason(client):
    created = create(client)
    now = int(time.time())
    cases = {
        sign(Link(created["order_id"], "courier-a", (12.97, 77.59), None, now + 60), "not-the-secret"): (
            "invalid tracking link"
        ),
        created["token"][:-3] + "abc": "invalid tracking link",
        sign(Link(created["order_id"], "courier-a", (12.97, 77.59), None, now - 1), SECRET): "tracking link expired",
    }
    for token, reason in cases.items():
        with client.websocket_connect(f"/ws/track/{token}") as ws:
            assert closed_with(ws) == (1008, reason)
    assert client.post(f"/api/orders/{created['order_id']}/revoke", headers=AUTH).status_code == 200
    with client.websocket_connect(f"/ws/track/{created['token']}") as ws:
        assert closed_with(ws) == (1008, "tracking link revoked")


def test_revoked_while_open_closes_within_about_a_second(client):
    created = create(client)
    with client.websocket_connect(f"/ws/track/{created['token']}", subprotocols=["tracker.v1"]) as ws:
        assert json.loads(ws.receive_text())["type"] == "order"
        assert client.post(f"/api/orders/{created['order_id']}/revoke", headers=AUTH).status_code == 200
        started = time.monotonic()
        assert closed_with(ws) == (1008, "tracking link revoked")
        assert time.monotonic() - started < 2.0


def test_a_socket_sees_only_its_courier_whatever_it_sends(client):
    base = int(time.time() * 1000)
    move(client, "courier-a", 12.90, 77.60, base)
    move(client, "courier-b", 12.91, 77.61, base)
    created = create(client, "courier-a")
    with client.websocket_connect(f"/ws/track/{created['token']}") as ws:
        first = json.loads(ws.receive_text())
        assert first["type"] == "order" and first["state"] == "picked_up" and first["order_id"] == created["order_id"]
        courier = json.loads(ws.receive_text())
        assert courier["type"] == "courier" and (courier["lat"], courier["lon"]) == (12.90, 77.60)
        # everything the dispatchers' /ws understands, and some it does not: none of it widens the socket
        for message in (
            {"type": "viewport", "bbox": [-180, -90, 180, 90]},
            {"type": "follow", "partner_id": "courier-b"},
            {"type": "ping"},
            {"type": "viewport", "bbox": None},
        ):
            ws.send_text(json.dumps(message))
        ws.send_bytes(b"\x00\x01")
        ws.send_text("not json")
        ws.send_text("[" * 2000 + "]" * 2000)  # nesting 2,000 deep
        ws.send_text('{"type": "follow", "partner_id": ' + "9" * 400 + "}")  # a 400-digit number
        ws.send_text('{"type": "follow", "partner_id": "\\ud800"}')  # a lone surrogate
        ws.send_text('{"type": "follow", "partner_id": "\x1b[2J\x00"}')  # control characters
        ws.send_text("null")
        seen = []
        for step in range(1, 6):
            move(client, "courier-b", 12.91 + step / 1000, 77.61, base + step * 1000)
            move(client, "courier-a", 12.90 + step / 1000, 77.60, base + step * 1000)
            frame = json.loads(ws.receive_text())
            seen.append(frame)
        assert all(frame["type"] == "courier" for frame in seen)
        assert [frame["lat"] for frame in seen] == [pytest.approx(12.90 + step / 1000) for step in range(1, 6)]
        assert all(frame["lon"] == 77.60 for frame in seen)
        assert [frame["ts"] for frame in seen] == [base + step * 1000 for step in range(1, 6)]
        assert seen[-1]["eta_s"] is not None and seen[-1]["distance_m"] > 0


def test_delivered_sends_the_final_order_frame_and_closes_1000(client):
    asyncio.run(ensure_topics(client.app.state.gateway.settings))  # the mark produces order_delivered
    base = int(time.time() * 1000)
    move(client, "courier-a", 12.90, 77.60, base)
    created = create(client, "courier-a")
    with client.websocket_connect(f"/ws/track/{created['token']}") as ws:
        assert json.loads(ws.receive_text())["type"] == "order"
        assert json.loads(ws.receive_text())["type"] == "courier"
        response = client.post(f"/api/orders/{created['order_id']}/delivered", headers=AUTH)
        assert response.json() == {"order_id": created["order_id"], "state": "delivered", "was": "picked_up"}
        frames: list[dict] = []
        with pytest.raises(WebSocketDisconnect) as closed:
            _move_and_read(client, ws, base, frames)
        assert (closed.value.code, closed.value.reason) == (1000, "delivered")
        assert frames[-1]["type"] == "order" and frames[-1]["state"] == "delivered"
    # afterwards: the order frame and the close, no courier on any route
    with client.websocket_connect(f"/ws/track/{created['token']}") as ws:
        assert json.loads(ws.receive_text())["state"] == "delivered"
        assert closed_with(ws) == (1000, "delivered")
    body = client.get(f"/api/track/{created['token']}").json()
    assert body["order"]["state"] == "delivered" and body["courier"] is None
