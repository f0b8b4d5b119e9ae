"""The gateway safe to expose, through Starlette's TestClient with a real Redis behind it: a foreign Host or a
foreign page's WebSocket is refused, a viewer token guards the map's data (HTTP and /ws) but not the page
shell, answers carry the security headers, and a bad courier id or a stored position that cannot be read is
a clear 404, never a 500."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from tracker.access import encode_subprotocol_token
from tracker.gateway import create_app
from tracker.models import Position

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

VIEWER = "viewer-token-1"
ADMIN = "admin-token-1"
BASE = "http://localhost:8000"
WS = "ws://localhost:8000/ws"


def same_origin() -> dict[str, str]:
    """The map page's Origin (a fresh dict: TestClient.websocket_connect adds its handshake headers to it)."""
    return {"origin": "http://localhost:8000"}


@pytest.fixture(scope="module")
def client(infra):
    settings = infra.replace(
        namespace=f"access{uuid.uuid4().hex[:8]}.",
        viewer_token=VIEWER,
        admin_token=ADMIN,
        tile_url="https://tile.example/{z}/{x}/{y}.png",
        allowed_origins="https://ops.example",
    )
    app = create_app(settings, consume=False)
    with TestClient(app, base_url=BASE) as test_client:
        now = int(time.time() * 1000)
        app.state.gateway.hub.ingest(Position("c1", 12.97, 77.59, now, now, 5.0, 90.0, None, "bike"))
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_foreign_host_gets_400_with_one_fixed_line_on_every_route_but_the_probes(client):
    for path in ("/", "/dlq", "/api/config", "/api/couriers"):
        response = client.get(path, headers={"host": "evil.example:8000", **bearer(VIEWER)})
        assert response.status_code == 400, path
        assert response.text == "unknown Host: this gateway answers only the names in TRACKER_ALLOWED_HOSTS\n"
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect(WS.replace("localhost", "evil.example")),
    ):
        pass
    assert denied.value.status_code == 400
    # A probe by address (an orchestrator's) is answered.
    assert client.get("/healthz", headers={"host": "10.0.0.5:8000"}).status_code == 200


def test_a_websocket_from_another_sites_page_is_refused_and_the_pages_own_is_accepted(client):
    offered = ["tracker.v1", encode_subprotocol_token(VIEWER)]
    for origin in ("http://evil.example", "http://localhost:8001", "null"):
        refused = client.websocket_connect(WS, subprotocols=offered, headers={"origin": origin})
        with pytest.raises(WebSocketDenialResponse) as denied, refused:
            pass
        assert denied.value.status_code == 403, origin
    for headers in (same_origin(), {"origin": "https://ops.example"}, {}):
        with client.websocket_connect(WS, subprotocols=offered, headers=headers) as ws:
            assert ws.accepted_subprotocol == "tracker.v1"  # never the bearer one
            assert json.loads(ws.receive_text())["type"] == "snapshot"


def test_with_a_viewer_token_set_the_data_needs_it_and_the_shell_does_not(client):
    for path in ("/api/couriers", "/api/couriers/c1", "/api/dlq", "/api/dlq/stats", "/api/dlq/0:1"):
        refused = client.get(path)
        assert refused.status_code == 401, path
        assert refused.json() == {"error": "a viewer or operator token is required: send Authorization: Bearer <token>"}
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get(path, headers=bearer("not-the-token")).status_code == 401
    assert client.get("/api/couriers", headers=bearer(VIEWER)).json()["count"] == 1
    assert client.get("/api/couriers/c1", headers=bearer(ADMIN)).status_code == 200  # an operator reads too
    assert client.get("/api/dlq", headers=bearer(VIEWER)).status_code == 200
    for path in ("/", "/dlq", "/api/service-area", "/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200, path
    config = client.get("/api/config").json()
    assert (config["viewer_token_required"], config["ws_subprotocol"]) == (True, "tracker.v1")


def test_a_websocket_without_the_viewer_token_is_closed_with_1008_and_its_reason(client):
    wrong = encode_subprotocol_token("not-the-token")
    for offered in (["tracker.v1"], ["tracker.v1", wrong]):
        with client.websocket_connect(WS, subprotocols=offered, headers=same_origin()) as ws:
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_text()
            assert (closed.value.code, closed.value.reason) == (1008, "viewer token required")
    # A program may send the header instead of the subprotocol.
    with client.websocket_connect(WS, headers=bearer(VIEWER)) as ws:
        assert json.loads(ws.receive_text())["type"] == "snapshot"


def test_answers_carry_the_security_headers_and_data_is_never_cached(client):
    page = client.get("/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert "img-src 'self' data: blob: https://tile.example;" in csp
    assert "connect-src 'self' ws://localhost:8000 wss://localhost:8000 https://tile.example;" in csp
    assert "no-store" not in page.headers.get("cache-control", "")
    for path in ("/api/couriers", "/api/couriers/c1", "/api/dlq", "/api/dlq/stats"):
        assert client.get(path, headers=bearer(VIEWER)).headers["cache-control"] == "no-store", path
    assert client.get("/api/couriers").headers["cache-control"] == "no-store"  # the 401 too


@pytest.mark.parametrize(
    "path",
    [
        "/api/couriers/%ED%A0%80",  # the UTF-8 of a lone surrogate
        "/api/couriers/%00",
        "/api/couriers/%FF%FE",
        "/api/couriers/%E2%80%8B",  # a zero-width space: no partner_id has one
        "/api/couriers/" + "x" * 65,
        "/api/couriers/%20",
    ],
)
def test_a_courier_id_no_ping_could_carry_is_a_404(client, path):
    response = client.get(path, headers=bearer(VIEWER))
    assert response.status_code == 404
    assert response.json() == {"error": "no such courier"}


def test_a_courier_whose_id_holds_a_slash_is_found(client):
    now = int(time.time() * 1000)
    client.app.state.gateway.hub.ingest(Position("team/7", 12.97, 77.59, now, now, 5.0, 90.0, None, "bike"))
    response = client.get("/api/couriers/team%2F7", headers=bearer(VIEWER))  # the map encodes the id
    assert response.status_code == 200
    assert response.json()["partner_id"] == "team/7"


def test_a_stored_position_that_cannot_be_read_is_a_404_without_internals(client):
    store = client.app.state.gateway.store

    async def seed() -> None:
        key = store.courier_keys("c-broken").pos + "c-broken"
        await store.redis.hset(key, "json", b'{"id": "c-broken", "lat": "north"}')

    assert client.portal is not None  # inside `with TestClient(...)`
    client.portal.call(seed)
    response = client.get("/api/couriers/c-broken", headers=bearer(VIEWER))
    assert response.status_code == 404
    assert response.json() == {"error": "no such courier"}
