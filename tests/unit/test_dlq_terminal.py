"""What ``tracker dlq`` prints of hostile text: every character a terminal acts on is shown as an escape,
and ``--json`` stays exact JSON (tracker/dlq/terminal.py)."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tracker.dlq.terminal import printable, printable_json

HOSTILE = {
    "\x1b[2J\x1b]0;pwned\x07": "\\x1b[2J\\x1b]0;pwned\\x07",  # clear the screen, set the window title
    "ok\rFAKE": "ok\\rFAKE",  # overwrite the line
    "csi \x9b31m": "csi \\x9b31m",  # a C1 control
    "evil\u202egpj.exe": "evil\\u202egpj.exe",  # bidi override
    "zero\u200bwidth\u2066": "zero\\u200bwidth\\u2066",
    "tag \U000e0041": "tag \\U000e0041",
    "lone \ud800": "lone \\ud800",
    "del \x7f, nul \x00, tab \t, newline \n": "del \\x7f, nul \\x00, tab \\t, newline \\n",
}


def test_every_terminal_control_is_shown_as_an_escape():
    for text, shown in HOSTILE.items():
        assert printable(text) == shown


def test_printable_text_is_left_as_it_is():
    for text in ("courier-7", "ಬೆಂಗಳೂರು 12.97°N", "emoji 🛵", 'a \\x1b already "escaped"', ""):
        assert printable(text) == text


@given(st.text())
def test_printable_output_is_all_printable(text):
    assert printable(text).isprintable()


@given(st.text().filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t)))
def test_json_output_is_printable_and_decodes_to_the_same_values(text):
    document = msgspec.json.encode({"payload_text": text, "headers": [[text, "x"]]})
    shown = printable_json(document)
    assert shown.isprintable()
    assert json.loads(shown) == {"payload_text": text, "headers": [[text, "x"]]}


def test_json_escapes_are_jsons():
    assert printable_json(b'{"k":"\x1b[31m\xe2\x80\xae\xf3\xa0\x81\x81"}') == '{"k":"\\u001b[31m\\u202e\\udb40\\udc41"}'
