"""History playback in a real browser, on a running gateway and validator fed with real pings.

One page load: a courier's recorded route is played back, the marker passes through every recorded point
(rendered there, not only computed), the route and the rejected ping's ghost appear as the clock passes them,
live fixes meanwhile move nothing, and the speed control changes how long the playback takes; then the
whole fleet (2,001 couriers) plays back and the frame time is reported."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from datetime import UTC, datetime

import httpx
import pytest

from simulator import SimConfig, iter_pings
from tests.browser.browser_helpers import screenshot_path
from tests.helpers import eventually
from tracker.models import OutRecord

pytestmark = [pytest.mark.integration, pytest.mark.browser]

COURIER = "rider/42"  # a "/" in the id: the page sends it as %2F
START = (12.9352, 77.6245)  # Koramangala


def ping(ts: int, lat: float, lon: float, partner_id: str = COURIER) -> OutRecord:
    body = {"partner_id": partner_id, "lat": lat, "lon": lon, "ts": ts, "vehicle": "bike"}
    return OutRecord(value=json.dumps(body).encode(), key=partner_id.encode())


def local_input(ms: int) -> str:
    """Epoch ms as the page's datetime-local inputs take it (the browser runs in this machine's time zone)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone().strftime("%Y-%m-%dT%H:%M:%S")


def on_route(fixes: list[tuple[int, float, float]], t: float) -> list[float]:
    """[lon, lat] on the recorded route at time ``t``: straight between two fixes, at the last one after it."""
    if t >= fixes[-1][0]:
        return [fixes[-1][2], fixes[-1][1]]
    index = max(i for i, fix in enumerate(fixes) if fix[0] <= t)
    (t0, lat0, lon0), (t1, lat1, lon1) = fixes[index], fixes[index + 1]
    share = (t - t0) / (t1 - t0)
    return [lon0 + (lon1 - lon0) * share, lat0 + (lat1 - lat0) * share]


# Seeks to each time and resolves with where the marker is drawn at each.
SEEK_EACH = """(times) => times.map((t) => {
  window.__tracker.playback().seek(t);
  return window.__tracker.playback().marker();
})"""

# Clicks Play and resolves, once the clock has reached the window's end, with the wall time it took (ms) and
# the clock's pace: playback ms per wall ms between the first and the last frame (frame timing aside).
PLAY_TO_END = """async () => {
  const hooks = window.__tracker.playback();
  const started = performance.now();
  const samples = [];
  document.querySelector('[data-action="playback-play"]').click();
  while (!hooks.state().ended || hooks.state().playing) {
    await new Promise(requestAnimationFrame);
    samples.push([performance.now(), hooks.state().t]);
  }
  const moving = samples.filter(([, t]) => t < hooks.state().to);  // the last frame stops at the end
  const [first, last] = [moving[0], moving[moving.length - 1]];
  const pace = moving.length < 3 ? null : (last[1] - first[1]) / (last[0] - first[0]);
  return {wall: performance.now() - started, pace};
}"""


