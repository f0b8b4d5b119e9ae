"""The gateway: Starlette app serving the map page, the HTTP API and the ``/ws`` WebSocket.

Every gateway instance reads every record of ``courier-positions`` (a standalone reader of all partitions,
Kafka's pub/sub model) into its :class:`~tracker.hub.Hub`, starting at the latest offsets; the latest
positions already in Redis are loaded on start, after the reader has its starting offsets, so a fresh
gateway is complete and misses nothing in between (the hub is newer-wins, so overlap is harmless).

The reader is total: a record that cannot be read or applied (no value, not JSON, wrong types, numbers the
page cannot show) is counted in ``tracker_bad_position_records`` and logged with its topic, partition and
offset, and the reader moves on. Its background tasks (the positions reader, the DLQ indexer, the tick, the
once-a-second stats and the courier expiry sweep) are supervised: one that raises or ends is logged at
ERROR and restarted with backoff (:class:`~tracker.supervision.RestartPolicy`, never giving up), ``/readyz`` answers
503 naming it while it is down, and ``tracker_gateway_task_restarts`` counts the restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute

from tracker import access, basemap, expiry, metrics, protocol, ws
from tracker import constants as c
from tracker.dlq import http as dlq_http
from tracker.dlq.index import DlqIndex
from tracker.dlq.indexer import run_indexer
from tracker.events import http as events_http
from tracker.events.zones import Zones
from tracker.geo import load_service_area
from tracker.history import http as history_http
from tracker.hub import Hub
from tracker.kafka import BrokerError, Consumer, Producer
from tracker.models import ID_MAX, Position, Reason, Record
from tracker.orders import http as orders_http
from tracker.relay import RelayConsumer, RelayError
from tracker.settings import Settings
from tracker.static import PageFiles
from tracker.status import StatusThresholds
from tracker.store import Store, StoreError
from tracker.supervision import RestartPolicy
from tracker.zone_counts import count_by_zone

log = logging.getLogger(__name__)

DEFAULT_STATIC_DIR = Path(__file__).resolve().parent.parent / "frontend" / "dist"
_decode_position = msgspec.json.Decoder(Position).decode
MAX_SAFE_INTEGER = 2**53 - 1  # the page reads numbers as JavaScript doubles: larger times lose their meaning
# A task that fails is restarted after 0.5 s, doubling with each failure in the last minute up to 10 s; a
# gateway never gives up on one (the alternative is a gateway that serves a frozen map).
TASK_RESTARTS = RestartPolicy(limit=None, window_s=60.0)
# The positions reader applies what is buffered in polls of this many (~10 ms of work), for up to as long as
# everything else ran since its last turn (at least POSITIONS_MIN_TURN_S), then lets the rest run: it keeps up
# with the broker while the tick and the clients' writers still get their turns, and a gateway short of CPU
# sends fewer frames rather than older fixes. (Taking all that was fetched at once held up the tick for up to a
# second; a turn of one poll each let the reader fall behind: BENCHMARKS.md, fan-out.)
POSITIONS_PER_POLL = 1000
POSITIONS_MIN_TURN_S = 0.01


def read_position(value: bytes | None) -> Position | str:
    """A ``courier-positions`` value (or a Redis latest-position JSON) as a Position, or what is wrong with it.

    Beyond msgspec's types: coordinates in range (the map refuses others) and times the page can represent.
    """
    if value is None:
        return "no value (a record the broker client could not read, or a tombstone)"
    try:
        position = _decode_position(value)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: bytes that are not UTF-8
        return f"not a position: {exc}"
    if not (-90 <= position.lat <= 90 and -180 <= position.lon <= 180):
        return f"coordinates out of range: lat {position.lat!r}, lon {position.lon!r}"
    if not (0 <= position.ts <= MAX_SAFE_INTEGER and 0 <= position.accepted_at_ms <= MAX_SAFE_INTEGER):
        return f"times out of range: ts {position.ts}, accepted_at_ms {position.accepted_at_ms}"[:200]
    if not position.id:
        return "empty id"
    return position


class Gateway:
    """The running parts behind the app: hub, store, positions reader and the periodic tasks."""

    def __init__(self, settings: Settings, hub: Hub | None = None, *, consume: bool = True) -> None:
        self.settings = settings
        self.hub = hub or Hub(
            StatusThresholds(
                stale_after_ms=round(settings.stale_after_s * 1000),
                offline_after_ms=round(settings.offline_after_s * 1000),
                idle_below_mps=settings.idle_below_mps,
            )
        )
        self.hub.tracking.coarsen_m = settings.tracking_coarsen_m
        self.consume = consume
        self._store: Store | None = None
        self.dlq_index: DlqIndex | None = None
        self.producer: Producer | None = None  # for replays
        self.consumer: Consumer | RelayConsumer | None = None
        self.assigned = False
        self.metrics = metrics.GatewayMetrics(report_lag=settings.report_lag)
        self.counters: dict[str, int] = {}
        self.pings_per_s = 0.0
        self.zones: Zones | None = None  # the service area's zones (create_app), counted for the stats frame
        self.zone_counts: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self.task_names: list[str] = []
        self.tasks_down: dict[str, str] = {}  # task name -> why it is down, while it waits for its restart

    @property
    def store(self) -> Store:
        """The Redis edge, there from :meth:`start` on."""
        if self._store is None:
            raise RuntimeError("the gateway is not started")
        return self._store

    async def start(self) -> None:
        self._store = Store(self.settings)
        self.dlq_index = DlqIndex(self.store, self.settings.dlq_index_max)
        self.producer = Producer(self.settings)
        await self.producer.start()
        if self.consume and self.settings.gateway_relay:  # one of --workers N: the relay reads for it
            self.consumer = RelayConsumer(
                self.settings.gateway_relay,
                self.settings.positions_topic,
                self._relay_reconnected,
                self.settings.startup_timeout_s,
            )
            await self.consumer.start()
        elif self.consume:
            self.consumer = Consumer(
                self.settings, [self.settings.positions_topic], group_id=None, start="latest", on_assign=self._on_assign
            )
            await self.consumer.start()
        await self.load_from_redis()
        self.hub.tick()  # what Redis had is encoded before the first client's snapshot
        if (consumer := self.consumer) is not None:
            self.supervise("positions-reader", lambda: self._consume(consumer))
            self.supervise("dlq-indexer", lambda: run_indexer(self.settings, self.store, asyncio.Event()))
            self.supervise("courier-expiry", self._expire)
        self.supervise("tick", self._tick)
        self.supervise("stats", self._every_second)
        self.supervise("tracking-states", lambda: orders_http.refresh_states(self))

    def supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run()`` as background task ``name`` for as long as the gateway runs (see the module doc)."""
        self.task_names.append(name)
        self.metrics.task_restarts.labels(task=name)  # exported as 0 from the start
        self._tasks.append(asyncio.create_task(self._keep_running(name, run), name=name))

    async def _keep_running(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        ends: list[float] = []
        while True:
            error: BaseException | None = None
            try:
                await run()
                why = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any bug in a task: log it, restart it; never let it vanish
                error = exc
                why = type(exc).__name__
            now = time.monotonic()
            ends = [*TASK_RESTARTS.recent(ends, now), now]
            delay = TASK_RESTARTS.decide(ends, now)
            assert delay is not None  # a policy without a limit never gives up
            # /readyz names the error's class only: its text can hold what a probe must not read (a Redis URL
            # with its password, a payload); the log has the whole of it.
            self.tasks_down[name] = why
            log.error("gateway task %s stopped (%s); restarting in %g s", name, why, delay, exc_info=error)
            try:
                await asyncio.sleep(delay)
            finally:
                self.tasks_down.pop(name, None)
            self.metrics.task_restarts.labels(task=name).inc()

    async def stop(self) -> None:
        """Cancel the tasks, then close the Kafka clients and Redis; each step is given
        ``shutdown_timeout_s``, and one that takes longer is logged by name and left behind."""
        timeout = self.settings.shutdown_timeout_s
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=timeout)
            for task in stuck:
                log.error(
                    "gateway task %s did not stop within %g s of its cancellation; left behind",
                    task.get_name(),
                    timeout,
                )
        closing: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self.consumer is not None:
            closing.append(("the positions consumer", self.consumer.stop))
        if self.producer is not None:
            closing.append(("the Kafka producer", self.producer.stop))
        if self._store is not None:
            closing.append(("the Redis client", self._store.close))
        for what, close in closing:
            try:
                await asyncio.wait_for(close(), timeout)
            except TimeoutError:
                log.error("closing %s took over %g s; left behind", what, timeout)
            except Exception as exc:  # noqa: BLE001 - stopping goes on whatever one client says
                log.warning("closing %s failed: %r", what, exc)

    async def _on_assign(self, partitions) -> None:
        self.assigned = bool(partitions)

    async def _relay_reconnected(self) -> None:
        """A worker connected to its relay again (it restarted, or dropped this worker): counted, and what went
        by meanwhile is reloaded from Redis."""
        self.metrics.relay_reconnects.inc()
        await self.load_from_redis()

    async def load_from_redis(self) -> int:
        partner_ids = await self.store.partner_ids()
        loaded = 0
        for start in range(0, len(partner_ids), 1000):
            chunk = partner_ids[start : start + 1000]
            for partner_id, raw in zip(chunk, await self.store.positions_json(chunk), strict=True):
                if raw is None:
                    continue  # expired or never written: nothing to show
                position = read_position(raw)
                if isinstance(position, str):
                    log.warning("skipping the stored position of %r: %s", partner_id, position)
                elif self.hub.ingest(position):
                    loaded += 1
        log.info("loaded %d latest positions from Redis", loaded)
        return loaded

    async def _consume(self, consumer: Consumer | RelayConsumer) -> None:
        loop = asyncio.get_running_loop()
        turn_ended = loop.time()
        while True:
            started = loop.time()
            deadline = started + max(POSITIONS_MIN_TURN_S, started - turn_ended)  # a fair share (see above)
            while True:
                try:
                    polled = await consumer.poll(timeout_ms=500, max_records=POSITIONS_PER_POLL)
                except (BrokerError, RelayError) as exc:
                    log.warning("positions reader: %r; retrying", exc)
                    await asyncio.sleep(1)
                    break
                for records in polled.values():
                    now = time.time_ns() // 1_000_000
                    for record in records:
                        self.apply_position(record, now)
                if not polled or loop.time() >= deadline:
                    break
            turn_ended = loop.time()
            await asyncio.sleep(0)  # a poll that finds records buffered returns without letting anything else run

    def apply_position(self, record: Record, now: int) -> bool:
        """Ingest one ``courier-positions`` record; never raises: a bad one is counted, logged and skipped."""
        try:
            position = read_position(record.value)
            if not isinstance(position, str):
                self.hub.ingest(position, now)
                self.metrics.delivery_delay.observe((now - position.accepted_at_ms) / 1000)
                return True
        except Exception as exc:  # a bug applying one record must not stop the map for every courier
            self.metrics.bad_position_records.inc()
            log.exception(
                "applying position record %s/%d@%d failed, skipped: %r",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return False
        self.metrics.bad_position_records.inc()
        log.warning(
            "skipping position record %s/%d@%d: %s", record.topic, record.partition, record.offset, position[:300]
        )
        return False

    async def _tick(self) -> None:
        """A tick every ``tick_ms`` on a fixed cadence: a late wake-up (a busy loop, a busy machine) shortens
        the next wait rather than slowing every tick after it, and ticks missed altogether are skipped."""
        interval = self.settings.tick_ms / 1000
        due = time.monotonic()
        while True:
            self.hub.tick()
            now = time.monotonic()
            ws.cut_off_stalled(self.hub.clients, self.settings.ws_send_timeout_s, now)  # the send timeout
            ws.cut_off_stalled(self.hub.tracking.watchers, self.settings.ws_send_timeout_s, now)
            due += interval
            if due < now:
                due = now + interval - (now - due) % interval  # the next slot of the cadence
            await asyncio.sleep(due - now)

    async def _every_second(self) -> None:
        previous_total: int | None = None
        previous_at = time.monotonic()
        while True:
            await asyncio.sleep(1)
            self.hub.refresh_statuses()
            if self.zones is not None:
                couriers = self.hub.couriers.values()
                self.zone_counts = count_by_zone(self.zones, ((one.position, one.status) for one in couriers))
            try:
                self.counters = await self.store.counters()
                await self.metrics.events.refresh(self.store)  # tracker_events_total{type}
            except (StoreError, OSError) as exc:
                log.warning("reading counters from Redis failed: %r", exc)
            total = sum(self.counters.get(k, 0) for k in c.VERDICT_COUNTERS)
            at = time.monotonic()
            if previous_total is not None:
                self.pings_per_s = max(0, total - previous_total) / (at - previous_at)
            previous_total, previous_at = total, at
            if isinstance(self.consumer, Consumer) and self.metrics.consumer_lag is not None:
                try:
                    self.metrics.consumer_lag.set(await self.consumer.lag())
                except BrokerError as exc:
                    log.debug("lag unavailable: %r", exc)
            self.hub.broadcast(self.stats_frame())

    async def _expire(self) -> None:
        """Every minute (and once at start): forget couriers silent past the TTL, here and in Redis."""
        while True:
            cutoff = expiry.cutoff_ms(self.settings.courier_ttl_s)
            expired = self.hub.expire(cutoff)
            self.metrics.couriers_expired.labels(where="memory").inc(len(expired))
            try:
                swept = await expiry.sweep_redis(self.store, cutoff)
            except (StoreError, OSError) as exc:
                log.warning(
                    "expiring couriers from Redis failed (next sweep in %g s): %r", expiry.SWEEP_INTERVAL_S, exc
                )
                swept = 0
            self.metrics.couriers_expired.labels(where="redis").inc(swept)
            if expired or swept:
                log.info(
                    "expired %d couriers silent for %g s (%d from Redis)",
                    len(expired),
                    self.settings.courier_ttl_s,
                    swept,
                )
            await asyncio.sleep(expiry.SWEEP_INTERVAL_S)

    def stats_frame(self) -> str:
        counts = self.hub.counts()
        return msgspec.json.encode(
            {
                "type": "stats",
                **counts,
                "total_couriers": len(self.hub.couriers),
                "pings_per_s": round(self.pings_per_s, 1),
                "accepted_total": self.counters.get(c.C_ACCEPTED, 0),
                "rejected_total": self.counters.get(c.C_REJECTED, 0),
                "duplicates_total": self.counters.get(c.C_DUPLICATES, 0),
                "zones": self.zone_counts,
            }
        ).decode()


# -- HTTP ----------------------------------------------------------------------------------------------


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


async def api_couriers(request: Request) -> Response:
    hub = request.app.state.gateway.hub
    raw_bbox = request.query_params.get("bbox")
    bbox = None
    if raw_bbox is not None:
        try:
            values = [float(v) for v in raw_bbox.split(",")]
        except ValueError:
            return _error(400, "bbox must be west,south,east,north numbers")
        bbox = protocol.parse_bbox(values)
        if isinstance(bbox, str):
            return _error(400, bbox)
    couriers = []
    for courier_id, courier in hub.couriers.items():
        position = courier.position
        if bbox is None or (bbox[0] <= position.lon <= bbox[2] and bbox[1] <= position.lat <= bbox[3]):
            couriers.append(hub.wire(courier_id))
    return JSONResponse({"couriers": couriers, "count": len(couriers)})


NO_COURIER = "no such courier"
STORE_UNAVAILABLE = "the position store is unavailable; try again"


def _is_partner_id(value: str) -> bool:
    """Whether ``value`` could name a courier (the rule a ping's partner_id passes): anything else, such as a
    lone surrogate from a percent-encoded path, is no courier and never reaches Redis."""
    return 0 < len(value) <= ID_MAX and bool(value.strip()) and value.isprintable()


def _trail_point(point: object) -> list | None:
    """``[ts, lat, lon]`` of a stored trail point, or None for one the page could not draw."""
    if isinstance(point, list) and len(point) >= 3 and all(isinstance(v, (int, float)) for v in point[:3]):
        return point[:3]
    return None


async def api_courier(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    partner_id = request.path_params["partner_id"]
    if not _is_partner_id(partner_id):
        return _error(404, NO_COURIER)
    position = gateway.hub.wire(partner_id)
    try:
        if position is None:
            raw = await gateway.store.position_json(partner_id)
            stored = read_position(raw)
            if isinstance(stored, str):
                if raw is not None:
                    log.warning("the stored position of %r is unreadable: %s", partner_id, stored)
                return _error(404, NO_COURIER)
            gateway.hub.ingest(stored)
            position = gateway.hub.wire(partner_id)
        points = await gateway.store.trail(partner_id)
    except (StoreError, OSError, msgspec.DecodeError) as exc:  # DecodeError: a trail point that is not JSON
        log.warning("reading courier %r from Redis failed: %r", partner_id, exc)
        return _error(503, STORE_UNAVAILABLE)
    trail = [point for point in map(_trail_point, points) if point is not None]
    return JSONResponse({"partner_id": partner_id, "position": position, "trail": trail})


async def api_service_area(request: Request) -> Response:
    return JSONResponse(request.app.state.service_area.geojson)


async def api_config(request: Request) -> Response:
    """What the pages need from the server: map tiles, the tick, and the reject codes (the review page's
    reason list, in the order of models.Reason, the one list of them)."""
    settings = request.app.state.gateway.settings
    return JSONResponse(
        {
            "tile_url": settings.tile_url,
            # The local PMTiles archive (TRACKER_BASEMAP), relative to the page; drawn instead of tile_url.
            "basemap_url": basemap.BASEMAP_PATH.lstrip("/") if settings.basemap else None,
            "tick_ms": settings.tick_ms,
            "reasons": [reason.value for reason in Reason],
            # The pages ask for a viewer token up front when one is needed, offer it on /ws next to the
            # subprotocol, and ask again when /ws closes with the refusal reason (tracker/access.py).
            "viewer_token_required": bool(settings.viewer_token),
            "ws_subprotocol": access.WS_SUBPROTOCOL,
            "ws_token_refused": access.WS_TOKEN_REFUSED,
        }
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    checks = {}
    try:
        checks["redis"] = await asyncio.wait_for(gateway.store.ping(), 2)
    except (TimeoutError, StoreError, OSError):
        checks["redis"] = False
    if gateway.consume:
        # a worker of --workers N reads its positions from the relay: ready while connected to it
        consumer = gateway.consumer
        checks["consumer_assigned"] = consumer.connected if isinstance(consumer, RelayConsumer) else gateway.assigned
    for name in gateway.task_names:
        checks[name] = name not in gateway.tasks_down
    ready = all(checks.values())
    body = {"ready": ready, "checks": checks}
    if gateway.tasks_down:
        body["tasks_down"] = dict(gateway.tasks_down)
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics_endpoint(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    body = gateway.metrics.render(gateway.counters, gateway.hub.counts())
    return Response(body, media_type=metrics.CONTENT_TYPE)


def create_app(settings: Settings, hub: Hub | None = None, *, consume: bool = True) -> Starlette:
    """The gateway app. ``consume=False`` leaves the hub to the caller (tests feed it directly)."""
    gateway = Gateway(settings, hub, consume=consume)
    static_dir = Path(settings.static_dir) if settings.static_dir else DEFAULT_STATIC_DIR

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/api/couriers", api_couriers),
        *history_http.routes(api_courier, _is_partner_id),  # before the next: /api/couriers/{id}/trail
        Route("/api/couriers/{partner_id:path}", api_courier),  # path: an id may hold "/" (sent as %2F)
        Route("/api/service-area", api_service_area),
        Route("/api/config", api_config),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics_endpoint),
        WebSocketRoute("/ws", ws.endpoint),
        WebSocketRoute("/ws/track/{token}", ws.track_endpoint),
        *orders_http.routes(static_dir),
        Route(basemap.BASEMAP_PATH, basemap.serve, methods=["GET", "HEAD"]),
        *dlq_http.routes,
        *events_http.routes,
    ]
    if (static_dir / "index.html").is_file():

        async def review_page(request: Request) -> Response:
            return FileResponse(static_dir / "dlq.html")

        routes.append(Route("/dlq", review_page))
        routes.append(Mount("/", PageFiles(directory=static_dir, html=True), name="static"))
    else:
        log.warning("the map page is not built (%s has no index.html): run `make frontend`", static_dir)

        async def not_built(request: Request) -> Response:
            return PlainTextResponse("The map page is not built: run `make frontend`.", status_code=503)

        routes.append(Route("/", not_built))
    # Host, Origin and viewer-token checks, and the pages' security headers, in front of every route.
    middleware = [Middleware(access.AccessMiddleware, policy=access.Policy.from_settings(settings))]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=middleware)
    app.state.gateway = gateway
    app.state.service_area = load_service_area(settings.service_area_file)
    gateway.zones = Zones.of_area(app.state.service_area)
    return app
