"""``tracker orders``: bad flags get one line and exit code 2, before anything is reached."""

from __future__ import annotations

import pytest

from tracker.cli import main


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["orders"], "the following arguments are required: ACTION"),
        (["orders", "create", "o1", "--dropoff", "1,2"], "the following arguments are required: --courier"),
        (["orders", "create", "o1", "--courier", "c", "--dropoff", "1"], "expected LAT,LON"),
        (["orders", "create", "o1", "--courier", "c", "--dropoff", "91,2"], "within ±90,±180"),
        (["orders", "create", "o1", "--courier", "c", "--dropoff", "1,2", "--pickup", "x,y"], "expected LAT,LON"),
        (["orders", "create", "o1", "--courier", "c", "--dropoff", "1,2", "--ttl", "5"], "at least 60"),
        (["orders", "create", "o1", "--courier", "c", "--dropoff", "1,2", "--ttl", "1h"], "whole seconds"),
        (["orders", "create", "x" * 65, "--courier", "c", "--dropoff", "1,2"], "ids are 1-64 printable"),
        (["orders", "revoke"], "the following arguments are required: ORDER_ID"),
        (["orders", "deliver", "o1", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_get_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_no_redis_and_no_secret_are_one_line_each(capsys, monkeypatch):
    for name in ("REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "TRACKER_TRACKING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["orders", "ls"]) == 2
    assert "REDIS_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    assert main(["orders", "create", "o1", "--courier", "c", "--dropoff", "1,2"]) == 2
    err = capsys.readouterr().err
    assert "TRACKER_TRACKING_SECRET is not set" in err and err.count("\n") == 1
