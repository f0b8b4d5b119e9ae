"""``tracker simulate --via-ingest URL``: the same fleet through the front door, as phones posting over HTTP.

Each courier is a phone: its fixes go to `tracker ingest` by one protocol (simulator/phones.py), one request
at a time and in order (a courier's next fix waits for the answer to the last), many couriers at once over a
pool of at most ``concurrency`` keep-alive connections. The loop, its pacing and its counts are the Kafka
loop's (simulator/run.py, :func:`~simulator.run.drive`); only sending differs:

* 2xx: the ingest's broker acknowledged the fixes: counted as sent (``produced``).
* 429, 5xx (503 when the broker is down) or no answer at all: the phone keeps the fix and tries again,
  after Retry-After when the ingest sends one, else after 0.5 s doubling up to 10 s; each try again is
  counted in ``retries``. A fix still refused after :data:`DELIVERY_TIMEOUT_S`, or when the run is stopped,
  is counted as ``unsent`` with the last answer. A stop request lets the requests in flight finish; a
  courier's fixes not yet sent then are not counted at all, like the pings the run never made.
* 401, 403, 404, 405: every request would get the same answer (a wrong token or URL): the run stops with
  one line saying which (:class:`IngestRefused`).
* Any other 4xx (a body the ingest refuses): that fix is ``unsent``, with the ingest's reason; resending it
  would be refused again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

import httpx
import msgspec

from simulator.config import SimConfig
from simulator.phones import PhoneProtocol, PhoneRequest, request_for
from simulator.run import SimStats, drive
from simulator.stream import SimPing
from tracker.settings import Settings

DEFAULT_CONCURRENCY = 64
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
RETRY_AFTER_MAX_S = 60.0
# A fix retried this long is given up (the Kafka producer's delivery.timeout.ms is the same 120 s).
DELIVERY_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
ERROR_TEXT_MAX = 200
# Answers that every request would get: the run stops.
FATAL = {
    401: "refused {courier}'s credentials (check --tokens: `tracker devices add {courier}` prints its token)",
    403: "says the request is not {courier}'s to send",
    404: "has no such route (is --via-ingest the URL of `tracker ingest`?)",
    405: "does not take this method there (is --via-ingest the URL of `tracker ingest`?)",
}


class IngestTarget(msgspec.Struct, frozen=True):
    url: str
    protocol: PhoneProtocol = PhoneProtocol.OSMAND
    tokens: dict[str, str] | None = None  # courier id -> token; None: no credentials (TRACKER_INGEST_AUTH=open)
    concurrency: int = DEFAULT_CONCURRENCY


class IngestRefused(Exception):
    """An answer every request would get (401, 403, 404, 405): the run stops; the message is one line."""


class IngestAnswer(Exception):
    """A refusal of one request: its status and the ingest's reason (an ``unsent`` reason names it)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}" if text else f"HTTP {status}")
        self.status = status


