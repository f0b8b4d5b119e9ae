"""The ingest's HTTP service (Starlette on uvicorn, started by ``tracker ingest``): phones post fixes here.

Routes (docs/ingest.md has what to type into each app):

- ``/`` and ``/osmand``: OsmAnd and Traccar Client; a GET query or an urlencoded POST (before Traccar Client 9)
  or the JSON body Traccar Client 9+ posts. Success: 200, empty body.
- ``/owntracks``: OwnTracks in HTTP mode; POST JSON. Always 200 ``[]`` once authenticated, for a fix and for
  anything else the app posts (transitions, waypoints, an empty body: nothing is produced for those).
- ``/v1/pings``: our own ping format, one object or an array. Success: 200 ``{"produced": N}``.
- ``/healthz``, ``/readyz`` (ready: the producer reaches the broker), ``/metrics``.

Every request goes the same way, each step with its answer (:class:`Refusal`): body within
TRACKER_INGEST_MAX_BODY_BYTES (413) → credentials (401, counted; with TRACKER_INGEST_AUTH=open any device id
is taken) → the body parsed by the app's protocol (tracker/ingest/protocols.py; a body that is not JSON
where JSON is due: 400) → identity: everything the request names must be the authenticated courier (403) →
the device's token bucket (429, Retry-After) → produced and acknowledged by the broker (else 503,
Retry-After) → 2xx. A fix that is malformed still gets its 2xx: it goes through the validator to the DLQ
with its reason, where an operator can see it; refusing it here would only make the phone send it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tracker import rules
from tracker.ingest import protocols
from tracker.ingest.auth import LIMIT_USER_HEADER, TOKEN_PARAM, Authenticator, Credentials, credentials
from tracker.ingest.batcher import Batcher, ProduceFailed, ProduceTimeout
from tracker.ingest.limits import DeviceBuckets
from tracker.ingest.metrics import CONTENT_TYPE, IngestMetrics
from tracker.ingest.records import Protocol, record
from tracker.kafka import Producer
from tracker.models import Verdict
from tracker.settings import Settings
from tracker.store import Store, StoreError

log = logging.getLogger(__name__)

REALM = 'Basic realm="tracker ingest", charset="UTF-8"'
OWNTRACKS_REPLY = b"[]"  # OwnTracks reads the body as a JSON array of messages for it: none
PROBE_TIMEOUT_S = 2.0
FORM_FIELDS_MAX = 200


class Refusal(Exception):
    """A request answered with an error status; ``message`` is the body's ``error``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class _Throttled:
    """A warning logged at most once per ``interval_s``, then with how many like it were left out: during a
    broker outage every phone's every request fails the same way."""

    def __init__(self, clock: Callable[[], float], interval_s: float = 10.0) -> None:
        self.clock = clock
        self.interval_s = interval_s
        self.last = -interval_s
        self.left_out = 0

    def warning(self, message: str, *args: object) -> None:
        now = self.clock()
        if now - self.last < self.interval_s:
            self.left_out += 1
            return
        if self.left_out:
            message += f" (and {self.left_out:,} more like it in the last {self.interval_s:g} s)"
        log.warning(message, *args)
        self.last, self.left_out = now, 0


