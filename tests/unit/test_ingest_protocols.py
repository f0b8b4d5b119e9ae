"""The phone apps' requests, as the apps send them, become our pings: coordinates, ts in ms, speed in m/s, the
app's other fields in "app" (the ones we do not read in "app.extras", never a credential); what is not a fix is
None; malformed values reach the validator, which refuses them with its reason; and no input makes a parser raise.

The requests are the real apps' shapes: Traccar's own decoder tests (traccar OsmAndProtocolDecoderTest.java),
the query the old Traccar Client for Android built (ProtocolFormatter), the form Traccar Client 10 posts
(traccar-client-sdk HttpUploader.kt), the JSON template Traccar Client 9 posts (traccar-client
lib/preferences.dart), OwnTracks' location message (owntracks/booklet
docs/tech/json.md) and GPSLogger's custom URL with its placeholders filled in (gpslogger
CustomUrlManager.java).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker.ingest.protocols import APP_EXTRAS_MAX, Fix, native, osmand, owntracks, traccar_json
from tracker.ingest.records import Protocol, record
from tracker.models import Ping, Reason, Verdict
from tracker.rules import Limits, decode_json, parse
from tracker.settings import Settings

LIMITS = Limits.from_settings(Settings())
EXAMPLES = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def query(text: str) -> dict[str, str]:
    """A query string or form body decoded as a web framework does ("+" is a space, %XX decoded)."""
    return dict(parse_qsl(text, keep_blank_values=True))


def ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def verdict(fix: Fix) -> Ping | Verdict:
    """What the validator makes of the fix, once the service has set the courier."""
    return parse(msgspec.json.encode({"partner_id": "courier-0001", **fix.ping}), LIMITS)


# -- OsmAnd: query string or form ------------------------------------------------------------------------------


def test_the_old_traccar_client_query_becomes_a_ping_in_our_units():
    # ProtocolFormatter: id, timestamp (s), lat, lon, speed (knots), bearing, altitude, accuracy, batt, charge, mock
    fix = osmand(
        query(
            "id=courier-0001&timestamp=1795000000&lat=12.9716&lon=77.5946&speed=19.4384&bearing=271.5"
            "&altitude=920.0&accuracy=12.0&batt=87.0&charge=true&mock=true"
        )
    )
    assert fix.device_id == "courier-0001"
    assert fix.ping["speed"] == pytest.approx(10.0, abs=1e-4)  # 19.4384 knots
    assert {k: v for k, v in fix.ping.items() if k != "speed"} == {
        "lat": 12.9716,
        "lon": 77.5946,
        "ts": 1_795_000_000_000,
        "heading": 271.5,
        "accuracy": 12.0,
        "app": {"altitude": 920.0, "batt": 87.0, "charge": True, "mock": True},
    }
    ping = verdict(fix)
    assert isinstance(ping, Ping)
    assert (ping.lat, ping.lon, ping.ts_ms, ping.heading, ping.accuracy) == (12.9716, 77.5946, 1795000000000, 271.5, 12)


def test_the_traccar_client_10_form_becomes_a_ping():
    # traccar-client-sdk HttpUploader.kt: an urlencoded POST form; speed in knots rounded to 2 decimals,
    # timestamp in seconds, batt an integer percent, and battery fields Traccar keeps as attributes.
    fix = osmand(
        query(
            "id=courier-0003&lat=12.9716&lon=77.5946&timestamp=1795000000&accuracy=9.5&altitude=918.4&speed=11.66"
            "&bearing=45.0&batt=85&charge=false&battery_health=good&battery_voltage=4100&battery_temp=31.5"
        )
    )
    assert fix.device_id == "courier-0003"
    assert fix.ping["speed"] == pytest.approx(6.0, abs=0.01)
    assert {k: v for k, v in fix.ping.items() if k != "speed"} == {
        "lat": 12.9716,
        "lon": 77.5946,
        "ts": 1_795_000_000_000,
        "heading": 45.0,
        "accuracy": 9.5,
        "app": {
            "altitude": 918.4,
            "batt": 85.0,
            "charge": False,
            # Parameters we do not read are kept as Traccar keeps them (attributes): numbers as numbers.
            "extras": {"battery_health": "good", "battery_voltage": 4100.0, "battery_temp": 31.5},
        },
    }


@pytest.mark.parametrize(
    ("text", "ts"),
    [
        ("id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z", ms("2016-01-27T18:55:47+00:00")),
        ("id=902064&lat=42.06288&lon=-88.23412&timestamp=1442068686579", 1_442_068_686_579),
        ("id=123456&timestamp=1377177267&lat=60.0&lon=30.0", 1_377_177_267_000),
        # Traccar's boundary: below Integer.MAX_VALUE is seconds, from it on milliseconds.
        ("id=1&lat=60&lon=30&timestamp=2147483646", 2_147_483_646_000),
        ("id=1&lat=60&lon=30&timestamp=2147483647", 2_147_483_647),
        ("id=1&lat=60&lon=30&timestamp=1795000000.25", 1_795_000_000_250),
        # An offset whose "+" became a space in the query string is read as the "+" it was.
        ("id=1&lat=60&lon=30&timestamp=2026-11-18T10:00:00+05:30", ms("2026-11-18T10:00:00+05:30")),
        ("id=1&lat=60&lon=30&timestamp=2026-11-18T10:00:00%2B05:30", ms("2026-11-18T10:00:00+05:30")),
        ("id=1&lat=60&lon=30&timestamp=2026-11-18T10:00:00.123-03:00", ms("2026-11-18T10:00:00.123-03:00")),
    ],
)
def test_osmand_timestamps_become_epoch_ms(text, ts):
    assert osmand(query(text)).ping["ts"] == ts


def test_osmand_takes_location_deviceid_and_heading_as_traccar_does():
    fix = osmand(query("deviceid=123456&timestamp=1377177267&location=60.0,30.0&heading=0.0&hdop=0.0&vacc=0&hacc=0"))
    assert fix == Fix(
        "123456",
        {
            "lat": 60.0,
            "lon": 30.0,
            "ts": 1_377_177_267_000,
            "heading": 0.0,
            "app": {"hdop": 0.0, "extras": {"vacc": 0.0, "hacc": 0.0}},
        },
    )


def test_osmand_accuracy_zero_and_negative_measures_mean_unknown():
    fix = osmand(query("id=1&lat=60&lon=30&timestamp=1377177267&accuracy=0&speed=-1&bearing=-1"))
    assert fix.ping == {"lat": 60.0, "lon": 30.0, "ts": 1_377_177_267_000}


def test_osmand_keeps_unknown_parameters_in_app_extras_but_never_a_credential():
    fix = osmand(
        query(
            "id=1&lat=60&lon=30&timestamp=1377177267&token=s3cret&ignition=true&rpm=933&password=x&fuel=half"
            "&accessToken=t0k&API_KEY=k3y&Authorization=Basic+eA%3D%3D&deviceid=2&note=" + "n" * 65
        )
    )
    encoded = msgspec.json.encode(fix.ping).decode()
    for secret in ("s3cret", "t0k", "k3y", "eA=="):
        assert secret not in encoded
    assert fix.ping == {
        "lat": 60.0,
        "lon": 30.0,
        "ts": 1_377_177_267_000,
        "app": {"extras": {"ignition": True, "rpm": 933.0, "fuel": "half"}},  # a text over 64 characters: left out
    }
    assert isinstance(verdict(fix), Ping)  # the validator ignores "app"


def test_osmand_extras_are_bounded():
    many = "&".join(f"p{index}={index}" for index in range(40))
    extras = osmand(query(f"id=1&lat=60&lon=30&timestamp=1377177267&{'x' * 65}=long-name&{many}")).ping["app"]["extras"]
    assert extras == {f"p{index}": float(index) for index in range(APP_EXTRAS_MAX)}


def test_gpslogger_custom_url_as_the_readme_sets_it():
    # The README's template with GPSLogger's placeholders filled in the way it fills them (String.valueOf of
    # Android's Location: doubles and floats; %TIMESTAMP is epoch seconds; %SPD is m/s, sent as speed_mps).
    fix = osmand(
        query(
            "id=courier-0001&lat=12.971598&lon=77.594562&timestamp=1795000000&accuracy=4.8&bearing=87.3"
            "&altitude=921.0999755859375&speed_mps=6.25&batt=64.0"
        )
    )
    assert fix == Fix(
        "courier-0001",
        {
            "lat": 12.971598,
            "lon": 77.594562,
            "ts": 1_795_000_000_000,
            "speed": 6.25,
            "heading": 87.3,
            "accuracy": 4.8,
            "app": {"altitude": 921.0999755859375, "batt": 64.0},
        },
    )


def test_osmand_online_tracking_as_the_readme_sets_it():
    # OsmAnd fills {0} lat, {1} lon (floats), {2} the time in ms, {3} the accuracy (its "hdop" is
    # Location.getAccuracy()), {4} altitude, {5} speed in m/s, {6} bearing (LiveMonitoringHelper.java).
    fix = osmand(
        query(
            "id=courier-0002&lat=12.9716&lon=77.5946&timestamp=1795000000123&accuracy=7.5&altitude=920.0"
            "&speed_mps=4.2&bearing=181.0"
        )
    )
    assert fix.ping == {
        "lat": 12.9716,
        "lon": 77.5946,
        "ts": 1_795_000_000_123,
        "speed": 4.2,
        "heading": 181.0,
        "accuracy": 7.5,
        "app": {"altitude": 920.0},
    }


def test_speed_in_knots_wins_over_speed_mps():
    assert osmand(query("speed=1.943844&speed_mps=9")).ping["speed"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("text", "reason", "detail"),
    [
        ("lat=abc&lon=30&timestamp=1795000000", Reason.INVALID_COORDINATES, "lat must be a number, got str 'abc'"),
        ("lat=60&timestamp=1795000000", Reason.INVALID_COORDINATES, "lon is absent or null"),
        ("location=60.0&timestamp=1795000000", Reason.INVALID_COORDINATES, "lon is absent or null"),
        ("lat=nan&lon=30&timestamp=1795000000", Reason.INVALID_COORDINATES, "lat must be a number, got str 'nan'"),
        ("lat=1e999&lon=30&timestamp=1795000000", Reason.INVALID_COORDINATES, "got str '1e999'"),
        ("lat=" + "9" * 400 + "&lon=30&timestamp=1795000000", Reason.INVALID_COORDINATES, "got str '999"),
        ("lat=60&lon=30&timestamp=yesterday", Reason.INVALID_TIMESTAMP, "'yesterday' is not epoch milliseconds"),
        ("lat=60&lon=30&timestamp=2014-06-04+09%3A10%3A11", Reason.INVALID_TIMESTAMP, "has no UTC offset"),
        ("lat=60&lon=30", Reason.INVALID_TIMESTAMP, "ts is absent or null"),
        ("lat=60&lon=30&timestamp=" + "1" * 400, Reason.INVALID_TIMESTAMP, "(cut, 400 characters)"),
        ("lat=12.97&lon=77.59&timestamp=1795000000&speed=fast", Reason.MALFORMED_PAYLOAD, "speed must be a number"),
        ("lat=12.97&lon=77.59&timestamp=1795000000&bearing=400", Reason.MALFORMED_PAYLOAD, "heading 400.0 is outside"),
        ("lat=12.97&lon=77.59&timestamp=1795000000&vehicle=truck", Reason.MALFORMED_PAYLOAD, "vehicle must be one of"),
    ],
)
def test_malformed_osmand_values_reach_the_validator_as_they_came(text, reason, detail):
    result = verdict(osmand(query(text)))
    assert isinstance(result, Verdict)
    assert result.reason is reason
    assert detail in result.detail


@pytest.mark.parametrize("text", ["١٢", "1_000", " 5", "0x1p3", "Infinity", "-inf", "1.5d", "", "+", "."])
def test_only_plain_decimal_text_is_converted(text):
    assert osmand({"lat": text}).ping["lat"] == text


# -- Traccar Client 9: JSON -------------------------------------------------------------------------------------

# The bodies of traccar's OsmAndProtocolDecoderTest.testDecodeJson (Android, Android with extras, iOS).
ANDROID: dict[str, Any] = {
    "location": {
        "timestamp": "2025-06-15T13:45:12.862Z",
        "coords": {
            "latitude": 37.4219983,
            "longitude": -122.084,
            "accuracy": 5,
            "speed": 0,
            "heading": -1,
            "altitude": 5,
        },
        "is_moving": False,
        "odometer": 0,
        "event": "motionchange",
        "battery": {"level": 1, "is_charging": False},
        "activity": {"type": "still"},
        "extras": {},
        "_": "&id=48241179&lat=37.4219983&lon=-122.084&timestamp=2025-06-15T13:45:12.862Z&",
    },
    "device_id": "48241179",
}
IOS = {
    "location": {
        "extras": {},
        "mock": True,
        "coords": {
            "speed_accuracy": -1,
            "speed": -1,
            "longitude": -122.406417,
            "ellipsoidal_altitude": 0,
            "floor": None,
            "heading_accuracy": -1,
            "latitude": 37.785834000000001,
            "accuracy": 5,
            "altitude_accuracy": -1,
            "altitude": 0,
            "heading": -1,
        },
        "is_moving": False,
        "age": 188,
        "odometer": 0,
        "uuid": "2FB04C65-99CF-42AB-8DD3-EBCB4B108BF8",
        "event": "motionchange",
        "battery": {"level": -1, "is_charging": False},
        "activity": {"type": "unknown", "confidence": 100},
        "timestamp": "2025-05-09T04:11:30.579Z",
    },
    "device_id": "658765",
}
MOVING = {
    "location": {
        "event": "motionchange",
        "is_moving": True,
        "uuid": "0e9a2473-a9a7-4c00-997b-fb97d2154e75",
        "timestamp": "2021-07-21T08:06:34.444Z",
        "odometer": 1520.4,
        "coords": {
            "latitude": -6.1148096,
            "longitude": 106.6837015,
            "accuracy": 3.8,
            "speed": 18.67,
            "speed_accuracy": 0.26,
            "heading": 63,
            "heading_accuracy": 0.28,
            "altitude": 35.7,
            "altitude_accuracy": 3.8,
        },
        "activity": {"type": "in_vehicle", "confidence": 100},
        "battery": {"is_charging": True, "level": 0.79},
        "extras": {"heartbeat": True, "device_string_test": "long_device_id", "nested": {"no": "kept"}},
    },
    "device_id": "8737767034",
}


def test_traccar_client_json_from_android():
    assert traccar_json(ANDROID) == Fix(
        "48241179",
        {
            "lat": 37.4219983,
            "lon": -122.084,
            "speed": 0,
            "accuracy": 5,
            "ts": ms("2025-06-15T13:45:12.862+00:00"),
            "app": {
                "altitude": 5,
                "is_moving": False,
                "odometer": 0,
                "event": "motionchange",
                "batt": 100,
                "charge": False,
                "activity": "still",
            },
        },
    )


def test_traccar_client_json_from_ios_leaves_out_what_it_calls_unknown():
    fix = traccar_json(IOS)
    assert fix.device_id == "658765"
    assert fix.ping == {
        "lat": 37.785834000000001,
        "lon": -122.406417,
        "accuracy": 5,
        "ts": ms("2025-05-09T04:11:30.579+00:00"),
        "app": {"altitude": 0, "is_moving": False, "odometer": 0, "event": "motionchange", "mock": True,
                "charge": False, "activity": "unknown"},
    }  # fmt: skip


def test_traccar_client_json_speed_is_already_metres_per_second_and_scalar_extras_are_kept():
    fix = traccar_json(MOVING)
    assert (fix.ping["speed"], fix.ping["heading"], fix.ping["accuracy"]) == (18.67, 63, 3.8)
    assert fix.ping["app"]["batt"] == 79
    assert fix.ping["app"]["charge"] is True
    assert fix.ping["app"]["extras"] == {"heartbeat": True, "device_string_test": "long_device_id"}
    ping = verdict(fix)
    assert isinstance(ping, Ping)
    assert (ping.ts_ms, ping.speed) == (ms("2021-07-21T08:06:34.444+00:00"), 18.67)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"device_id": "1"}, Reason.INVALID_COORDINATES),
        ({"location": [ANDROID["location"]], "device_id": "1"}, Reason.INVALID_COORDINATES),
        ({"location": {**ANDROID["location"], "timestamp": "2025-06-15T13:45:12"}}, Reason.INVALID_TIMESTAMP),
        ({"location": {"coords": {"latitude": "37.4", "longitude": 1}}}, Reason.INVALID_COORDINATES),
    ],
)  # fmt: skip
def test_a_traccar_json_body_of_another_shape_is_dead_lettered_with_a_reason(doc, reason):
    result = verdict(traccar_json(doc))
    assert isinstance(result, Verdict)
    assert result.reason is reason


# -- OwnTracks --------------------------------------------------------------------------------------------------

LOCATION = {
    "_type": "location",
    "tid": "n5",
    "acc": 17,
    "alt": 921,
    "batt": 80,
    "bs": 1,
    "conn": "m",
    "lat": 12.9716,
    "lon": 77.5946,
    "t": "u",
    "tst": 1795000000,
    "vel": 36,
    "cog": 270,
    "created_at": 1795000002,
    "topic": "owntracks/courier-0001/phone",
    "inregions": ["depot"],
}


def test_an_owntracks_location_becomes_a_ping_in_our_units():
    fix = owntracks(LOCATION)
    assert fix is not None
    assert fix.device_id is None  # the courier is the Basic user or X-Limit-U
    assert fix.ping["speed"] == pytest.approx(10.0)  # 36 km/h
    assert {k: v for k, v in fix.ping.items() if k != "speed"} == {
        "lat": 12.9716,
        "lon": 77.5946,
        "ts": 1_795_000_000_000,
        "heading": 270,
        "accuracy": 17,
        "app": {
            "altitude": 921,
            "batt": 80,
            "bs": 1,
            "tid": "n5",
            "trigger": "u",
            "created_at": 1795000002,
            "conn": "m",
            "extras": {"topic": "owntracks/courier-0001/phone"},  # inregions, an array, is left out
        },
    }


def test_owntracks_keeps_other_scalar_fields_in_app_extras_but_never_a_credential():
    fix = owntracks(
        {**LOCATION, "m": 2, "SSID": "depot-wifi", "p": 91.2, "password": "s3cret", "X-Auth": "s3cret", "_id": "ab"}
    )
    assert fix is not None
    assert "s3cret" not in msgspec.json.encode(fix.ping).decode()
    assert fix.ping["app"]["extras"] == {
        "topic": "owntracks/courier-0001/phone",
        "m": 2,
        "SSID": "depot-wifi",
        "p": 91.2,
        "_id": "ab",
    }


def test_owntracks_leaves_out_zero_fields_and_the_ping_is_still_good():
    # The app leaves out acc, alt, cog, vac and vel when they are 0.
    fix = owntracks({"_type": "location", "lat": 12.9716, "lon": 77.5946, "tst": 1795000000, "tid": "JJ"})
    assert fix == Fix(None, {"lat": 12.9716, "lon": 77.5946, "ts": 1_795_000_000_000, "app": {"tid": "JJ"}})
    assert isinstance(verdict(fix), Ping)


@pytest.mark.parametrize(
    "doc",
    [
        {"_type": "transition", "event": "enter", "desc": "depot", "lat": 12.9, "lon": 77.5, "tst": 1795000000},
        {"_type": "waypoint", "desc": "depot", "lat": 12.9, "lon": 77.5, "rad": 50, "tst": 1795000000},
        {"_type": "lwt", "tst": 1795000000},
        {"_type": "card", "name": "Courier One"},
        {"_type": "status", "android": {"hib": 0}},
        {"_type": "encrypted", "data": "bm90IHJlYWxseQ=="},
        {"_type": "steps", "steps": 10},
        {"lat": 12.9, "lon": 77.5, "tst": 1795000000},
        {"_type": ["location"]},
        [LOCATION],
        "location",
        None,
        42,
    ],
)
def test_what_owntracks_posts_besides_locations_is_not_a_fix(doc):
    assert owntracks(doc) is None


def test_owntracks_values_of_the_wrong_kind_reach_the_validator():
    fix = owntracks({**LOCATION, "tst": "1795000000"})
    assert fix is not None
    result = verdict(fix)
    assert isinstance(result, Verdict)
    assert result.reason is Reason.INVALID_TIMESTAMP
    huge = owntracks({**LOCATION, "vel": 10**400, "tst": 10**30})
    assert huge is not None
    assert (huge.ping["speed"], huge.ping["ts"]) == (10**400, 10**30)


# -- native ----------------------------------------------------------------------------------------------------


def test_native_takes_one_ping_or_an_array_untouched():
    one = {"lat": 12.97, "lon": 77.59, "ts": 1795000000000, "speed": 3.5, "custom": {"x": 1}}
    assert native(one, 100) == [one]
    assert native([one, one], 100) == [one, one]
    assert native([], 100) == []


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([{}] * 101, "at most 100 pings per request, got 101"),
        ([{}, "x"], "item 1 of the array is a string, not a ping object"),
        ([{}, [{}]], "item 1 of the array is an array, not a ping object"),
        ("lat=1", "the body must be a ping object or an array of ping objects, got a string"),
        (12, "got a number"),
        (None, "got null"),
        (True, "got a boolean"),
    ],
)
def test_native_refuses_other_bodies_with_a_reason(doc, why):
    result = native(doc, 100)
    assert isinstance(result, str)
    assert result.endswith(why)


# -- hostile input never raises --------------------------------------------------------------------------------

NAMES: tuple[str, ...] = (
    "id",
    "deviceid",
    "lat",
    "lon",
    "location",
    "timestamp",
    "speed",
    "bearing",
    "heading",
    "accuracy",
)
NAMES += (
    "altitude",
    "hdop",
    "batt",
    "mock",
    "charge",
    "alarm",
    "vehicle",
    "order_id",
    "_type",
    "tst",
    "vel",
    "speed_mps",
)
NAMES += ("cog", "acc", "alt", "t", "tid", "coords", "latitude", "longitude", "battery", "level", "extras")
texts = st.text(max_size=30) | st.sampled_from(["1e999", "nan", "-0", "9" * 400, "2147483647", "+05:30", "1,2,3"])
numbers = st.integers() | st.integers(-(10**400), 10**400) | st.floats(allow_nan=True, allow_infinity=True)
scalars = st.none() | st.booleans() | numbers | texts
keys = st.sampled_from(NAMES) | st.text(max_size=8)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6), max_leaves=20
)


def encodable(fix: Fix) -> None:
    """The service encodes the ping as JSON for the topic: it must always be encodable."""
    assert fix.device_id is None or isinstance(fix.device_id, str)
    assert "partner_id" not in fix.ping
    msgspec.json.encode(fix.ping)


@EXAMPLES
@given(st.dictionaries(keys, texts, max_size=12))
def test_no_query_makes_osmand_raise(params):
    encodable(osmand(params))


@EXAMPLES
@given(json_values)
def test_no_json_value_makes_a_json_parser_raise(doc):
    encodable(traccar_json(doc))
    encodable(traccar_json({"device_id": "1", "location": doc}))
    encodable(traccar_json({"location": {"coords": doc, "battery": doc, "extras": doc, "timestamp": doc}}))
    fix = owntracks(doc)
    if fix is not None:
        encodable(fix)
    located = owntracks(dict(doc, _type="location") if isinstance(doc, dict) else {"_type": "location", "tst": doc})
    assert located is not None
    encodable(located)
    result = native(doc, 3)
    assert isinstance(result, str) or all(isinstance(item, dict) for item in result)


@EXAMPLES
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6))
def test_converted_numbers_stay_finite(value):
    fix = osmand({"lat": repr(value), "speed": repr(abs(value)), "timestamp": repr(value)})
    for name in ("lat", "speed", "ts"):
        number = fix.ping.get(name)
        assert number is None or isinstance(number, str) or math.isfinite(number)


HOSTILE_EXTRAS: list[dict[str, object]] = [
    {"x": "9" * 400},
    {"x": "\ud800"},
    {"\ud800": "v"},
    {"x": "a\x00\x1b[31m\u202e"},
    {"x": "y" * (1 << 20)},
    {"x": None},
    {"x": [[[[[1]]]]]},
]


@pytest.mark.parametrize("extra", HOSTILE_EXTRAS)
def test_hostile_unknown_fields_give_a_fix_whose_record_the_validator_reads(extra):
    """Whatever an unknown field holds (400 digits, a lone surrogate, controls, 1 MiB, null, nesting), the
    fix is made and its record (tracker/ingest/records.py) is JSON the validator reads, within its limit."""
    limit = Settings().max_payload_bytes
    query_extra = {k: v for k, v in extra.items() if isinstance(v, str)}
    fixes = [
        (osmand({"id": "c1", "lat": "12.9", "lon": "77.6", "timestamp": "1764300000", **query_extra}), Protocol.OSMAND),
        (owntracks({"_type": "location", "lat": 12.9, "lon": 77.6, "tst": 1764300000, **extra}), Protocol.OWNTRACKS),
    ]
    for fix, protocol in fixes:
        assert isinstance(fix, Fix)
        made = record(fix.ping, "c1", protocol, limit)
        assert made.value is not None and len(made.value) <= limit
        decoded = decode_json(made.value, limit)
        assert isinstance(decoded, dict) and (decoded["lat"], decoded["lon"]) == (12.9, 77.6)
