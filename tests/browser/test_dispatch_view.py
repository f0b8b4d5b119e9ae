"""The dispatch view in a real browser, on a running system (gateway, validator and the events worker as child
processes): the streets of a local PMTiles basemap, a courier driven across a zone boundary with real pings,
the event feed and the zone counts following it live, a click on an event flying to the courier, and a
marker gliding to its next fix.

The basemap is an archive this test writes itself: a PMTiles v3 file (the ``pmtiles`` package's writer) of
Mapbox Vector Tiles (``mapbox-vector-tile``) in the Protomaps schema the page's style reads, each tile one
major road, one minor road and land, for every tile over the service area from zoom 0 to 13.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import time
from pathlib import Path

import mapbox_vector_tile
import pytest
from playwright.async_api import ConsoleMessage, Response
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from tests.browser.browser_helpers import screenshot_path
from tracker.kafka import ensure_topics
from tracker.local.processes import free_port
from tracker.models import OutRecord
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.browser]

AREA = (77.49, 12.86, 77.71, 13.08)  # the built-in service area's bounds (west, south, east, north)
MAX_ZOOM = 13
COURIER = "courier-dispatch"
# Koramangala and HSR Layout (the built-in zones) share the edge lat 12.92 between lon 77.63 and 77.64.
IN_KORAMANGALA = (12.921, 77.635)
IN_HSR = (12.919, 77.635)  # 220 m south
FURTHER_IN_HSR = (12.9189, 77.635)  # 11 m on, a second later


def _tile_range(zoom: int) -> tuple[range, range]:
    def column(lon: float) -> int:
        return int((lon + 180) / 360 * 2**zoom)

    def row(lat: float) -> int:
        y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
        return int((1 - y / math.pi) / 2 * 2**zoom)

    west, south, east, north = AREA
    return range(column(west), column(east) + 1), range(row(north), row(south) + 1)


def write_basemap(path: Path) -> int:
    """A small PMTiles v3 archive of vector tiles; returns how many tiles it addresses."""
    tile = gzip.compress(
        mapbox_vector_tile.encode(
            [
                {
                    "name": "earth",
                    "features": [{"geometry": "POLYGON((0 0, 4096 0, 4096 4096, 0 4096, 0 0))", "properties": {}}],
                },
                {
                    "name": "roads",
                    "features": [
                        {"geometry": "LINESTRING(0 2048, 4096 2048)", "properties": {"kind": "major_road"}},
                        {
                            "geometry": "LINESTRING(2048 0, 2048 4096)",
                            "properties": {"kind": "minor_road", "kind_detail": "residential"},
                        },
                    ],
                },
            ],
            default_options={"y_coord_down": True},
        ),
        mtime=0,
    )
    ids = sorted(
        zxy_to_tileid(zoom, x, y)
        for zoom in range(MAX_ZOOM + 1)
        for x in _tile_range(zoom)[0]
        for y in _tile_range(zoom)[1]
    )
    west, south, east, north = AREA
    with path.open("wb") as file:
        writer = Writer(file)
        for tile_id in ids:
            writer.write_tile(tile_id, tile)
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(west * 1e7),
                "min_lat_e7": int(south * 1e7),
                "max_lon_e7": int(east * 1e7),
                "max_lat_e7": int(north * 1e7),
                "center_zoom": 12,
            },
            {"name": "test streets", "vector_layers": [{"id": "roads"}, {"id": "earth"}]},
        )
    return len(ids)


def ping(lat_lon: tuple[float, float], ts: int) -> OutRecord:
    body = {"partner_id": COURIER, "lat": lat_lon[0], "lon": lat_lon[1], "ts": ts, "speed": 11.0, "vehicle": "car"}
    return OutRecord(value=json.dumps(body).encode(), key=COURIER.encode())


def feed_has(event_type: str, text: str) -> str:
    """A page function: whether the feed shows ``event_type`` of the courier with ``text`` in it."""
    return (
        "() => [...document.querySelectorAll('.events-list .event')].some("
        f"b => b.dataset.partnerId === '{COURIER}' && b.dataset.type === '{event_type}' "
        f"&& b.textContent.includes('{text}'))"
    )


# The courier is drawn at the middle of the map (it flew there), within a few pixels.
FLOWN_TO = """(id) => {
  const at = window.__tracker.screenPosition(id);
  const box = document.getElementById('map').getBoundingClientRect();
  return at !== null && Math.hypot(at.x - (box.left + box.width / 2), at.y - (box.top + box.height / 2)) < 8;
}"""

# Samples the drawn position every frame from the fix's arrival until it is drawn at the fix (a glide takes
# the fix interval, 1 s; on a loaded machine frames come late, so up to 5 s), then three frames more.
SAMPLE_GLIDE = """async ([id, ts, lat]) => {
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  while (!(window.__tracker.courier(id) && window.__tracker.courier(id).ts >= ts)) await frame();
  const samples = [];
  let after = 0;
  for (const end = performance.now() + 5000; performance.now() < end && after < 3; ) {
    const drawn = window.__tracker.drawnPosition(id);
    samples.push(drawn);
    if (Math.abs(drawn[1] - lat) < 1e-9) after += 1;
    await frame();
  }
  return samples;
}"""


async def test_dispatch_view(browser, settings, tmp_path, producer):
    archive = tmp_path / "streets.pmtiles"
    tiles = write_basemap(archive)
    assert tiles > 50 and archive.stat().st_size < 16_384  # one range request reads it all
    system_settings = settings.replace(http_port=free_port(), tick_ms=100, basemap=str(archive), zone_dwell_s=0.0)
    await ensure_topics(system_settings)
    system = LocalSystem(system_settings, tmp_path, validators=1, events=True)
    await asyncio.to_thread(system.start)
    try:
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        problems: list[str] = []
        archive_answers: list[tuple[int, str | None]] = []

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":  # a CSP violation is one too
                problems.append(message.text)

        def on_response(response: Response) -> None:
            if response.url.endswith("/basemap.pmtiles"):
                archive_answers.append((response.status, response.headers.get("content-range")))

        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("console", on_console)
        page.on("response", on_response)
        await page.goto(system.base_url + "/")
        await page.wait_for_function("() => window.__tracker && window.__tracker.ready", timeout=30_000)

        # The streets of the local archive: tiles read with range requests and roads drawn.
        await page.wait_for_function(
            "() => { const b = window.__tracker.basemap(); return b !== null && b.loaded && b.roads > 0; }",
            timeout=30_000,
        )
        assert archive_answers and all(status == 206 for status, _ in archive_answers), archive_answers
        assert archive_answers[0][1] == f"bytes 0-{archive.stat().st_size - 1}/{archive.stat().st_size}"

        # A courier enters Koramangala: the feed shows it.
        now = int(time.time() * 1000)
        first, second = now - 30_000, now - 10_000
        await asyncio.gather(*await producer.send_many(settings.location_topic, [ping(IN_KORAMANGALA, first)]))
        await page.wait_for_function(feed_has("zone_enter", "Koramangala"), timeout=60_000)
        # ...and crosses into HSR Layout: the feed updates live, newest first, and the zone counts follow.
        await asyncio.gather(*await producer.send_many(settings.location_topic, [ping(IN_HSR, second)]))
        await page.wait_for_function(feed_has("zone_enter", "HSR Layout"), timeout=30_000)
        await page.wait_for_function(feed_has("zone_exit", "Koramangala"), timeout=10_000)
        rows = await page.eval_on_selector_all(
            ".events-list .event",
            "buttons => buttons.map(b => [b.dataset.type, b.querySelector('.event-what').textContent])",
        )
        crossing = [["zone_enter", "HSR Layout"], ["zone_exit", "Koramangala"]]
        assert rows.index(crossing[0]) + 1 == rows.index(crossing[1]) < rows.index(["zone_enter", "Koramangala"]), rows
        assert ["status_change", "offline → online"] in rows
        await page.wait_for_function(
            "() => document.querySelector('.zone-label[data-zone=\"HSR Layout\"] .zone-count').textContent === '1'"
            " && document.querySelector('.zone-label[data-zone=\"Koramangala\"] .zone-count').textContent === '0'",
            timeout=10_000,
        )

        # Smooth motion (on by default): the next fix, a second later, is glided to, never past it.
        before = await page.evaluate(f"window.__tracker.drawnPosition('{COURIER}')")
        assert before == pytest.approx([IN_HSR[1], IN_HSR[0]])
        sampling = asyncio.ensure_future(page.evaluate(SAMPLE_GLIDE, [COURIER, second + 1000, FURTHER_IN_HSR[0]]))
        await asyncio.gather(*await producer.send_many(settings.location_topic, [ping(FURTHER_IN_HSR, second + 1000)]))
        lats = [lat for _, lat in await sampling]
        assert all(FURTHER_IN_HSR[0] - 1e-9 <= lat <= IN_HSR[0] + 1e-9 for lat in lats), lats
        assert lats == sorted(lats, reverse=True), lats  # southwards only: never back, never past
        assert any(FURTHER_IN_HSR[0] < lat < IN_HSR[0] for lat in lats), lats  # drawn between the fixes
        assert lats[-1] == pytest.approx(FURTHER_IN_HSR[0])

        # A click on the event flies to the courier and shows it.
        await page.click(f".events-list .event[data-type='zone_enter'][data-partner-id='{COURIER}'] >> nth=0")
        await page.wait_for_function(f"() => window.__tracker.selectedId() === '{COURIER}'", timeout=10_000)
        assert await page.text_content("#panel-title") == COURIER
        await page.wait_for_function(FLOWN_TO, arg=COURIER, timeout=10_000)
        await page.screenshot(path=str(screenshot_path("dispatch.png")))

        # Smooth motion can be turned off, and the browser remembers it.
        await page.click("[data-field='smooth-motion']")
        assert await page.evaluate("window.__tracker.smoothMotion") is False
        assert await page.evaluate("window.localStorage.getItem('tracker.smoothMotion')") == "off"
        assert problems == []
    finally:
        await asyncio.to_thread(system.stop)