def _error_text(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return " ".join(response.text.split())[:ERROR_TEXT_MAX]
    error = doc.get("error") if isinstance(doc, dict) else None
    return str(error)[:ERROR_TEXT_MAX] if error is not None else ""


def _retry_after_s(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return min(float(value), RETRY_AFTER_MAX_S) if value.isdigit() else 0.0


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def missing_tokens(tokens: Mapping[str, str], couriers: list[str]) -> list[str]:
    """The couriers ``tokens`` has no token for."""
    return [courier for courier in couriers if not tokens.get(courier)]


class IngestSender:
    """Sends a batch of pings as the couriers' phones would (a :data:`~simulator.run.Send`)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        target: IngestTarget,
        *,
        max_pings: int,
        stop: asyncio.Event,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.max_pings = max_pings  # pings in one native request (TRACKER_INGEST_MAX_PINGS)
        self.stop = stop
        self.clock = clock
        self.slots = asyncio.Semaphore(target.concurrency)
        self.retries = 0
        self.fatal: IngestRefused | None = None

    async def __call__(self, batch: list[SimPing]) -> list[tuple[list[SimPing], BaseException | None]]:
        chains: dict[str, list[SimPing]] = {}
        for ping in batch:
            chains.setdefault(ping.partner_id, []).append(ping)
        results = await asyncio.gather(*(self._chain(courier, pings) for courier, pings in chains.items()))
        if self.fatal is not None:
            raise self.fatal
        return [outcome for chain in results for outcome in chain]

    def _requests(self, pings: list[SimPing]) -> list[list[SimPing]]:
        """One courier's pings, in order, grouped as its requests will carry them."""
        size = self.max_pings if self.target.protocol is PhoneProtocol.NATIVE else 1
        return [pings[start : start + size] for start in range(0, len(pings), size)]

    async def _chain(self, courier: str, pings: list[SimPing]) -> list[tuple[list[SimPing], BaseException | None]]:
        token = None if self.target.tokens is None else self.target.tokens[courier]
        outcomes: list[tuple[list[SimPing], BaseException | None]] = []
        for group in self._requests(pings):
            if self.fatal is not None:
                outcomes.append((group, self.fatal))
                continue
            if self.stop.is_set():  # the phone is switched off: what it has not sent is not counted at all
                break
            request = request_for(self.target.protocol, courier, [ping.value for ping in group], token)
            outcomes.append((group, await self._deliver(courier, request)))
        return outcomes

    async def _deliver(self, courier: str, request: PhoneRequest) -> BaseException | None:
        """Send ``request`` until a 2xx (None) or a final answer (the error, for ``unsent``)."""
        loop = asyncio.get_running_loop()
        clock = self.clock or loop.time
        deadline = clock() + DELIVERY_TIMEOUT_S
        pause = RETRY_FIRST_S
        while True:
            failure: BaseException
            async with self.slots:
                try:
                    response = await self.client.request(
                        request.method, request.target, headers=list(request.headers), content=request.body
                    )
                except httpx.TransportError as error:  # refused, reset, timed out: the phone tries again
                    failure, wait = error, pause
                else:
                    if response.is_success:
                        return None
                    failure = IngestAnswer(response.status_code, _error_text(response))
                    if response.status_code in FATAL:
                        self.fatal = IngestRefused(
                            f"the ingest at {self.target.url} {FATAL[response.status_code].format(courier=courier)}"
                            f" (HTTP {response.status_code}: {_error_text(response)})"
                        )
                        return self.fatal
                    if not _retryable(response.status_code):
                        return failure
                    wait = max(pause, _retry_after_s(response))
            if self.stop.is_set() or clock() + wait > deadline or self.fatal is not None:
                return failure
            if await _stopped_within(self.stop, wait):
                return failure
            self.retries += 1
            pause = min(pause * 2, RETRY_MAX_S)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


def client_for(target: IngestTarget) -> httpx.AsyncClient:
    """A pooled HTTP client for ``target``: at most ``concurrency`` connections, all kept alive."""
    return httpx.AsyncClient(
        base_url=target.url,
        limits=httpx.Limits(max_connections=target.concurrency, max_keepalive_connections=target.concurrency),
        timeout=httpx.Timeout(REQUEST_TIMEOUT_S),
        headers={"user-agent": "tracker-simulate"},
    )


async def run_via_ingest(
    settings: Settings,
    config: SimConfig,
    target: IngestTarget,
    progress: Callable[[SimStats], None] | None = None,
    stop: asyncio.Event | None = None,
    waiting: Callable[[float], None] | None = None,
    client: httpx.AsyncClient | None = None,
) -> SimStats:
    """Send the simulation through the ingest at ``target`` until ``count``, ``duration`` or ``stop``.

    Raises :class:`IngestRefused` on an answer every request would get. ``client``: an open one to use instead
    of :func:`client_for`'s (tests pass one with their own transport; its owner closes it).
    """
    config = msgspec.structs.replace(config, via_ingest=True).checked()
    stop = stop or asyncio.Event()
    # httpx logs every request at INFO, with its URL: an OsmAnd URL carries the courier's token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger(name).level))
    async with contextlib.AsyncExitStack() as owned:
        http = client if client is not None else await owned.enter_async_context(client_for(target))
        sender = IngestSender(http, target, max_pings=settings.ingest_max_pings, stop=stop)
        return await drive(settings, config, sender, progress, stop, waiting, retries=lambda: sender.retries)
