"""The ingest over HTTP, end to end on the real broker and Redis: each app's own requests land on the map;
credentials decide who posts; malformed fixes reach the DLQ; limits answer what a phone can act on.

The ingest runs in this process (its lifespan as uvicorn runs it) and is driven with the exact requests the
apps send (their shapes are quoted in tracker/ingest/protocols.py); a validator runs in-process until idle.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from tests.integration.ingest_helpers import LAT, LON, basic, bearer, now_ms, running_ingest
from tests.integration.kafka_helpers import header, read_topic, validate_until_idle
from tracker import constants as c
from tracker.ingest import devices
from tracker.settings import Settings
from tracker.store import Store

pytestmark = pytest.mark.integration


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def position(store: Store, courier: str) -> dict:
    raw = await store.position_json(courier)
    assert raw is not None, f"{courier} is not on the map"
    return json.loads(raw)


async def test_every_app_lands_on_the_map_with_its_time_and_speed_in_metres_per_second(
    settings: Settings, store: Store
) -> None:
    tokens = {
        courier: await devices.add(store, courier)
        for courier in ("c-traccar-old", "c-osmand", "c-traccar9", "c-owntracks", "c-native", "c-gpslogger")
    }
    second = now_ms() // 1000 - 5  # the apps that send whole seconds
    ms = now_ms() - 3000
    async with running_ingest(settings) as (_, client):
        answers = {
            # Traccar Client for Android before 9: everything in the query string of a POST with no body; the
            # token is part of the server URL it was given (it keeps that query string and adds its own).
            "c-traccar-old": await client.post(
                f"/?token={tokens['c-traccar-old']}&id=c-traccar-old&timestamp={second}&lat={LAT}&lon={LON}"
                "&speed=10.0&bearing=90.0&altitude=912.0&accuracy=6.0&batt=81.0"
            ),
            # OsmAnd's online tracking: a GET, time in ms.
            "c-osmand": await client.get(
                "/osmand",
                params={
                    "token": tokens["c-osmand"],
                    "id": "c-osmand",
                    "lat": LAT + 0.001,
                    "lon": LON,
                    "timestamp": ms,
                    "hdop": 1.2,
                    "altitude": 900,
                    "speed": 2,
                },
            ),
            # Traccar Client 9+: flutter_background_geolocation's JSON, device_id from its params.
            "c-traccar9": await client.post(
                f"/?token={tokens['c-traccar9']}",
                json={
                    "location": {
                        "timestamp": datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds"),
                        "coords": {
                            "latitude": LAT + 0.002,
                            "longitude": LON,
                            "accuracy": 4.9,
                            "speed": 4.2,
                            "heading": 181.5,
                            "altitude": 903.1,
                        },
                        "is_moving": True,
                        "odometer": 1234.5,
                        "event": "motionchange",
                        "battery": {"level": 0.8, "is_charging": False},
                        "activity": {"type": "on_bicycle"},
                        "extras": {},
                        "_": f"&id=c-traccar9&lat={LAT + 0.002}&lon={LON}&timestamp={ms}&",
                    },
                    "device_id": "c-traccar9",
                },
            ),
            # OwnTracks in HTTP mode: Basic with the token as password, X-Limit-U/-D; vel in km/h.
            "c-owntracks": await client.post(
                "/owntracks",
                headers={**basic("c-owntracks", tokens["c-owntracks"]), "X-Limit-U": "c-owntracks", "X-Limit-D": "p"},
                json={
                    "_type": "location",
                    "lat": LAT + 0.003,
                    "lon": LON,
                    "tst": second,
                    "acc": 10,
                    "vel": 36,
                    "cog": 270,
                    "alt": 910,
                    "batt": 77,
                    "bs": 1,
                    "conn": "m",
                    "t": "u",
                    "tid": "ot",
                    "topic": "owntracks/http/ot",
                    "created_at": second,
                },
            ),
            # Our own format, a batch of one, with a bearer token.
            "c-native": await client.post(
                "/v1/pings",
                headers=bearer(tokens["c-native"]),
                json=[{"lat": LAT + 0.004, "lon": LON, "ts": ms, "speed": 3.5, "vehicle": "bike"}],
            ),
            # GPSLogger's custom URL with the template of docs/ingest.md (Basic; %TIME is whole seconds, UTC).
            "c-gpslogger": await client.post(
                "/v1/pings",
                headers={**basic("c-gpslogger", tokens["c-gpslogger"]), "Content-Type": "application/json"},
                content=(
                    f'{{"lat":{LAT + 0.005},"lon":{LON},"ts":"{iso(second * 1000)}","speed":2.5,'
                    '"heading":45.0,"accuracy":8.0}'
                ),
            ),
        }
    for courier, answer in answers.items():
        assert answer.status_code == 200, (courier, answer.text)
    assert answers["c-owntracks"].json() == []
    assert answers["c-native"].json() == {"produced": 1}

    totals = await validate_until_idle(settings, idle_s=1.0)
    assert totals.get("accepted") == 6, totals
    expected = {  # courier: (lat, ts, speed in m/s)
        "c-traccar-old": (LAT, second * 1000, 10 * 1852 / 3600),
        "c-osmand": (LAT + 0.001, ms, 2 * 1852 / 3600),
        "c-traccar9": (LAT + 0.002, ms, 4.2),
        "c-owntracks": (LAT + 0.003, second * 1000, 10.0),
        "c-native": (LAT + 0.004, ms, 3.5),
        "c-gpslogger": (LAT + 0.005, second * 1000, 2.5),
    }
    for courier, (lat, ts, speed) in expected.items():
        stored = await position(store, courier)
        assert (stored["id"], stored["lon"], stored["ts"]) == (courier, LON, ts), stored
        assert stored["lat"] == pytest.approx(lat) and stored["speed"] == pytest.approx(speed), stored
    # The app's own fields travel in "app" and never as a credential.
    records = await read_topic(settings, settings.location_topic, expect=6)
    by_courier = {json.loads(r.value or b"")["partner_id"]: r for r in records}
    assert header(by_courier["c-owntracks"], c.H_INGEST_PROTOCOL) == "owntracks"
    assert json.loads(by_courier["c-traccar-old"].value or b"")["app"]["batt"] == 81.0
    for r in records:
        assert not any(token.encode() in (r.value or b"") for token in tokens.values())
