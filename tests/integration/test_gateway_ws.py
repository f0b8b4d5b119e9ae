"""WebSocket protocol and HTTP API through Starlette's TestClient, with a real Redis behind the gateway.

The hub is fed directly here (``consume=False``); test_live_map.py runs the same gateway on the real
broker, with the validator producing ``courier-positions``.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from starlette import status as ws_status
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from tracker.gateway import create_app
from tracker.models import Position
from tracker.store import Slice, Store

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

BLR = (12.9716, 77.5946)
KORAMANGALA = (77.61, 12.92, 77.64, 12.95)  # west, south, east, north


def now_ms() -> int:
    return int(time.time() * 1000)


def position(
    courier_id: str, lat: float = BLR[0], lon: float = BLR[1], ts: int | None = None, speed: float = 5.0
) -> Position:
    return Position(courier_id, lat, lon, ts or now_ms(), now_ms(), speed, 90.0, None, "bike")


@pytest.fixture
def app_settings(infra):
    # TestClient's Host is "testserver" (tracker/access.py answers only the names allowed)
    return infra.replace(namespace=f"ws{uuid.uuid4().hex[:8]}.", tick_ms=20, allowed_hosts="testserver")


@pytest.fixture
def client(app_settings):
    app = create_app(app_settings, consume=False)
    with TestClient(app) as test_client:
        yield test_client


def _read_until_closed(ws) -> None:
    while True:
        ws.receive_text()


def feed(client: TestClient, *positions: Position) -> None:
    """Ingest positions and run a tick at once, so the next frame a test reads reflects exactly these."""
    assert client.portal is not None  # inside `with TestClient(...)`
    client.portal.call(_ingest_many, client, list(positions))


def receive_until(ws, kind: str, predicate=lambda frame: True, limit: int = 200) -> dict:
    for _ in range(limit):
        frame = json.loads(ws.receive_text())
        if frame["type"] == kind and predicate(frame):
            return frame
    raise AssertionError(f"no {kind} frame matching within {limit} frames")


def ids(frame: dict) -> list[str]:
    return sorted(c["id"] for c in frame["couriers"])


async def test_snapshot_comes_from_redis_for_a_fresh_gateway(app_settings):
    seeded = position("courier-seeded")
    encoded = json.dumps(
        {
            "id": seeded.id,
            "lat": seeded.lat,
            "lon": seeded.lon,
            "ts": seeded.ts,
            "accepted_at_ms": seeded.accepted_at_ms,
            "speed": 3.0,
            "vehicle": "car",
        }
    )
    async with Store(app_settings) as store:
        fix = (seeded.id, seeded.ts, seeded.lat, seeded.lon, encoded)
        await store.apply("t", [Slice(store.partition_of(seeded.id), -1, 0, 0, [fix], [], {"accepted": 1})])
    app = create_app(app_settings, consume=False)
    with TestClient(app) as test_client, test_client.websocket_connect("/ws") as ws:
        snapshot = json.loads(ws.receive_text())
        assert snapshot["type"] == "snapshot"
        assert ids(snapshot) == ["courier-seeded"]
        courier = snapshot["couriers"][0]
        assert (courier["lat"], courier["lon"], courier["vehicle"], courier["status"]) == (*BLR, "car", "online")


def test_delta_carries_only_changes_latest_wins(client):
    feed(client, position("a"), position("b"))
    with client.websocket_connect("/ws") as ws:
        assert ids(json.loads(ws.receive_text())) == ["a", "b"]
        base = now_ms()
        # three fixes of "a" inside one tick: the frame carries the last one only
        client.portal.call(_ingest_many, client, [position("a", lat=12.97 + i / 1000, ts=base + i) for i in range(3)])
        delta = receive_until(ws, "delta")
        assert ids(delta) == ["a"]
        assert delta["couriers"][0]["lat"] == pytest.approx(12.972)
        assert delta["removed"] == []


def _ingest_many(client, positions):
    hub = client.app.state.gateway.hub
    for item in positions:
        hub.ingest(item)
    hub.tick()


def test_older_fix_never_moves_the_marker_back(client):
    feed(client, position("a", ts=now_ms()))
    feed(client, position("a", lat=12.99, ts=now_ms() - 60_000))
    response = client.get("/api/couriers")
    assert response.json()["couriers"][0]["lat"] == BLR[0]


def test_viewport_filters_and_reports_couriers_that_leave(client):
    inside, outside = position("in", 12.93, 77.62), position("out", *BLR)
    feed(client, inside, outside)
    with client.websocket_connect("/ws") as ws:
        assert ids(json.loads(ws.receive_text())) == ["in", "out"]
        ws.send_text(json.dumps({"type": "viewport", "bbox": list(KORAMANGALA)}))
        snapshot = receive_until(ws, "snapshot")
        assert ids(snapshot) == ["in"]
        feed(client, position("out", lat=BLR[0] + 0.001), position("in2", 12.94, 77.63))
        delta = receive_until(ws, "delta")
        assert ids(delta) == ["in2"]
        feed(client, position("in", *BLR))  # drives out of view
        delta = receive_until(ws, "delta", lambda f: f["removed"])
        assert delta["removed"] == ["in"] and ids(delta) == []


def test_follow_includes_the_courier_outside_the_viewport(client):
    feed(client, position("far", *BLR), position("near", 12.93, 77.62))
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_text(json.dumps({"type": "viewport", "bbox": list(KORAMANGALA)}))
        ws.send_text(json.dumps({"type": "follow", "partner_id": "far"}))
        snapshot = receive_until(ws, "snapshot", lambda f: "far" in ids(f))
        assert ids(snapshot) == ["far", "near"]
        feed(client, position("far", lat=BLR[0] + 0.001))
        assert "far" in ids(receive_until(ws, "delta", lambda f: f["couriers"]))
        ws.send_text(json.dumps({"type": "follow", "partner_id": None}))
        assert ids(receive_until(ws, "snapshot")) == ["near"]


def test_ping_pong_and_stats(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_text('{"type": "ping"}')
        receive_until(ws, "pong")
        stats = receive_until(ws, "stats")
        assert {"online", "idle", "stale", "offline", "pings_per_s", "rejected_total"} <= set(stats)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", ws_status.WS_1003_UNSUPPORTED_DATA),
        ("[" * 2000 + "]" * 2000, ws_status.WS_1003_UNSUPPORTED_DATA),  # nested past msgspec's depth, under 4 KiB
        ('["viewport"]', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "teleport"}', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "viewport", "bbox": [1, 2, 3]}', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "viewport", "bbox": [80, 10, 70, 20]}', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "viewport"}', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "follow", "partner_id": 7}', ws_status.WS_1008_POLICY_VIOLATION),
        ('{"type": "ping", "pad": "' + "x" * 5000 + '"}', ws_status.WS_1009_MESSAGE_TOO_BIG),
    ],
)
def test_bad_frames_close_with_a_code(client, frame, code):
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_text(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            _read_until_closed(ws)
        assert closed.value.code == code


def test_binary_frame_closes_with_1003(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_text()
        ws.send_bytes(b"\x00\x01")
        with pytest.raises(WebSocketDisconnect) as closed:
            _read_until_closed(ws)
        assert closed.value.code == ws_status.WS_1003_UNSUPPORTED_DATA


def test_http_api(client):
    feed(client, position("in", 12.93, 77.62), position("out", *BLR))
    assert sorted(c["id"] for c in client.get("/api/couriers").json()["couriers"]) == ["in", "out"]
    boxed = client.get("/api/couriers", params={"bbox": ",".join(map(str, KORAMANGALA))}).json()
    assert [c["id"] for c in boxed["couriers"]] == ["in"]
    assert client.get("/api/couriers", params={"bbox": "1,2"}).status_code == 400
    assert client.get("/api/couriers", params={"bbox": "a,b,c,d"}).status_code == 400
    detail = client.get("/api/couriers/in").json()
    assert detail["position"]["id"] == "in" and detail["trail"] == []
    assert client.get("/api/couriers/nobody").status_code == 404
    area = client.get("/api/service-area").json()
    assert {f["properties"]["kind"] for f in area["features"]} == {"service_area", "zone"}
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] is True
    metrics = client.get("/metrics").text
    assert 'tracker_couriers{status="online"} 2.0' in metrics
    assert "tracker_ws_frames_sent_total" in metrics
    assert 'tracker_pings_rejected_total{reason="stale_timestamp"}' in metrics
