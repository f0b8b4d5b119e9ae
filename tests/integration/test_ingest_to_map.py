"""Phones to the dispatcher's map, the whole way as `tracker up` wires it: the ingest, a validator and the
gateway as child processes (LocalSystem with ``ingest=True``, what ``tracker up`` starts), on the real broker
and Redis. Two couriers' phones post over real HTTP, as their apps do (an OsmAnd GET with the speed in knots,
an OwnTracks POST with ``vel`` in km/h), and a dispatcher's ``/ws`` shows both where they are, at their
speed in m/s."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from tests.integration.ingest_helpers import LAT, LON, basic, now_ms
from tracker.ingest import devices
from tracker.local.processes import free_port
from tracker.settings import Settings
from tracker.store import Store
from tracker.up import LocalSystem

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

KNOT_MPS = 1852 / 3600
KMH_MPS = 1000 / 3600


@pytest.fixture
def system(settings: Settings, tmp_path):
    system_settings = settings.replace(http_port=free_port(), ingest_port=free_port(), tick_ms=25)
    with LocalSystem(system_settings, tmp_path, validators=1, ingest=True) as running:
        yield running


async def couriers_on_the_map(ws, wanted: set[str], timeout_s: float = 20.0) -> dict[str, dict]:
    """The latest of each ``wanted`` courier the map's frames (snapshot or delta) show, once all are seen."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    while not wanted <= seen.keys():
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"not on the map within {timeout_s} s: {sorted(wanted - seen.keys())}")
        frame = json.loads(await asyncio.wait_for(ws.recv(), left))
        if frame.get("type") in ("snapshot", "delta"):
            seen.update({courier["id"]: courier for courier in frame["couriers"] if courier["id"] in wanted})
    return seen


async def test_phones_posting_to_the_ingest_show_on_the_live_map_in_metres_per_second(
    system: LocalSystem, store: Store
) -> None:
    osmand_token = await devices.add(store, "c-phone-osmand")
    owntracks_token = await devices.add(store, "c-phone-owntracks")
    async with (
        websockets.connect(system.base_url.replace("http", "ws", 1) + "/ws") as ws,
        httpx.AsyncClient(base_url=system.ingest_url, timeout=10) as phone,
    ):
        assert json.loads(await ws.recv())["type"] == "snapshot"
        second = now_ms() // 1000 - 1
        # Traccar Client for Android (before 9) / the OsmAnd protocol: a GET, the token in the server URL,
        # the time in epoch seconds and the speed in knots.
        osmand = await phone.get(
            "/",
            params={
                "token": osmand_token,
                "id": "c-phone-osmand",
                "timestamp": second,
                "lat": f"{LAT:.6f}",
                "lon": f"{LON:.6f}",
                "speed": "10.0",
                "bearing": "90.0",
                "accuracy": "6.0",
                "batt": "81.0",
            },
        )
        # OwnTracks in HTTP mode: a POST of its location message, HTTP Basic with the token as password,
        # X-Limit-U naming the user; vel in km/h.
        owntracks = await phone.post(
            "/owntracks",
            headers={**basic("c-phone-owntracks", owntracks_token), "X-Limit-U": "c-phone-owntracks"},
            json={
                "_type": "location",
                "lat": LAT + 0.01,
                "lon": LON + 0.01,
                "tst": second,
                "vel": 36,
                "cog": 270,
                "acc": 10,
                "tid": "ot",
            },
        )
        assert (osmand.status_code, osmand.content) == (200, b""), osmand.text
        assert (owntracks.status_code, owntracks.json()) == (200, [])

        shown = await couriers_on_the_map(ws, {"c-phone-osmand", "c-phone-owntracks"})

    by_osmand, by_owntracks = shown["c-phone-osmand"], shown["c-phone-owntracks"]
    assert (by_osmand["lat"], by_osmand["lon"], by_osmand["ts"]) == (
        pytest.approx(LAT),
        pytest.approx(LON),
        second * 1000,
    )
    assert by_osmand["speed"] == pytest.approx(10 * KNOT_MPS)  # 10 knots: 5.14 m/s, not 10
    assert by_osmand["heading"] == 90.0
    assert (by_owntracks["lat"], by_owntracks["lon"], by_owntracks["ts"]) == (
        pytest.approx(LAT + 0.01),
        pytest.approx(LON + 0.01),
        second * 1000,
    )
    assert by_owntracks["speed"] == pytest.approx(36 * KMH_MPS)  # 36 km/h: 10 m/s
    assert by_owntracks["heading"] == 270
