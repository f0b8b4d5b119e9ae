"""Who is posting: the credentials in a request, and the device their token belongs to.

A token is accepted three ways, whichever the app can send:

- ``Authorization: Bearer <token>`` (scripts, other backends);
- HTTP Basic with user = device id and password = token (OwnTracks, GPSLogger): the user must be the token's
  device;
- the query parameter ``token`` in the server URL (Traccar Client and OsmAnd can only be given a URL: both
  keep the URL's own query string when they add their parameters, docs/ingest.md).

The device is the token's, found by the token's SHA-256 (tracker/ingest/devices.py); whatever else a request
names (the Basic user, OwnTracks' ``X-Limit-U``, an OsmAnd ``id``, a ping's ``partner_id``) is only checked
against it. Answers are cached for ``cache_s`` seconds (TRACKER_INGEST_AUTH_CACHE_S), so a device costs one
Redis round trip per ``cache_s`` rather than one per request, and a revoked token is refused within that
bound. Refusals are cached too (a random token is never issued later), so guessing costs no Redis load.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import time
from collections.abc import Callable

import msgspec

from tracker.ingest.devices import token_digest
from tracker.store import Store

TOKEN_PARAM = "token"
LIMIT_USER_HEADER = "x-limit-u"  # OwnTracks' user name header (owntracks/recorder, "HTTP mode")


class Credentials(msgspec.Struct, frozen=True):
    """What a request presents: a token (or None), and the device id its credentials name (the Basic user),
    if any. ``malformed``: an Authorization header we could not read, which counts as a wrong credential."""

    token: str | None = None
    user: str | None = None
    malformed: bool = False


def credentials(authorization: str | None, token_param: str | None) -> Credentials:
    """Read ``Authorization`` (Bearer or Basic) or, without one, the ``token`` parameter."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return Credentials(value)
        if scheme.lower() == "basic" and value:
            return _basic(value)
        return Credentials(malformed=True)
    if token_param:
        return Credentials(token_param)
    return Credentials()


def _basic(value: str) -> Credentials:
    try:
        decoded = base64.b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return Credentials(malformed=True)
    user, sep, password = decoded.partition(":")
    if not sep:
        return Credentials(malformed=True)
    return Credentials(password or None, user or None)


class Authenticator:
    """Token -> device id, through a short-lived cache in front of the registry in Redis."""

    def __init__(
        self,
        store: Store,
        cache_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
    ) -> None:
        self.store = store
        self.cache_s = cache_s
        self.clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, tuple[str | None, float]] = {}  # digest -> (device or None, valid until)
        self._asking: dict[str, asyncio.Task[str | None]] = {}  # digest -> the lookup under way

    async def device(self, token: str) -> str | None:
        """The device ``token`` belongs to, or None. Raises StoreError (or OSError) when the registry does not
        answer and nothing is cached: the caller answers 503, not 401."""
        digest = token_digest(token)
        now = self.clock()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        lookup = self._asking.get(digest)
        if lookup is None:  # many requests of one device at once share one lookup, which outlives any of them
            lookup = self._asking[digest] = asyncio.create_task(self._lookup(digest))
            lookup.add_done_callback(lambda done: self._settled(digest, done))
        return await asyncio.shield(lookup)

    def _settled(self, digest: str, lookup: asyncio.Task[str | None]) -> None:
        del self._asking[digest]
        if not lookup.cancelled() and lookup.exception() is None:  # an error is retrieved, and not remembered
            self._remember(digest, lookup.result(), self.clock())

    async def _lookup(self, digest: str) -> str | None:
        found = await self.store.device_by_token(digest)
        if found is None:
            return None
        device, record = found
        # The registry is keyed by this digest, so it matches; compared anyway, in constant time, so that a
        # digest index out of step with the device's record (an interrupted revoke) never lets a token in.
        return device if hmac.compare_digest(record.sha256, digest) else None

    def _remember(self, digest: str, device: str | None, now: float) -> None:
        if self.cache_s <= 0:
            return
        if len(self._cache) >= self.max_entries:
            self._cache = {key: entry for key, entry in self._cache.items() if entry[1] > now}
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
        self._cache[digest] = (device, now + self.cache_s)
