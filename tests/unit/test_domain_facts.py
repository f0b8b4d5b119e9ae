"""Each domain fact is defined once and the places that need it derive from, or are checked against, that
one definition: the reject codes (models.Reason), the vehicles and their default speed limits
(models.Vehicle, DEFAULT_SPEED_LIMITS), and the settings' declarations."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import cast

import msgspec
import pytest
from starlette.requests import Request

from fuzz import corpus
from simulator import fleet
from simulator.faults import _VARIANTS, FaultKind
from tracker import settings as settings_module
from tracker.gateway import api_config
from tracker.models import DEFAULT_SPEED_LIMITS, UNKNOWN_VEHICLE_SPEED_LIMIT, VEHICLES, Ping, Reason
from tracker.settings import Settings, SettingsError

# -- reject codes ------------------------------------------------------------------------------------------


def test_every_fault_kind_names_a_reason():
    for kind in FaultKind:
        assert kind.value in {reason.value for reason in Reason}, kind
        assert kind.reason.value == kind.value


def test_every_reason_a_ping_can_earn_has_a_fault_kind_that_makes_it():
    # processing_failed is the validator failing (Redis, a bug, a crash loop), not something a ping can carry.
    wanted = set(Reason) - {Reason.PROCESSING_FAILED}
    assert {kind.reason for kind in FaultKind} == wanted
    assert set(_VARIANTS) == set(FaultKind)
    assert all(len(_VARIANTS[kind]) >= 1 for kind in FaultKind)


def test_the_review_page_gets_the_reasons_from_api_config():
    gateway = SimpleNamespace(settings=Settings(tile_url="https://tile.example/{z}/{x}/{y}.png", tick_ms=150))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(gateway=gateway)))
    body = json.loads(bytes(asyncio.run(api_config(cast(Request, request))).body))
    assert body == {
        "tile_url": "https://tile.example/{z}/{x}/{y}.png",
        "basemap_url": None,
        "tick_ms": 150,
        "reasons": [reason.value for reason in Reason],
        "viewer_token_required": False,
        "ws_subprotocol": "tracker.v1",
        "ws_token_refused": "viewer token required",
    }


# -- vehicles and speed limits -----------------------------------------------------------------------------


def test_vehicles_come_from_the_ping_model():
    assert VEHICLES == ("walk", "bike", "scooter", "car")
    assert set(DEFAULT_SPEED_LIMITS) == set(VEHICLES)
    decode = msgspec.json.Decoder(Ping).decode
    for vehicle in VEHICLES:
        assert decode(f'{{"partner_id":"c","lat":1,"lon":1,"ts":1,"vehicle":"{vehicle}"}}'.encode()).vehicle == vehicle
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"partner_id":"c","lat":1,"lon":1,"ts":1,"vehicle":"truck"}')


def test_the_default_speed_limits_are_the_settings_defaults():
    settings = Settings()
    assert settings.speed_limits == dict(DEFAULT_SPEED_LIMITS)
    assert settings.default_speed_limit == UNKNOWN_VEHICLE_SPEED_LIMIT
    assert settings.speed_limit_for(None) == settings.speed_limit_for("plane") == UNKNOWN_VEHICLE_SPEED_LIMIT
    assert Settings.from_env({"TRACKER_SPEED_LIMITS": "walk=3"}).speed_limits == {**DEFAULT_SPEED_LIMITS, "walk": 3.0}


def test_the_simulator_and_the_fuzz_corpus_use_the_same_vehicles():
    assert tuple(vehicle for vehicle, _ in fleet.VEHICLE_MIX) == VEHICLES
    assert set(fleet.CRUISE_MPS) == set(VEHICLES)
    assert tuple(corpus.VEHICLES) == VEHICLES


# -- settings: each one declared once ----------------------------------------------------------------------


def test_every_setting_has_one_declaration_with_its_own_variable():
    fields = [field.name for field in msgspec.structs.fields(Settings)]
    specs = settings_module._SPECS
    assert [spec.field for spec in specs] == fields
    assert len({spec.env for spec in specs}) == len(specs) == len(settings_module.ENV_NAMES)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRACKER_MAX_BATCH": "0"}, "max_batch must be at least 1, got 0"),
        ({"TRACKER_COURIER_TTL_S": "-1"}, "courier_ttl_s must not be negative, got -1.0"),
        ({"TRACKER_SHUTDOWN_TIMEOUT_S": "nan"}, "shutdown_timeout_s must be a finite number, got nan"),
        ({"TRACKER_WS_SEND_TIMEOUT_S": "9" * 400}, "ws_send_timeout_s must be a finite number, got inf"),
        ({"TRACKER_HTTP_PORT": "65536"}, "http_port must be 0-65535, got 65536"),
        ({"TRACKER_EMBEDDED_BROKER": "x"}, "embedded_broker must be one of kafka, tansu, got 'x'"),
        ({"TRACKER_SPEED_LIMITS": "car=0"}, "speed limit for 'car' must be positive, got 0.0"),
        ({"TRACKER_TEST_POISON": "boom"}, "test_poison must be raise:TEXT or exit:TEXT, got 'boom'"),
        ({"TRACKER_SERVICE_AREA_FILE": "/no/such/file"}, "service_area_file '/no/such/file' does not exist"),
        ({"TRACKER_TICK_MS": "x"}, "TRACKER_TICK_MS='x': invalid literal for int() with base 10: 'x'"),
        ({"KAFKA_IDEMPOTENCE": "maybe"}, "KAFKA_IDEMPOTENCE='maybe': expected true/false"),
    ],
)
def test_a_bad_value_is_one_line_naming_it(env, message):
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(env)
    assert str(raised.value) == message


def test_to_env_and_from_env_round_trip():
    changed = Settings(
        kafka_bootstrap_servers="k:9092",
        kafka_idempotence=False,
        speed_limits={**DEFAULT_SPEED_LIMITS, "walk": 3.5},
        kafka_fetch_max_wait_ms=25,
        http_port=0,
        validator_id="v-1",
        max_age_s=90.5,
    )
    env = changed.to_env()
    assert env["KAFKA_IDEMPOTENCE"] == "false" and env["TRACKER_SPEED_LIMITS"] == "walk=3.5,bike=15,scooter=35,car=45"
    assert "TRACKER_ADMIN_TOKEN" not in env  # None is left unset
    assert Settings.from_env(env).to_env() == env
