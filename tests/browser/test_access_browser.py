"""The gateway safe to expose, in a real browser on the real stack with a viewer token set: both pages load and
work under the Content-Security-Policy with no console error, page error or CSP violation; the map asks for
the token (again after a wrong one) and works once given it, and the review page reuses it; a page of another
origin cannot open /ws even with the token; and, from outside the browser, /ws and the read APIs refuse
requests without the token and a foreign Host gets 400."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from tests.browser.browser_helpers import screenshot_path
from tests.helpers import eventually
from tracker.access import encode_subprotocol_token
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VIEWER = "viewer-token-1"
ADMIN = "admin-token-1"
# Records every CSP violation the document sees (workers' own are console errors, caught as such).
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""
OPEN_SOCKET = """([url, protocols]) => new Promise((resolve) => {
  const socket = new WebSocket(url, protocols);
  socket.onopen = () => { resolve("open"); socket.close(); };
  socket.onclose = (event) => resolve(`closed ${event.code}`);
})"""


@pytest.fixture
async def guarded_system(settings, tmp_path):
    """Gateway (with a viewer token) and one validator on the session's broker and Redis."""
    system_settings = settings.replace(http_port=free_port(), tick_ms=100, viewer_token=VIEWER, admin_token=ADMIN)
    await ensure_topics(system_settings)
    system = LocalSystem(system_settings, tmp_path, validators=1)
    system.start()
    try:
        yield system
    finally:
        system.stop()


def ping(partner_id: str, lat: float, ts: int) -> OutRecord:
    body = {"partner_id": partner_id, "lat": lat, "lon": 77.5946, "ts": ts, "vehicle": "bike"}
    return OutRecord(value=json.dumps(body).encode(), key=partner_id.encode())


async def test_both_pages_work_under_the_csp_with_a_viewer_token_and_nothing_reads_without_it(
    browser, guarded_system, settings, producer
):
    base = guarded_system.base_url
    ws_url = base.replace("http", "ws") + "/ws"
    now = int(time.time() * 1000)
    await asyncio.gather(
        *await producer.send_many(
            settings.location_topic, [ping("courier-a", 12.9716, now), ping("courier-bad", 95.0, now)]
        )
    )

    # -- outside the browser: the data needs the token, and the Host must be ours -------------------------
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for path in ("/api/couriers", "/api/couriers/courier-a", "/api/dlq", "/api/dlq/stats"):
            assert (await http.get(path)).status_code == 401, path
        foreign = await http.get("/", headers={"host": f"evil.example:{settings.http_port}"})
        assert (foreign.status_code, foreign.text) == (
            400,
            "unknown Host: this gateway answers only the names in TRACKER_ALLOWED_HOSTS\n",
        )
        await eventually(
            lambda: _listed(http, "/api/couriers", "couriers"), timeout_s=30, what="courier-a in /api/couriers"
        )
    async with websockets.connect(ws_url) as anonymous:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await anonymous.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "viewer token required")
    with pytest.raises(websockets.InvalidStatus) as denied:
        await websockets.connect(ws_url, origin=websockets.Origin("http://evil.example"))
    assert denied.value.response.status_code == 403

    # -- the map: asks for the token, again after a wrong one, then works --------------------------------
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.add_init_script(CSP_RECORDER)
    page = await context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    await page.goto(base + "/")
    await page.wait_for_selector("[data-field='viewer-dialog'][open]", timeout=30_000)
    await page.screenshot(path=str(screenshot_path("access-viewer-token.png")))
    await page.fill("[data-field='viewer-input']", "not-the-token")
    await page.click("[data-field='viewer-dialog'] button[value='ok']")
    await page.wait_for_function(
        "() => document.querySelector(\"[data-field='viewer-dialog']\").open"
        " && !document.querySelector(\"[data-field='viewer-error']\").hidden",
        timeout=20_000,
    )
    assert "refused" in await page.inner_text("[data-field='viewer-error']")
    await page.fill("[data-field='viewer-input']", VIEWER)
    await page.click("[data-field='viewer-dialog'] button[value='ok']")
    await page.wait_for_function(
        "() => window.__tracker && window.__tracker.ready && window.__tracker.connection === 'open'"
        " && window.__tracker.courier('courier-a') !== undefined",
        timeout=30_000,
    )
    # The courier's details and trail come over HTTP with the token.
    await page.evaluate("window.__tracker.select('courier-a')")
    await page.wait_for_function(
        "() => document.querySelector(\"[data-field='panel-trail']\").textContent.endsWith('points')", timeout=20_000
    )
    assert await page.is_hidden("[data-field='panel-note']")
    assert await page.evaluate("window.__cspViolations") == []

    # -- a page of another origin (another local server) cannot open /ws, even with the token -------------
    elsewhere_server = await asyncio.start_server(_elsewhere_page, "127.0.0.1", 0)
    elsewhere_port = elsewhere_server.sockets[0].getsockname()[1]
    elsewhere = await context.new_page()
    refusals: list[str] = []
    elsewhere.on("console", lambda message: refusals.append(message.text))
    await elsewhere.goto(f"http://127.0.0.1:{elsewhere_port}/")
    offered = ["tracker.v1", encode_subprotocol_token(VIEWER)]
    assert await elsewhere.evaluate(OPEN_SOCKET, [ws_url, offered]) == "closed 1006"
    assert any("Unexpected response code: 403" in text for text in refusals), refusals  # the gateway's answer
    await elsewhere.close()
    elsewhere_server.close()

    # -- the review page, in the same tab: the token is kept, a junk time filter is dropped ---------------
    await page.goto(base + "/dlq?since=1e21")
    await page.wait_for_function("() => window.__dlq && window.__dlq.ready", timeout=30_000)

    async def rejected_ping_listed() -> bool:
        if any(row["reason"] == "invalid_coordinates" for row in await page.evaluate("window.__dlq.rows()")):
            return True
        await page.evaluate("window.__dlq.refresh()")
        return False

    await eventually(rejected_ping_listed, timeout_s=30, interval_s=0.5, what="the rejected ping on the review page")
    assert not await page.evaluate("document.querySelector(\"[data-field='viewer-dialog']\").open")
    row = next(row for row in await page.evaluate("window.__dlq.rows()") if row["reason"] == "invalid_coordinates")
    await page.evaluate("id => window.__dlq.select(id)", row["id"])
    await page.wait_for_function(
        "() => document.querySelector(\"[data-field='detail-payload']\").textContent.includes('courier-bad')",
        timeout=20_000,
    )
    assert await page.evaluate("window.__cspViolations") == []
    await context.close()
    assert problems == []


async def _elsewhere_page(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An HTTP server's whole answer: a blank page (the origin is what matters)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 15\r\nConnection: close\r\n\r\n<!doctype html>"
    )
    await writer.drain()
    writer.close()


async def _listed(http: httpx.AsyncClient, path: str, key: str) -> bool:
    response = await http.get(path, headers={"authorization": f"Bearer {VIEWER}"})
    return response.status_code == 200 and len(response.json()[key]) > 0