class Ingest:
    """The running parts behind the app: the producer and its batcher, the device registry, the buckets."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.open = settings.ingest_auth == "open"
        self.clock = clock
        self.metrics = IngestMetrics()
        self.buckets = DeviceBuckets(settings.ingest_device_rate, settings.ingest_device_burst)
        self.retry_after = str(max(1, math.ceil(settings.ingest_produce_timeout_s)))
        self.producer: Producer | None = None
        self.batcher: Batcher | None = None
        self.store: Store | None = None
        self.authenticator: Authenticator | None = None
        self.unwritten = _Throttled(clock)
        self.unregistered = _Throttled(clock)

    async def start(self) -> None:
        try:
            if not self.open:
                self.store = Store(self.settings)
                self.authenticator = Authenticator(self.store, self.settings.ingest_auth_cache_s)
            self.producer = Producer(self.settings)
            await self.producer.start()
            self.batcher = Batcher(self.producer, self.settings.location_topic, self.metrics)
            await self.batcher.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.store is not None:
            await self.store.close()

    # -- the steps every request takes ------------------------------------------------------------------------

    async def body(self, request: Request) -> bytes:
        limit = self.settings.ingest_max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refusal(413, f"the body is {int(declared):,} bytes; at most {limit:,} are taken")
        chunks: list[bytes] = []
        size = 0
        deadline = self.settings.ingest_body_timeout_s
        try:
            async with asyncio.timeout(deadline):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise Refusal(413, f"the body is over {limit:,} bytes")
                    chunks.append(chunk)
        except ClientDisconnect:
            raise Refusal(400, "the client went away mid-body") from None
        except TimeoutError:
            raise Refusal(408, f"the body was still arriving after {deadline:g} s") from None
        return b"".join(chunks)

    async def authenticate(self, found: Credentials) -> str | None:
        """The courier the credentials prove: the token's device (401 unless the token is a device's and the
        Basic user, if any, is that device). With TRACKER_INGEST_AUTH=open, the Basic user, if any."""
        if self.open:
            return found.user
        if found.token is None and not found.malformed:
            self.metrics.auth_failures.labels(reason="missing").inc()
            raise Refusal(401, "no credentials: a device token is needed", {"WWW-Authenticate": REALM})
        courier = await self._device(found.token) if found.token is not None else None
        if courier is None or (found.user is not None and found.user != courier):
            self.metrics.auth_failures.labels(reason="invalid").inc()
            raise Refusal(401, "unknown or revoked device token", {"WWW-Authenticate": REALM})
        return courier

    def claim(self, courier: str | None, *names: object) -> str | None:
        """``courier``, checked against every id the request names besides its credentials (an OsmAnd ``id``,
        OwnTracks' ``X-Limit-U``, a ping's ``partner_id``): another courier's is refused with 403. With no
        courier (open mode, no Basic user) the first string named is the courier."""
        for name in names:
            if name is None:
                continue
            if courier is None and self.open:
                if isinstance(name, str):
                    courier = name
                continue  # anything else is the validator's to refuse
            if name != courier:
                whose = f"{courier!r}'s" if courier is not None else "nobody's"
                raise Refusal(403, f"this request is {whose}; it names {rules.show(name)} as the courier")
        return courier

    async def _device(self, token: str) -> str | None:
        assert self.authenticator is not None
        try:
            return await self.authenticator.device(token)
        except (StoreError, OSError) as exc:
            self.unregistered.warning("the device registry did not answer: %r", exc)
            raise Refusal(
                503, "the device registry is unavailable; try again", {"Retry-After": self.retry_after}
            ) from None

    def take(self, courier: str | None, cost: int) -> None:
        wait = self.buckets.take(courier or "", cost, self.clock())
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            raise Refusal(429, f"over this device's rate; retry in {retry} s", {"Retry-After": retry})

    async def produce(self, protocol: Protocol, courier: str | None, pings: list[dict[str, Any]]) -> None:
        assert self.batcher is not None
        self.take(courier, len(pings))
        records = [record(ping, courier, protocol, self.settings.max_payload_bytes) for ping in pings]
        try:
            await self.batcher.produce(records, self.settings.ingest_produce_timeout_s)
        except (ProduceTimeout, ProduceFailed) as exc:
            self.unwritten.warning(
                "%s: %d pings of %r not acknowledged: %s", protocol.value, len(records), courier, exc
            )
            raise Refusal(503, f"not written: {exc}; try again", {"Retry-After": self.retry_after}) from None
        self.metrics.pings.labels(protocol=protocol.value).inc(len(records))

    async def ready(self) -> bool:
        """Whether the producer reaches the broker now."""
        return self.producer is not None and await self.producer.reachable(PROBE_TIMEOUT_S)


def _json(body: bytes, limit: int) -> object:
    """The body as JSON, or 400 saying why not (the validator's bounded decoder: depth, size, UTF-8)."""
    doc = rules.decode_json(body, limit)
    if isinstance(doc, Verdict):
        raise Refusal(400, doc.detail.replace("payload", "the body", 1))
    return doc


def _form(body: bytes) -> dict[str, str]:
    try:
        return dict(
            urllib.parse.parse_qsl(body.decode("latin-1"), keep_blank_values=True, max_num_fields=FORM_FIELDS_MAX)
        )
    except ValueError:
        raise Refusal(400, f"a form of more than {FORM_FIELDS_MAX} fields") from None


def _is_json(request: Request, body: bytes) -> bool:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json") or body.lstrip()[:1] == b"{"


# -- the protocols ---------------------------------------------------------------------------------------------


async def osmand(ingest: Ingest, request: Request) -> tuple[Protocol, Response]:
    """OsmAnd / Traccar Client: the query (and form) parameters, or Traccar Client 9's JSON body."""
    if request.method not in ("GET", "POST"):  # HEAD, which Starlette adds to GET routes: no fix from it
        raise Refusal(405, "GET or POST")
    body = await ingest.body(request)
    params = dict(request.query_params)
    protocol = Protocol.OSMAND
    if request.method == "POST" and body.strip():
        if _is_json(request, body):
            protocol = Protocol.TRACCAR_JSON
        else:
            params.update(_form(body))
    token = params.pop(TOKEN_PARAM, None)  # a credential, never a field of the ping
    courier = await ingest.authenticate(credentials(request.headers.get("authorization"), token))
    if protocol is Protocol.TRACCAR_JSON:
        fix = protocols.traccar_json(_json(body, ingest.settings.ingest_max_body_bytes))
    else:
        fix = protocols.osmand(params)
    courier = ingest.claim(courier, fix.device_id)
    await ingest.produce(protocol, courier, [fix.ping])
    return protocol, Response(status_code=200)


async def owntracks(ingest: Ingest, request: Request) -> tuple[Protocol, Response]:
    """OwnTracks (HTTP mode): the courier is the Basic user (or X-Limit-U); always 200 ``[]`` once in."""
    protocol = Protocol.OWNTRACKS
    body = await ingest.body(request)
    courier = await ingest.authenticate(credentials(request.headers.get("authorization"), None))
    courier = ingest.claim(courier, request.headers.get(LIMIT_USER_HEADER))
    reply = Response(OWNTRACKS_REPLY, media_type="application/json")
    doc = rules.decode_json(body, ingest.settings.ingest_max_body_bytes) if body.strip() else None
    fix = None if doc is None or isinstance(doc, Verdict) else protocols.owntracks(doc)
    if fix is None:  # nothing to produce, and nothing the app should send again
        if doc is None:
            kind = "empty"
        elif isinstance(doc, Verdict):
            kind = "not_json"
        elif isinstance(doc, dict) and doc.get("_type") == "encrypted":
            kind = "encrypted"  # the app's payload encryption is on: its fixes cannot be read (docs/ingest.md)
        else:
            kind = "not_a_location"
        ingest.metrics.ignored.labels(protocol=protocol.value, kind=kind).inc()
        return protocol, reply
    await ingest.produce(protocol, courier, [fix.ping])
    return protocol, reply


async def native(ingest: Ingest, request: Request) -> tuple[Protocol, Response]:
    """Our own pings: one object or an array of one courier's; a ``partner_id`` may be left out."""
    protocol = Protocol.NATIVE
    body = await ingest.body(request)
    found = credentials(request.headers.get("authorization"), request.query_params.get(TOKEN_PARAM))
    courier = await ingest.authenticate(found)
    pings = protocols.native(_json(body, ingest.settings.ingest_max_body_bytes), ingest.settings.ingest_max_pings)
    if isinstance(pings, str):
        raise Refusal(400, pings)
    courier = ingest.claim(courier, *(ping["partner_id"] for ping in pings if "partner_id" in ping))
    await ingest.produce(protocol, courier, pings)
    return protocol, JSONResponse({"produced": len(pings)})


Handler = Callable[[Ingest, Request], Awaitable[tuple[Protocol, Response]]]


def _endpoint(handler: Handler, protocol: Protocol) -> Callable[[Request], Awaitable[Response]]:
    """A route for ``handler``: its refusals become JSON errors, and every answer is counted."""

    async def endpoint(request: Request) -> Response:
        ingest: Ingest = request.app.state.ingest
        answered = protocol
        try:
            answered, response = await handler(ingest, request)
        except Refusal as refusal:
            response = JSONResponse({"error": refusal.message}, refusal.status, refusal.headers)
        ingest.metrics.requests.labels(protocol=answered.value, status=str(response.status_code)).inc()
        return response

    return endpoint


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    ingest: Ingest = request.app.state.ingest
    producer = await ingest.ready()
    return JSONResponse({"ready": producer, "checks": {"producer": producer}}, status_code=200 if producer else 503)


async def metrics_endpoint(request: Request) -> Response:
    return Response(request.app.state.ingest.metrics.render(), media_type=CONTENT_TYPE)


def create_app(settings: Settings, ingest: Ingest | None = None) -> Starlette:
    """The ingest app; its lifespan starts and stops ``ingest`` (one is made from ``settings`` if not given)."""
    ingest = ingest or Ingest(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ingest.start()
        try:
            yield
        finally:
            await ingest.stop()

    routes = [
        Route("/", _endpoint(osmand, Protocol.OSMAND), methods=["GET", "POST"]),
        Route("/osmand", _endpoint(osmand, Protocol.OSMAND), methods=["GET", "POST"]),
        Route("/owntracks", _endpoint(owntracks, Protocol.OWNTRACKS), methods=["POST"]),
        Route("/v1/pings", _endpoint(native, Protocol.NATIVE), methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.ingest = ingest
    return app
