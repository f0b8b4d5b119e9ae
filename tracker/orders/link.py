"""Tracking links: a signed token that names one order and one courier, checked with no database lookup.

A token is ``<payload>.<signature>``: ``payload`` is base64url (no padding) of the JSON object
``{"o": order_id, "p": partner_id, "d": [lat, lon], "k": [lat, lon] or null, "e": expiry epoch s, "v": 1}``,
and ``signature`` is base64url (no padding) of HMAC-SHA256(secret, the payload's base64url text). The text is
signed, not the JSON, so any change to a single character of the token (a tampered payload, another encoding
of the same bytes) fails the check; the check compares in constant time and comes before anything of the
payload is decoded, so nothing unauthenticated is parsed. Pure: no I/O, no clock (``now_s`` is passed in).

What is refused, and how (the three texts are the contract's, shown by the page and used as the socket's
close reasons): anything malformed, forged or of another version -> :attr:`LinkError.INVALID` (403); a
genuine token past its expiry -> :attr:`LinkError.EXPIRED` (410). Revocation needs Redis (a set of revoked
order ids), so the gateway checks it after this (:attr:`LinkError.REVOKED`, 410).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
from typing import Annotated

import msgspec

from tracker.models import ID_MAX

VERSION = 1
MAX_TOKEN_CHARS = 1024  # a payload of two 64-character ids and four coordinates is ~300 characters
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class LinkError(enum.Enum):
    """Why a link is refused: the value is the one-line text every route and the socket's close use."""

    INVALID = "invalid tracking link"
    EXPIRED = "tracking link expired"
    REVOKED = "tracking link revoked"

    @property
    def status(self) -> int:
        """The HTTP status of the refusal: 403 for a link that never was genuine, 410 for one that was."""
        return 403 if self is LinkError.INVALID else 410


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX)]
Lat = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Lon = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Link(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a token says (the payload's JSON names: o, p, d, k, e, v)."""

    order_id: Id = msgspec.field(name="o")
    partner_id: Id = msgspec.field(name="p")
    dropoff: tuple[Lat, Lon] = msgspec.field(name="d")
    pickup: tuple[Lat, Lon] | None = msgspec.field(name="k")
    expires_s: Annotated[int, msgspec.Meta(ge=0, lt=2**53)] = msgspec.field(name="e")
    version: int = msgspec.field(name="v", default=VERSION)

    @property
    def expires_ms(self) -> int:
        return self.expires_s * 1000


def is_id(value: object) -> bool:
    """Whether ``value`` may be an order or courier id: the ping's rule for ids (docs/contract.md: 1-64
    printable characters, not blank)."""
    return isinstance(value, str) and 0 < len(value) <= ID_MAX and bool(value.strip()) and value.isprintable()


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Link).decode


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _signature(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode("utf-8"), payload.encode("ascii"), hashlib.sha256).digest())


def sign(link: Link, secret: str) -> str:
    """The token of ``link``, signed with ``secret``."""
    payload = _b64(_encode(link))
    return f"{payload}.{_signature(secret, payload)}"


def verify(token: str, secret: str, now_s: float) -> Link | LinkError:
    """The link a token carries, or why it is refused (never raises, whatever ``token`` holds)."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        return LinkError.INVALID
    payload, signature = token.split(".")
    if not (_B64URL.fullmatch(payload) and _B64URL.fullmatch(signature)):
        return LinkError.INVALID
    if not hmac.compare_digest(_signature(secret, payload).encode("ascii"), signature.encode("ascii")):
        return LinkError.INVALID
    try:
        link = _decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):  # ValidationError is a DecodeError
        return LinkError.INVALID  # signed by us, yet not a payload of ours: refused all the same
    if link.version != VERSION or not (is_id(link.order_id) and is_id(link.partner_id)):
        return LinkError.INVALID
    if link.expires_s <= now_s:
        return LinkError.EXPIRED
    return link
