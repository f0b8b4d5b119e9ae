"""The live map in a real browser: markers for the simulated couriers, and a marker that moves."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.browser.browser_helpers import screenshot_path
from tracker.models import OutRecord

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def ping(partner_id: str, lat: float, lon: float, ts: int) -> OutRecord:
    body = {"partner_id": partner_id, "lat": lat, "lon": lon, "ts": ts, "speed": 10.0, "vehicle": "car"}
    return OutRecord(value=json.dumps(body).encode(), key=partner_id.encode())


async def test_markers_appear_and_a_marker_moves(browser, live_system, settings, producer):
    live_system.start_simulator("--couriers", "40", "--interval", "1", "--bad-rate", "0", "--seed", "3")
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(live_system.base_url + "/")
    await page.wait_for_function("() => window.__tracker && window.__tracker.ready", timeout=30_000)
    await page.wait_for_function("() => window.__tracker.renderedCount() >= 40", timeout=30_000)
    assert await page.evaluate("window.__tracker.connection") == "open"

    now = int(time.time() * 1000)
    start, end = (12.9716, 77.5946), (12.9734, 77.5946)  # 200 m north, 20 s later: 10 m/s by car
    await asyncio.gather(
        *await producer.send_many(settings.location_topic, [ping("courier-probe", *start, now - 20_000)])
    )
    await page.wait_for_function("() => window.__tracker.courier('courier-probe') !== undefined", timeout=20_000)
    before = await page.evaluate("window.__tracker.screenPosition('courier-probe')")
    assert await page.evaluate("window.__tracker.courier('courier-probe').lat") == pytest.approx(start[0])

    await asyncio.gather(*await producer.send_many(settings.location_topic, [ping("courier-probe", *end, now)]))
    await page.wait_for_function(
        f"() => window.__tracker.courier('courier-probe').lat > {start[0] + 0.001}", timeout=20_000
    )
    # screenPosition projects the courier's newest fix, which the page now holds: no frame to wait for.
    after = await page.evaluate("window.__tracker.screenPosition('courier-probe')")
    assert after["y"] < before["y"], (before, after)  # north is up: the marker moved up the screen

    await page.screenshot(path=str(screenshot_path("map.png")))
    assert errors == []
