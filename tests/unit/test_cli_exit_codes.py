"""``tracker``'s exit code 2 is for bad flags and settings only (README, Commands): a ValueError raised once a
command runs (a record's ``msgspec.DecodeError``, say) is a crash, exit code 1, as any other error is.

The validator is run in this process with its broker calls replaced: what it does once running is to raise.
"""

from __future__ import annotations

import logging

import msgspec
import pytest

from tracker import cli, signals


@pytest.fixture
def validator_without_a_broker(monkeypatch):
    """``tracker validate`` up to the point where it runs, with no broker and nothing changed in this process."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    monkeypatch.setattr(cli, "_check_partitions", lambda settings: None)
    monkeypatch.setattr(cli, "_setup_logging", lambda settings: None)
    monkeypatch.setattr(cli, "_freeze_startup_objects", lambda: None)


def raising(error: Exception):
    async def run_validator(*args, **kwargs):
        raise error

    return run_validator


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            msgspec.DecodeError("JSON is malformed: trailing characters"),
            "DecodeError: JSON is malformed: trailing characters",
        ),
        (ValueError("a value no flag gave"), "ValueError: a value no flag gave"),
        (RuntimeError("a bug"), "RuntimeError: a bug"),
    ],
)
def test_an_error_once_the_validator_runs_is_a_crash_not_a_bad_flag(
    validator_without_a_broker, monkeypatch, capsys, caplog, error, line
):
    monkeypatch.setattr("tracker.validator.run_validator", raising(error))
    installs = signals.installed()
    with caplog.at_level(logging.ERROR, logger="tracker"):
        code = cli.main(["validate"])
    assert signals.installed() == installs + 1  # it ran: its stop handlers were installed
    assert code == 1
    assert capsys.readouterr().err == f"tracker validate: {line}\n"
    assert [record.getMessage() for record in caplog.records] == ["the validator stopped"]  # with its traceback


def test_a_bad_service_area_file_before_it_runs_is_still_a_bad_setting(validator_without_a_broker, capsys, tmp_path):
    area = tmp_path / "area.geojson"
    area.write_text("{not json")
    assert cli.main(["validate", "--service-area", str(area)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tracker validate: service area file {str(area)!r}: ") and err.count("\n") == 1


def test_a_unicode_error_is_never_a_bad_flag(monkeypatch, capsys):
    def run_topics(args):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setitem(cli.COMMANDS, "topics", (*cli.COMMANDS["topics"][:2], run_topics))
    assert cli.main(["topics"]) == 1
    assert capsys.readouterr().err.startswith("tracker topics: UnicodeDecodeError: ")
