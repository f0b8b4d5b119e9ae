"""The command line as a user meets it: one-line errors with exit code 2, and the dry run."""

from __future__ import annotations

import json
import logging

import pytest

from tests.helpers import run_tracker as tracker
from tracker.cli import _OncePerInterval, _warn_if_open_gateway


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["validate", "--bogus"], {}, "unrecognized arguments: --bogus"),
        (["validate"], {}, "KAFKA_BOOTSTRAP_SERVERS is not set"),
        (["validate", "--dry-run", "/nonexistent/pings.txt"], {}, "--dry-run /nonexistent/pings.txt"),
        (["validate", "--now", "soon"], {}, "--now: expected a whole number"),
        (["validate", "--dry-run", "-"], {"TRACKER_MAX_AGE_S": "abc"}, "TRACKER_MAX_AGE_S='abc'"),
        (["validate", "--dry-run", "-"], {"TRACKER_SPEED_LIMITS": "plane=300"}, "TRACKER_SPEED_LIMITS='plane=300'"),
        (["simulate", "--bad-rate", "2"], {}, "--bad-rate"),
        (["dlq", "ls", "--since", "yesterday"], {}, "--since"),
        (["gateway", "--port", "http"], {}, "--port"),
        (
            ["up"],
            {"TRACKER_EMBEDDED_BROKER": "redpanda"},
            "embedded_broker must be one of kafka, tansu, got 'redpanda'",
        ),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(args, env, expected):
    result = tracker(*args, env=env, stdin=b"")
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert expected in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr


def test_dry_run_prints_one_verdict_per_line():
    payloads = (
        b"\n".join(
            [
                b'{"partner_id":"c1","lat":12.97,"lon":77.59,"ts":1795000000000}',
                b'{"partner_id":"c1","lat":12.97,"lon":77.59,"ts":1795000000000}',
                b'{"partner_id":"c1","lat":95,"lon":77.59,"ts":1795000001000}',
                b"not json",
            ]
        )
        + b"\n"
    )
    result = tracker("validate", "--dry-run", "-", "--now", "1795000002000", stdin=payloads)
    assert result.returncode == 0, result.stderr.decode()
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [row["verdict"] for row in rows] == ["accepted", "duplicate", "rejected", "rejected"]
    assert [row.get("reason") for row in rows[2:]] == ["invalid_coordinates", "malformed_payload"]


def test_repeated_broker_errors_are_rate_limited():
    limiter = _OncePerInterval(interval_s=60)

    def record(name: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, __file__, 1, "Unable connect to node %s", (1,), None)

    assert [limiter.filter(record("aiokafka.conn")) for _ in range(4)] == [True, False, False, False]
    assert all(limiter.filter(record("tracker.validator")) for _ in range(3))


@pytest.mark.parametrize(
    ("host", "viewer_token", "warned"),
    [
        ("0.0.0.0", None, True),
        ("0.0.0.0", "", True),
        ("::", None, True),
        ("0.0.0.0", "s3cret", False),
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
    ],
)
def test_an_open_gateway_without_a_viewer_token_is_warned_about(capsys, host, viewer_token, warned):
    _warn_if_open_gateway(host, viewer_token)
    out, err = capsys.readouterr()
    assert out == ""
    if warned:
        assert err == (
            f"tracker gateway: WARNING: listening on {host} with no TRACKER_VIEWER_TOKEN: anyone who can reach it "
            "can watch every courier (README, Access)\n"
        )
    else:
        assert err == ""
