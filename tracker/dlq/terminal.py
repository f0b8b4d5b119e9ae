"""What ``tracker dlq`` prints of a rejected ping, made safe for the operator's terminal (pure).

Anyone who can produce to ``location-updates`` chooses a dead letter's key, headers and payload, so they may
hold escape sequences (ESC ``\\x1b``: colours, cursor moves, a window title, OSC 52 writing the clipboard),
a carriage return that overwrites the line, BEL, C1 controls (``\\x9b`` is a CSI on some terminals) and
bidi overrides (U+202E shows text reversed). :func:`printable` shows each such character as a visible
escape, in Python's notation (``\\x1b``, ``\\r``, ``\\u202e``): every character ``str.isprintable()``
refuses, i.e. controls, format characters (bidi, zero-width), separators other than the space, surrogates,
private-use and unassigned code points. A backslash already in the text is left as it is.

:func:`printable_json` does the same to a JSON document in JSON's own notation (``\\u001b``), so that
``--json`` output stays exact JSON: it decodes to the same values.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with every character a terminal could act on (or that would mislead the eye) escaped."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP JSON has only UTF-16 surrogate pairs
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def printable_json(document: bytes | str) -> str:
    """A JSON document (as an encoder writes it: no raw control characters outside strings) with every
    unprintable character inside its strings written as a JSON escape."""
    text = document.decode() if isinstance(document, bytes) else document
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _json_escape(char) for char in text)
