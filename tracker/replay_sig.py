"""Replay signatures: who may skip the age check. Pure.

An operator's replay (from the review page or ``tracker dlq replay``) goes back to ``location-updates`` with
``replay.of`` (the review entry's id), ``replay.count`` (how many times that ping has been replayed) and
``replay.sig``: an HMAC-SHA256, keyed by ``TRACKER_REPLAY_SECRET``, over both and over the sha256 of the
value. Gateways sign; validators verify. A record whose replay headers do not verify (anyone can add
headers to a ping) is an ordinary ping: it gets the age check, and its ``replay.count`` counts for nothing.
"""

from __future__ import annotations

import hashlib
import hmac

from tracker import constants as c

_DOMAIN = b"tracker-replay-v1\x00"
MAX_COUNT = 1_000_000


def signature(secret: str, replay_of: bytes, count: int, value: bytes | None) -> bytes:
    """The ``replay.sig`` value (hex) for a replay of entry ``replay_of`` carrying ``value``."""
    message = b"".join(
        (_DOMAIN, replay_of, b"\x00", str(count).encode(), b"\x00", hashlib.sha256(value or b"").digest())
    )
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest().encode()


def replay_headers(secret: str, replay_of: str, count: int, value: bytes | None) -> tuple[tuple[str, bytes], ...]:
    of = replay_of.encode()
    return (
        (c.H_REPLAY_OF, of),
        (c.H_REPLAY_COUNT, str(count).encode()),
        (c.H_REPLAY_SIG, signature(secret, of, count, value)),
    )


def verified_count(
    headers: tuple[tuple[str, bytes | None], ...] | list, value: bytes | None, secret: str | None
) -> int | None:
    """The replay count of a genuine replay; None for anything else (no secret, headers absent, repeated,
    malformed, or a signature that does not match)."""
    if not secret:
        return None
    found: dict[str, bytes] = {}
    for name, header_value in headers:
        if name in (c.H_REPLAY_OF, c.H_REPLAY_COUNT, c.H_REPLAY_SIG):
            if name in found or header_value is None:
                return None
            found[name] = header_value
    if len(found) != 3:
        return None
    raw_count = found[c.H_REPLAY_COUNT]
    if not (0 < len(raw_count) <= 7 and raw_count.isdigit()):
        return None
    count = int(raw_count)
    if not 1 <= count <= MAX_COUNT:
        return None
    expected = signature(secret, found[c.H_REPLAY_OF], count, value)
    return count if hmac.compare_digest(expected, found[c.H_REPLAY_SIG]) else None
