"""``tracker dlq ls/show`` print a hostile dead letter without letting its escape sequences reach the
operator's terminal, and ``--json`` keeps its exact text; a discard from the CLI names the login."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest

from tracker import constants as c
from tracker.dlq.cli import add_arguments, run
from tracker.dlq.entry import entry_from_record
from tracker.dlq.index import DlqIndex
from tracker.models import Record
from tracker.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

TERMINAL_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")
PAYLOAD = '{"partner_id": "courier-e", "lat": 95, "note": "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\rok \u202egpj"}'


def hostile_entry():
    headers = (
        (c.H_REASON, b"invalid_coordinates"),
        (c.H_DETAIL, b"lat 95 \x1b[8mhidden\x1b[0m"),
        (c.H_ORIGINAL_TOPIC, b"location-updates"),
        ("x-\x1b[31mred", "\x1b]0;window title\x07 \x9b1m".encode()),
    )
    record = Record("location-updates.DLQ", 0, 1, 1_795_000_000_000, b"key\x1b[5m", PAYLOAD.encode(), headers)
    return entry_from_record(record, replay_secret=None, payload_max_bytes=4096)


def dlq(settings, capsys, *argv: str) -> str:
    parser = argparse.ArgumentParser()
    add_arguments(parser, lambda action: None)
    assert run(parser.parse_args(argv), settings) == 0
    return capsys.readouterr().out


async def _seed(settings) -> None:
    async with Store(settings) as store:
        await DlqIndex(store).add([hostile_entry()])


def test_cli_output_escapes_what_a_dead_letter_holds(settings, capsys, monkeypatch):
    asyncio.run(_seed(settings))
    monkeypatch.setenv("LOGNAME", "ops\x1b[41m")
    dlq(settings, capsys, "discard", "0:1")
    shown = {
        "ls": dlq(settings, capsys, "ls"),
        "show": dlq(settings, capsys, "show", "0:1"),
        "ls --json": dlq(settings, capsys, "ls", "--json"),
        "show --json": dlq(settings, capsys, "show", "0:1", "--json"),
    }
    for command, output in shown.items():
        for control in TERMINAL_CONTROLS:
            assert control not in output, (command, control)
    assert "hidden\\x1b[0m" in shown["ls"]
    assert "x-\\x1b[31mred = \\x1b]0;window title\\x07 \\x9b1m" in shown["show"]
    assert "key: 'key\\x1b[5m'" in shown["show"]
    assert "(discarded by cli@ops\\x1b[41m)" in shown["show"]
    assert "\\x1b[2J\\rok \\u202egpj" in shown["show"]
    detail = json.loads(shown["show --json"])
    assert detail["payload_text"] == PAYLOAD and detail["status_by"] == "cli@ops\\x1b[41m"
    assert json.loads(shown["ls --json"])["items"][0]["detail"] == "lat 95 \x1b[8mhidden\x1b[0m"
