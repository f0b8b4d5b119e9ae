"""The devices that may post to the ingest, and their tokens (``tracker devices add|ls|revoke``).

A token is 32 random bytes (``secrets.token_urlsafe``: 43 characters of ``A-Z a-z 0-9 - _``, safe in a URL,
a header and a Basic password). Only its SHA-256 is stored (tracker/store.py, ``devices``): a copy of Redis
gives nobody a token. A plain, fast hash is enough here, and right: slow password hashes (bcrypt, scrypt,
argon2) exist to make guessing a *low-entropy* secret expensive, but a 256-bit random token cannot be guessed
at any speed, and a fast hash lets each request be checked in microseconds. The digest is also the lookup
key of the token's device (``devices:tokens``), so a bearer token alone says who is posting.

A device id is the courier id its pings carry (``partner_id``): 1-64 printable characters, and no ``:``,
which HTTP Basic cannot carry in a user name.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from tracker.models import ID_MAX
from tracker.store import DeviceRecord, Store

TOKEN_BYTES = 32


class DeviceError(ValueError):
    """A device id that cannot be registered or revoked; the message is one line for the user."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """The SHA-256 of a token, hex: what is stored and looked up, never the token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def id_problem(device_id: str) -> str | None:
    """Why ``device_id`` cannot name a device, or None."""
    if not 1 <= len(device_id) <= ID_MAX:
        return f"a device id is 1-{ID_MAX} characters, got {len(device_id)}"
    if not device_id.isprintable() or device_id != device_id.strip():
        return "a device id must be printable, without leading or trailing spaces"
    if ":" in device_id:
        return "a device id cannot hold ':' (HTTP Basic, how OwnTracks and GPSLogger send it, cannot carry one)"
    return None


async def add(store: Store, device_id: str) -> str:
    """Register ``device_id`` and return its new token (shown once: only its digest is kept)."""
    if (problem := id_problem(device_id)) is not None:
        raise DeviceError(problem)
    token = new_token()
    if not await store.add_device(device_id, token_digest(token), time.time_ns() // 1_000_000):
        raise DeviceError(f"device {device_id!r} already has a token; revoke it first to issue a new one")
    return token


async def revoke(store: Store, device_id: str) -> None:
    if not await store.revoke_device(device_id):
        raise DeviceError(f"no device {device_id!r}")


async def listing(store: Store) -> list[tuple[str, DeviceRecord]]:
    """Every device and its record, by id."""
    return sorted((await store.devices()).items())
