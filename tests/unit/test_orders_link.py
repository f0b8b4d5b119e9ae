"""Tracking links: a genuine token verifies; anything forged, tampered, malformed, of another version or
expired is refused with the contract's text (and never raises)."""

from __future__ import annotations

import base64
import json

import pytest

from tracker.orders.link import Link, LinkError, sign, verify

SECRET = "unit-secret"
NOW = 1_800_000_000
LINK = Link("order-1", "courier-1", (12.9716, 77.5946), (12.9352, 77.6245), NOW + 3600)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_a_genuine_token_verifies_without_padding_in_two_parts():
    token = sign(LINK, SECRET)
    assert "=" not in token and token.count(".") == 1
    assert verify(token, SECRET, NOW) == LINK
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert payload == {
        "o": "order-1",
        "p": "courier-1",
        "d": [12.9716, 77.5946],
        "k": [12.9352, 77.6245],
        "e": NOW + 3600,
        "v": 1,
    }


def test_forged_signature_and_other_secret_are_invalid():
    payload, signature = sign(LINK, SECRET).split(".")
    assert verify(sign(LINK, "other-secret"), SECRET, NOW) is LinkError.INVALID
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert verify(f"{payload}.{flipped}", SECRET, NOW) is LinkError.INVALID
    assert verify(f"{payload}.", SECRET, NOW) is LinkError.INVALID


def test_a_tampered_payload_is_invalid_even_when_it_decodes():
    payload, signature = sign(LINK, SECRET).split(".")
    other = b64(json.dumps({"o": "order-1", "p": "courier-2", "d": [1, 2], "k": None, "e": NOW + 9, "v": 1}).encode())
    assert verify(f"{other}.{signature}", SECRET, NOW) is LinkError.INVALID
    assert verify(f"{payload[:-1]}x.{signature}", SECRET, NOW) is LinkError.INVALID


def test_expired_is_refused_as_expired_once_past_its_second():
    token = sign(LINK, SECRET)
    assert verify(token, SECRET, NOW + 3599.9) == LINK
    assert verify(token, SECRET, NOW + 3600) is LinkError.EXPIRED
    assert LinkError.EXPIRED.status == 410 and LinkError.REVOKED.status == 410 and LinkError.INVALID.status == 403


def signed(payload: bytes) -> str:
    """A token over arbitrary payload bytes, correctly signed: what only a holder of the secret could make."""
    import hashlib
    import hmac

    part = b64(payload)
    return f"{part}.{b64(hmac.new(SECRET.encode(), part.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "a.b.c",
        "not base64!.sig",
        "====.====",
        "x" * 5000,
        "é.é",
        signed(b"not json"),
        signed(b"[]"),
        signed(json.dumps({"o": "o", "p": "c", "d": [1, 2], "k": None, "e": NOW + 60, "v": 2}).encode()),  # version
        signed(json.dumps({"o": "o", "p": "c", "d": [1, 2], "k": None, "e": NOW + 60}).encode() + b"\xff"),
        signed(json.dumps({"o": "", "p": "c", "d": [1, 2], "k": None, "e": NOW + 60, "v": 1}).encode()),
        signed(json.dumps({"o": "o\u0000", "p": "c", "d": [1, 2], "k": None, "e": NOW + 60, "v": 1}).encode()),
        signed(json.dumps({"o": "o", "p": "c", "d": [91, 2], "k": None, "e": NOW + 60, "v": 1}).encode()),
        signed(json.dumps({"o": "o", "p": "c", "d": [1, 2], "k": None, "e": NOW + 60, "v": 1, "x": 1}).encode()),
    ],
)
def test_malformed_or_wrong_version_is_invalid(token):
    assert verify(token, SECRET, NOW) is LinkError.INVALID


def test_bad_base64_in_a_signed_part_is_invalid():
    # a payload part of a length base64 cannot have (4n + 1 characters), signed all the same
    import hashlib
    import hmac

    part = "abcde"
    token = f"{part}.{b64(hmac.new(SECRET.encode(), part.encode(), hashlib.sha256).digest())}"
    assert verify(token, SECRET, NOW) is LinkError.INVALID
