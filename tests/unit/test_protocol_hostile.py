"""Hostile WebSocket frames end in a close code, never an exception in the gateway."""

from __future__ import annotations

import pytest

from tracker import protocol


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type":"viewport","bbox":[' + "9" * 400 + ",12,78,13]}", 1008),
        ("[" * 2000 + "]" * 2000, 1003),
        ('{"type":"follow","partner_id":"\\ud800"}', 1003),
        ('{"type":"ping\\u0000"}', 1008),
        ("null", 1008),
        ("x" * (1024 * 1024), 1009),
    ],
)
def test_a_hostile_frame_is_refused_with_a_close_code(frame, code):
    parsed = protocol.parse_client_frame(frame)
    assert isinstance(parsed, protocol.Refusal)
    assert parsed.code == code
