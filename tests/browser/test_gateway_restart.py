"""The gateway killed with SIGKILL under a live map: the supervisor restarts it, and the open page reconnects by
itself (no reload), shows couriers moving again and its indicator says Live."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.browser.browser_helpers import screenshot_path
from tests.helpers import eventually
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.browser]

COURIERS = 40
# How many of the simulated couriers the page shows with a fix newer than `since` (ms).
FRESH = f"""(since) => Array.from({{length: {COURIERS}}},
    (_, i) => window.__tracker.courier('courier-' + String(i + 1).padStart(4, '0')))
    .filter((c) => c !== undefined && c.ts > since).length"""


async def test_the_page_reconnects_after_the_gateway_is_killed_and_restarted(browser, settings, tmp_path):
    system_settings = settings.replace(http_port=free_port(), tick_ms=100)
    await ensure_topics(system_settings)
    system = LocalSystem(system_settings, tmp_path, validators=1)
    system.start()
    system.start_supervisor()
    try:
        system.start_simulator("--couriers", str(COURIERS), "--interval", "1", "--bad-rate", "0", "--seed", "5")
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(system.base_url + "/")
        await page.wait_for_function("() => window.__tracker && window.__tracker.ready", timeout=30_000)
        await page.wait_for_function(f"() => window.__tracker.renderedCount() >= {COURIERS}", timeout=30_000)
        await page.evaluate("window.__sameDocument = true")  # gone if the page were reloaded

        [gateway] = [process for name, process in system.children if name == "gateway"]
        os.kill(gateway.pid, signal.SIGKILL)
        await page.wait_for_function("() => window.__tracker.connection !== 'open'", timeout=15_000)
        assert await page.locator(".connection [data-field=connection]").text_content() in ("Offline", "Reconnecting…")

        await eventually(
            lambda: system.restarts["gateway"] >= 1, timeout_s=60, what="the supervisor to restart the gateway"
        )
        assert system.restarts["gateway"] == 1, "the supervisor did not restart the gateway"
        restarted_at = int(time.time() * 1000)

        # Backoff of the page is at most 10 s between tries; the new gateway needs a few seconds to start.
        await page.wait_for_function("() => window.__tracker.connection === 'open'", timeout=60_000)
        await page.wait_for_function(f"() => ({FRESH})({restarted_at}) >= {COURIERS // 2}", timeout=30_000)
        assert await page.evaluate("window.__sameDocument") is True
        assert await page.locator(".connection [data-field=connection]").text_content() == "Live"
        assert await page.locator(".connection").get_attribute("data-state") == "open"
        await page.screenshot(path=str(screenshot_path("map-after-gateway-restart.png")))
        assert errors == []
        assert system.failed is None
    finally:
        system.stop()