async def test_a_recorded_route_plays_back_through_its_points_at_the_speed_chosen(
    browser, live_system, settings, producer
):
    now = int(time.time() * 1000)
    # 20 fixes 3 s apart (~7 m/s by bike), the last 10 s ago; after the 9th a ping 5 km away: impossible_speed.
    fixes = [(now - 67_000 + 3_000 * i, START[0] + 0.0002 * i, START[1] + 0.00005 * (i % 4)) for i in range(20)]
    jump = ping(fixes[8][0] + 1_000, START[0] + 0.05, START[1])
    records = [ping(*fix) for fix in fixes[:9]] + [jump] + [ping(*fix) for fix in fixes[9:]]
    # ...and a fleet of 2,000 more couriers, three fixes each over the same minute.
    fleet = SimConfig(couriers=2000, count=6000, interval_s=25, bad_rate=0, duplicate_rate=0, seed=5, burst=True)
    records += [OutRecord(p.value, p.key, p.headers) for p in iter_pings(fleet, now - 5_000, settings=settings)]
    await asyncio.gather(*await producer.send_many(settings.location_topic, records))

    base = live_system.base_url
    window = {"from": fixes[0][0] - 2_000, "to": fixes[-1][0] + 1_000}
    async with httpx.AsyncClient(base_url=base) as client:

        async def recorded() -> bool:
            answer = await client.get("/api/couriers/rider%2F42/trail", params=window)
            dead = await client.get("/api/dlq", params={"partner": COURIER})
            return len(answer.json()["points"]) == 20 and dead.json()["total"] == 1

        await eventually(recorded, timeout_s=60, what="the route and its rejected ping recorded")

    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(base + "/")
    await page.wait_for_function("() => window.__tracker && window.__tracker.playback() !== null", timeout=30_000)

    # The dispatcher opens History, names the courier and the window, and loads it.
    await page.click('[data-action="history"]')
    await page.fill('.playback [name="courier"]', COURIER)
    await page.fill('.playback [name="from"]', local_input(window["from"]))
    await page.fill('.playback [name="to"]', local_input(window["to"]))
    await page.select_option('[data-field="playback-speed"]', "10")
    await page.click('.playback button[type="submit"]')
    await page.wait_for_function("() => window.__tracker.playback().state().active", timeout=20_000)
    state = await page.evaluate("() => window.__tracker.playback().state()")
    assert (state["mode"], state["fixes"], state["ghosts"]) == ("courier", 20, 1), state
    assert state["status"] == f"{COURIER}: 20 fixes (every fix), 1 rejected ping."
    assert not await page.evaluate("() => window.__tracker.playback().liveVisible()")
    # the window from the form is whole seconds of local time
    from_ms = window["from"] - window["from"] % 1000
    assert (state["from"], state["to"]) == (from_ms, window["to"] - window["to"] % 1000)

    # The marker passes through every recorded point at that point's time, and the map draws it there.
    at_fixes = await page.evaluate(SEEK_EACH, [ts for ts, _, _ in fixes])
    for drawn_at, (_, lat, lon) in zip(at_fixes, fixes, strict=True):
        assert drawn_at == pytest.approx([lon, lat], abs=1e-9)
    for index in (0, 9, 19):  # each waits for the map to draw it (SwiftShader: a few frames a second)
        ts, lat, lon = fixes[index]
        await page.evaluate("(t) => window.__tracker.playback().seek(t)", ts)
        await page.wait_for_function(
            "([lon, lat]) => window.__tracker.playback().markerRenderedAt(lon, lat)", arg=[lon, lat], timeout=10_000
        )
    await page.evaluate("(t) => window.__tracker.playback().seek(t)", fixes[8][0] + 500)
    assert (await page.evaluate("() => window.__tracker.playback().state()"))["ghostsShown"] == 0

    # A live fix arriving now moves the live courier, not the played-back marker.
    held = await page.evaluate("() => window.__tracker.playback().marker()")
    live_ts = now + 2_000
    await asyncio.gather(*await producer.send_many(settings.location_topic, [ping(live_ts, *fixes[-1][1:])]))
    await page.wait_for_function(
        "(ts) => (window.__tracker.courier('rider/42') || {}).ts === ts", arg=live_ts, timeout=20_000
    )
    assert await page.evaluate("() => window.__tracker.playback().marker()") == held

    # Played at 10x from there: every frame's marker lies on the recorded route, in time order; the ghost
    # appears once the clock passes the rejected ping; at the end the marker is at the last fix.
    state = await page.evaluate("() => window.__tracker.playback().state()")
    frames_before = await page.evaluate("() => window.__tracker.playback().drawn.length")
    at_ten = await page.evaluate(PLAY_TO_END)
    drawn = await page.evaluate("(n) => window.__tracker.playback().drawn.slice(n)", frames_before)
    assert len(drawn) >= 5, len(drawn)  # headless Chromium draws with SwiftShader: a few frames a second
    times = [t for t, _, _ in drawn]
    assert times == sorted(times)
    for t, lon, lat in drawn:
        assert [lon, lat] == pytest.approx(on_route(fixes, t), abs=1e-9), t
    ended = await page.evaluate("() => window.__tracker.playback().state()")
    assert ended["ghostsShown"] == 1 and ended["ended"]
    assert await page.evaluate("() => window.__tracker.playback().marker()") == pytest.approx(
        [fixes[-1][2], fixes[-1][1]], abs=1e-9
    )
    await page.screenshot(path=str(screenshot_path("playback.png")))

    # The speed control changes how long it takes: the rest of the window played in a tenth of its length at
    # 10x, the whole window in a sixtieth at 60x (give or take a frame), the clock running 10 and 60 times
    # as fast as the wall clock.
    await page.select_option('[data-field="playback-speed"]', "60")
    at_sixty = await page.evaluate(PLAY_TO_END)
    expected_ten, expected_sixty = (state["to"] - state["t"]) / 10, (state["to"] - state["from"]) / 60
    assert expected_ten * 0.95 <= at_ten["wall"] <= expected_ten + 2_000, (at_ten, expected_ten)
    assert expected_sixty * 0.95 <= at_sixty["wall"] <= expected_sixty + 2_000, (at_sixty, expected_sixty)
    assert at_ten["wall"] > at_sixty["wall"]
    for run, speed in ((at_ten, 10), (at_sixty, 60)):  # (None when too few frames were drawn to tell)
        assert run["pace"] is None or run["pace"] == pytest.approx(speed, rel=0.2), (run, speed)

    # The whole fleet: no courier named. Every courier is drawn, smoothly: the frame time is reported.
    await page.fill('.playback [name="courier"]', "")
    await page.fill('.playback [name="from"]', local_input(now - 90_000))
    await page.fill('.playback [name="to"]', local_input(now + 5_000))
    await page.click('.playback button[type="submit"]')
    await page.wait_for_function("() => window.__tracker.playback().state().mode === 'fleet'", timeout=20_000)
    state = await page.evaluate("() => window.__tracker.playback().state()")
    assert state["couriers"] == 2001, state
    frames_before = await page.evaluate("() => window.__tracker.playback().frameMs.length")
    took = (await page.evaluate(PLAY_TO_END))["wall"]
    frame_ms = await page.evaluate("(n) => window.__tracker.playback().frameMs.slice(n)", frames_before)
    assert len(frame_ms) >= 3, frame_ms
    print(
        f"\nfleet playback, 2,001 couriers: {len(frame_ms)} frames in {took:.0f} ms; main-thread ms per frame "
        f"(interpolation and setData) p50 {statistics.median(frame_ms):.2f}, max {max(frame_ms):.2f}"
    )

    # Back to live: the live markers show again.
    await page.click('[data-action="playback-close"]')
    assert await page.evaluate("() => window.__tracker.playback().liveVisible()")
    assert problems == []
