"""The review page in a real browser on the real stack: hostile payloads shown as text, a payload too large
to replay as is shown as a preview, the jump of an impossible_speed ping drawn, a replay through the token
dialog, and the same counts as the CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from tests.browser.browser_helpers import screenshot_path
from tests.helpers import eventually, subprocess_env
from tracker.models import OutRecord

pytestmark = [pytest.mark.integration, pytest.mark.browser]

HOSTILE = "<img src=x onerror=alert(1)>"


def record(body: dict, key: str) -> OutRecord:
    return OutRecord(value=json.dumps(body).encode(), key=key.encode())


async def test_review_page(browser, live_system, settings, producer):
    now = int(time.time() * 1000)
    await asyncio.gather(
        *await producer.send_many(
            settings.location_topic,
            [
                record(
                    {"partner_id": HOSTILE, "lat": 95, "lon": 77.6, "ts": now, "note": "<script>alert(2)</script>"},
                    "hostile",
                ),
                record(
                    {"partner_id": "courier-j", "lat": 12.9716, "lon": 77.5946, "ts": now - 10_000, "vehicle": "bike"},
                    "courier-j",
                ),
                record(
                    {"partner_id": "courier-j", "lat": 13.01, "lon": 77.5946, "ts": now - 9_000, "vehicle": "bike"},
                    "courier-j",
                ),
                record(
                    {"partner_id": "courier-big", "lat": 12.97, "lon": 77.59, "ts": now, "pad": "x" * 6000},
                    "courier-big",
                ),
            ],
        )
    )
    big_size = len(json.dumps({"partner_id": "courier-big", "lat": 12.97, "lon": 77.59, "ts": now, "pad": "x" * 6000}))
    page = await browser.new_page(viewport={"width": 1440, "height": 1000})
    dialogs: list[str] = []
    dismissals: list[asyncio.Future] = []  # held, so that no dismissal is garbage-collected before it runs

    def on_dialog(dialog) -> None:
        dialogs.append(dialog.message)
        dismissals.append(asyncio.ensure_future(dialog.dismiss()))

    page.on("dialog", on_dialog)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(live_system.base_url + "/dlq")
    await page.wait_for_function("() => window.__dlq && window.__dlq.ready", timeout=30_000)

    async def three_rows_listed() -> bool:
        if len(await page.evaluate("window.__dlq.rows()")) >= 3:
            return True
        await page.evaluate("window.__dlq.refresh()")
        return False

    await eventually(three_rows_listed, timeout_s=30, interval_s=0.5, what="three rows on the review page")
    rows = {row["reason"]: row for row in await page.evaluate("window.__dlq.rows()")}
    assert set(rows) == {"invalid_coordinates", "impossible_speed", "malformed_payload"}

    # A payload over the limit is shown as what it is, a preview, and can be edited but not replayed as is.
    await page.evaluate("id => window.__dlq.select(id)", rows["malformed_payload"]["id"])
    note = await page.inner_text("[data-field='payload-note']")
    assert f"showing the first 4,096 of {big_size:,} bytes" in note
    assert await page.is_disabled("[data-action='replay']")
    assert await page.is_enabled("[data-action='edit']")
    assert len(await page.evaluate("window.__dlq.detailText()")) == 4096

    # The hostile payload is shown as characters; nothing it contains runs or becomes an element.
    await page.evaluate("id => window.__dlq.select(id)", rows["invalid_coordinates"]["id"])
    text = await page.evaluate("window.__dlq.detailText()")
    assert HOSTILE in text and "<script>alert(2)</script>" in text
    assert await page.evaluate("document.querySelectorAll('img[src=\"x\"], [onerror]').length") == 0
    assert HOSTILE in await page.inner_text("body")

    # The jump of the impossible_speed ping: from the last accepted fix to the rejected point.
    await page.evaluate("id => window.__dlq.select(id)", rows["impossible_speed"]["id"])
    await page.wait_for_function("() => window.__dlq.lineDrawn()", timeout=10_000)
    assert await page.evaluate("window.__dlq.ghostCount()") >= 1
    await page.screenshot(path=str(screenshot_path("dlq.png")))

    # Discard through the page: the token dialog asks once, then the row's status changes.
    await page.click("[data-action='discard']")
    await page.fill("[data-field='token-input']", live_system.token)
    await page.keyboard.press("Enter")
    await page.wait_for_function(
        "id => window.__dlq.rows().some(r => r.id === id && r.status === 'discarded')",
        arg=rows["impossible_speed"]["id"],
        timeout=10_000,
    )

    # The page and the CLI agree on the counts.
    await page.evaluate("window.__dlq.refresh()")
    await page.wait_for_function(
        "() => document.querySelector('[data-field=\"status-discarded\"]').textContent === '1'", timeout=10_000
    )
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tracker", "dlq", "stats", "--json"],
        env=subprocess_env(settings),
        capture_output=True,
        timeout=60,
    )
    stats = json.loads(cli.stdout)
    assert await page.inner_text("[data-field='total']") == str(stats["total"]) == "3"
    assert await page.inner_text("[data-field='status-new']") == str(stats["by_status"]["new"]) == "2"
    assert await page.inner_text("[data-field='status-discarded']") == str(stats["by_status"]["discarded"])
    assert dialogs == [] and errors == []
