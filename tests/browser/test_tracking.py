"""The customer's tracking page in a real browser, on a running system (gateway, validator and the events
worker that moves orders through their states): two orders of two couriers, each page opened from the link the
orders API gave. Courier A is driven with real pings from near its pickup point to its drop-off: page A shows
it coarsened before pickup, then moving toward the drop-off with an ETA that falls, "Arriving", "Delivered" and
then no position at all. Page B, another order's link, receives only its own courier: none of page B's WebSocket
frames carries A's id or anything near A's positions. A revoked link, a forged one and an expired one show their
refusals. One system, one browser; the phone-sized page is also the README's screenshot.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Response, WebSocket

from tests.browser.browser_helpers import screenshot_path
from tracker.geo import haversine_m
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.orders.link import Link, sign
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SECRET = "test-tracking-secret"
AHEAD_S = 180.0
PHONE = {"width": 390, "height": 844}
M_PER_DEG_LAT = 111_320.0

# Order A: picked up in Koramangala, delivered 1.2 km north. Order B: across town, no pickup point.
COURIER_A, COURIER_B = "courier-track-a", "courier-track-b"
PICKUP_A = (12.9300, 77.6100)
DROPOFF_A = (12.9300 + 1200 / M_PER_DEG_LAT, 77.6100)
DROPOFF_B = (13.0300, 77.5300)
START_B = (13.0300 - 900 / M_PER_DEG_LAT, 77.5300)

# What the page shows, as a user reads it (frontend/src/track/state.js, outcome.js).
HEADLINE = "document.querySelector('[data-field=headline]').textContent"
ETA = (
    "document.querySelector('[data-field=eta-block]').hidden ? null"
    " : document.querySelector('[data-field=eta]').textContent"
)
COURIER_MARKERS = "document.querySelectorAll('.track-courier').length"


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return (point[0] + metres / M_PER_DEG_LAT, point[1])


def ping(partner_id: str, at: tuple[float, float], ts: int) -> OutRecord:
    body = {"partner_id": partner_id, "lat": at[0], "lon": at[1], "ts": ts, "speed": 12.0, "vehicle": "car"}
    return OutRecord(value=json.dumps(body).encode(), key=partner_id.encode())


def eta_minutes(text: str) -> float:
    """'about 6 min' -> 6, 'about 1 h 5 min' -> 65, 'less than a minute' -> 0."""
    if text == "less than a minute":
        return 0
    words = text.removeprefix("about ").split()
    total = 0.0
    for value, unit in zip(words[::2], words[1::2], strict=True):
        total += float(value) * (60 if unit == "h" else 1)
    return total


async def until(page: Page, predicate: str, arg: Any = None, timeout_ms: int = 15_000) -> None:
    await page.wait_for_function(predicate, arg=arg, timeout=timeout_ms)


def headline_is(text: str) -> str:
    return f"() => {HEADLINE} === {json.dumps(text)}"


class Frames:
    """Every WebSocket frame a page receives on its tracking socket, parsed, and its closes."""

    def __init__(self, page: Page) -> None:
        self.texts: list[str] = []
        page.on("websocket", self._attach)

    def _attach(self, socket: WebSocket) -> None:
        if "/ws/track/" in socket.url:
            socket.on("framereceived", lambda payload: self.texts.append(str(payload)))

    def parsed(self) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.texts]


async def test_tracking_pages(browser, settings, tmp_path, producer):
    laps: list[tuple[str, float]] = [("start", time.monotonic())]

    def lap(name: str) -> None:
        laps.append((name, time.monotonic()))

    # Fix times a second apart would make this test minutes long: the route is driven with fix times up to two
    # minutes ahead of the clock, a few fixes a second, so the validator is told to take them.
    system_settings = settings.replace(http_port=free_port(), tick_ms=100, tracking_secret=SECRET, max_skew_s=AHEAD_S)
    await ensure_topics(system_settings)
    system = LocalSystem(system_settings, tmp_path, validators=1, events=True)
    await asyncio.to_thread(system.start)
    lap("system up")
    auth = {"Authorization": f"Bearer {system.token}"}
    try:
        async with httpx.AsyncClient(base_url=system.base_url, headers=auth, timeout=10) as api:
            created = {}
            for order_id, partner_id, dropoff, pickup in [
                ("order-a", COURIER_A, DROPOFF_A, PICKUP_A),
                ("order-b", COURIER_B, DROPOFF_B, None),
            ]:
                body: dict[str, Any] = {"order_id": order_id, "partner_id": partner_id}
                body["dropoff"] = {"lat": dropoff[0], "lon": dropoff[1]}
                if pickup is not None:
                    body["pickup"] = {"lat": pickup[0], "lon": pickup[1]}
                answer = await api.post("/api/orders", json=body)
                assert answer.status_code == 201, answer.text
                created[order_id] = answer.json()
        url_a, url_b = (system.base_url + created[o]["url"] for o in ("order-a", "order-b"))

        context = await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
        page_a, page_b = await context.new_page(), await context.new_page()
        problems: list[str] = []
        for page in (page_a, page_b):
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        frames_a, frames_b = Frames(page_a), Frames(page_b)

        # First load of page A, measured: what a phone downloads (MapLibre's worker included), none of it the
        # dispatcher's code.
        responses: list[Response] = []

        def on_response(response: Response) -> None:
            responses.append(response)

        page_a.on("response", on_response)
        await page_a.goto(url_a)
        await page_b.goto(url_b)
        await until(page_a, headline_is("On the way to the restaurant"))
        await until(page_b, headline_is("Picked up"))  # no pickup point: it starts picked up
        await until(page_a, "() => window.__track.ready")
        lap("pages loaded")
        # Bytes on the wire: each answer's Content-Length (the compressed size, when the gateway compresses).
        first_load = {r.url.removeprefix(system.base_url): await r.all_headers() for r in responses}
        total = sum(int(headers.get("content-length", 0)) for headers in first_load.values())
        print(f"\ntracking page, first load: {total} bytes in {len(first_load)} answers")
        for url, headers in sorted(first_load.items(), key=lambda item: -int(item[1].get("content-length", 0))):
            print(f"  {headers.get('content-length', '?'):>9} {headers.get('content-encoding', '-'):>5}  {url[:72]}")
        assert not [url for url in first_load if "/assets/index-" in url or "/assets/dlq-" in url], first_load
        assert await page_a.evaluate(COURIER_MARKERS) == 0  # no fix yet: no courier drawn

        # The route's fix times start now: an order moves only on fixes after it was created.
        base = int(time.time() * 1000) + 1000

        async def send(*records: OutRecord) -> None:
            await asyncio.gather(*await producer.send_many(settings.location_topic, list(records)))

        # Before pickup: A's position is coarsened (a 200 m grid), and the page says so. B shows its courier.
        approach = [north_of(PICKUP_A, -150), north_of(PICKUP_A, -120)]
        await send(
            *(ping(COURIER_A, at, base + i * 2000) for i, at in enumerate(approach)),
            ping(COURIER_B, START_B, base),
            ping(COURIER_B, north_of(START_B, 20), base + 2000),
        )
        await until(page_a, f"() => {COURIER_MARKERS} === 1 && window.__track.courier().coarse")
        assert await page_a.is_visible("[data-field=coarse]")
        shown = await page_a.evaluate("window.__track.courier()")
        assert (shown["lat"], shown["lon"]) != approach[-1]  # the grid cell's centre, not the fix
        await until(page_b, f"() => {COURIER_MARKERS} === 1")
        # A lost connection: the page says it is reconnecting, and is live again with its courier.
        connection = "document.querySelector('[data-field=connection]').textContent"
        said = await page_b.evaluate(f"() => {{ window.__track.dropConnection(); return {connection}; }}")
        assert said.startswith("Reconnecting"), said
        await until(page_b, f"() => {connection} === 'Live'")
        assert await page_b.evaluate(COURIER_MARKERS) == 1

        # At the pickup point, waiting 30 s for the order (a fix every 3 s): picked up, and from the next fix on
        # the exact position with an ETA to the drop-off.
        ts = base + 7000
        waiting = []
        for _ in range(10):
            waiting.append(ping(COURIER_A, PICKUP_A, ts))
            ts += 3000
        await send(*waiting[:5])
        await until(page_a, headline_is("Picked up"))
        for record in waiting[5:]:
            await send(record)
            await asyncio.sleep(0.1)
        await until(page_a, f"() => {ETA} !== null && !window.__track.courier().coarse")
        assert not await page_a.is_visible("[data-field=coarse]")
        await page_a.screenshot(path=str(screenshot_path("track-picked-up.png")))

        # Drive north to the drop-off at 25 m/s (a fix every 2 s), watching the page as a customer would.
        lap("picked up")
        etas: list[str] = [await page_a.evaluate(ETA)]
        headlines: list[str] = []
        drawn_distances: list[float] = []
        metres = 0.0
        while metres < 1180:
            metres = min(1180.0, metres + 50)
            ts += 2000
            await send(ping(COURIER_A, north_of(PICKUP_A, metres), ts))
            if metres == 300:
                await page_a.screenshot(path=str(screenshot_path("track.png")))
            if metres == 700:
                # 500 m from the drop-off: wait until the page says so (the states are read from Redis about
                # once a second) before going on.
                await until(page_a, headline_is("Arriving"))
            await asyncio.sleep(0.1)
            state = await page_a.evaluate(
                f"() => ({{ eta: {ETA}, headline: {HEADLINE}, drawn: window.__track.drawnPosition() }})"
            )
            if state["eta"] is not None and state["eta"] != etas[-1]:
                etas.append(state["eta"])
            headlines.append(state["headline"])
            if state["drawn"] is not None:
                lon, lat = state["drawn"]
                drawn_distances.append(haversine_m(lat, lon, *DROPOFF_A))
        lap("driven")

        # The ETA fell as the courier came closer, never rose; the marker came closer too.
        print("ETA shown:", " -> ".join(etas))
        minutes = [eta_minutes(text) for text in etas]
        assert minutes == sorted(minutes, reverse=True) and minutes[-1] < minutes[0], etas
        assert len(set(minutes)) >= 3, etas
        # The marker glides over each fix's 2 s while the fixes come every ~0.2 s: it trails the newest fix by
        # a few hundred metres here (smooth, never ahead of it), and has come well over half-way.
        assert drawn_distances[-1] < drawn_distances[0] - 500, drawn_distances
        worst_step_back = max(b - a for a, b in itertools.pairwise(drawn_distances))
        assert worst_step_back < 1.0, drawn_distances  # never drawn moving away from the drop-off
        assert "Arriving" in headlines or "Delivered" in headlines

        # Delivered: the page says so, and no marker, no position, no courier frame after it.
        await until(page_a, headline_is("Delivered"))
        await until(page_a, f"() => {COURIER_MARKERS} === 0")
        assert await page_a.evaluate("window.__track.courier()") is None
        assert await page_a.is_hidden("[data-field=eta-block]")
        assert await page_a.is_hidden("[data-field=distance]")
        received_a = frames_a.parsed()
        done = next(i for i, f in enumerate(received_a) if f.get("type") == "order" and f["state"] == "delivered")
        assert not [f for f in received_a[done:] if f.get("type") == "courier"], received_a[done:]
        await send(ping(COURIER_A, north_of(DROPOFF_A, 5), ts + 2000))  # the courier goes on pinging
        await asyncio.sleep(0.5)
        assert await page_a.evaluate(COURIER_MARKERS) == 0
        lap("delivered")
        await page_a.reload()
        await until(page_a, "() => window.__track.ended === 'delivered'")
        assert await page_a.evaluate(HEADLINE) == "Delivered"
        assert await page_a.evaluate(COURIER_MARKERS) == 0
        assert await page_a.evaluate("window.__track.courier()") is None

        # Page B never received courier A: not its id, not a position anywhere near A's route.
        received_b = frames_b.parsed()
        assert [f for f in received_b if f.get("type") == "courier"], received_b  # it did get its own
        assert not [text for text in frames_b.texts if COURIER_A in text or "order-a" in text]
        for frame in received_b:
            if frame.get("type") == "courier":
                assert haversine_m(frame["lat"], frame["lon"], *DROPOFF_B) < 1500, frame
                assert haversine_m(frame["lat"], frame["lon"], *PICKUP_A) > 5000, frame

        # Revoked while open: page B's socket is closed and the page says the link was turned off.
        async with httpx.AsyncClient(base_url=system.base_url, headers=auth, timeout=10) as api:
            answer = await api.post("/api/orders/order-b/revoke")
            assert answer.status_code == 200, answer.text
        await until(page_b, "() => document.querySelector('.track-refused').hidden === false")
        assert "no longer active" in await page_b.text_content("[data-field=refused-title]")
        assert await page_b.is_hidden("#map")
        assert await page_b.evaluate("window.__track.courier()") is None

        assert problems == []

        # A forged link and an expired one (signed with the right secret, past its expiry) are refused.
        token = created["order-a"]["token"]
        forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        answer = await page_b.goto(f"{system.base_url}/track/{forged}")
        assert answer is not None and answer.status == 403
        assert "invalid tracking link" in (await page_b.text_content("body") or "").lower()
        expired = sign(Link("order-a", COURIER_A, DROPOFF_A, PICKUP_A, int(time.time()) - 60), SECRET)
        answer = await page_b.goto(f"{system.base_url}/track/{expired}")
        assert answer is not None and answer.status == 410
        assert "tracking link expired" in (await page_b.text_content("body") or "").lower()
        await context.close()
        lap("refusals")
        print(" ".join(f"{name} +{at - before:.1f}s" for (_, before), (name, at) in itertools.pairwise(laps)))
    finally:
        await asyncio.to_thread(system.stop)
