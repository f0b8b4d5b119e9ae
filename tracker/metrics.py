"""Prometheus metrics of the gateway. The pipeline counters come from Redis (read once a second)."""

from __future__ import annotations

from bisect import bisect_left

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from tracker import constants as c
from tracker.events.metrics import EventMetrics
from tracker.models import Reason


class _PipelineCollector:
    """Exposes the validator's counters (kept in Redis) and the hub's courier counts."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.statuses: dict[str, int] = {}

    def collect(self):
        accepted = CounterMetricFamily("tracker_pings_accepted", "Pings accepted by the validators")
        accepted.add_metric([], self.counters.get(c.C_ACCEPTED, 0))
        yield accepted
        duplicates = CounterMetricFamily("tracker_pings_duplicate", "Exact repeats dropped by the validators")
        duplicates.add_metric([], self.counters.get(c.C_DUPLICATES, 0))
        yield duplicates
        rejected = CounterMetricFamily("tracker_pings_rejected", "Pings dead-lettered, by reason", labels=["reason"])
        for reason in Reason:
            rejected.add_metric([reason.value], self.counters.get(c.C_REJECTED_BY + reason.value, 0))
        yield rejected
        statuses = GaugeMetricFamily("tracker_couriers", "Couriers known to this gateway, by status", labels=["status"])
        for status, count in self.statuses.items():
            statuses.add_metric([status], count)
        yield statuses


class CheapHistogram:
    """A histogram for a hot path: ``observe`` is a bisection and two additions (prometheus_client's takes a
    lock per bucket and per sum, ~2-8 µs a call: 4-15 % of a core at the 20,000 positions a second a gateway
    reads). Exposed in Prometheus's histogram form, like prometheus_client's (without ``_created``). One event
    loop observes it, so nothing is locked."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = list(buckets)
        self.counts = [0] * (len(buckets) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self):
        cumulative, running = [], 0
        for bound, count in zip([*map(floatToGoString, self.bounds), "+Inf"], self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        family = HistogramMetricFamily(self.name, self.documentation, buckets=cumulative, sum_value=self.sum)
        yield family


class CheapCounter:
    """A counter for a hot path: ``inc`` is one addition (prometheus_client's takes a lock: 3 % of a gateway
    worker's CPU for one ``inc`` per frame at 2,500 frames a second). Exposed as prometheus_client's counters
    are (``NAME_total``, without ``_created``). One event loop counts it, so nothing is locked."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def collect(self):
        family = CounterMetricFamily(self.name, self.documentation)
        family.add_metric([], self.value)
        yield family


# The limits a WebSocket client can be closed by: the label values of tracker_ws_limit_closes.
LIMIT_CLIENTS = "clients"  # max_clients
LIMIT_PER_ADDRESS = "per_address"  # ws_max_per_address
LIMIT_MESSAGES = "messages"  # ws_messages_per_s, ws_messages_burst
WS_LIMITS = (LIMIT_CLIENTS, LIMIT_PER_ADDRESS, LIMIT_MESSAGES)


class GatewayMetrics:
    def __init__(self, report_lag: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.pipeline = _PipelineCollector()
        self.registry.register(self.pipeline)
        self.events = EventMetrics()  # tracker_events_total{type}, refreshed from Redis once a second
        self.registry.register(self.events)
        self.frames_sent = CheapCounter("tracker_ws_frames_sent", "WebSocket frames sent")  # once per frame
        self.registry.register(self.frames_sent)
        self.clients = Gauge("tracker_ws_clients", "Connected WebSocket clients", registry=self.registry)
        self.slow_disconnects = Counter(
            "tracker_ws_slow_disconnects", "Clients closed for not draining (1013)", registry=self.registry
        )
        self.ws_limit_closes = Counter(
            "tracker_ws_limit_closes",
            "WebSocket clients closed by a limit: clients (max_clients, 1013), per_address (1013) or messages "
            "(the message rate, 1008)",
            labelnames=["limit"],
            registry=self.registry,
        )
        for limit in WS_LIMITS:
            self.ws_limit_closes.labels(limit=limit)
        self.bad_position_records = Counter(
            "tracker_bad_position_records",
            "courier-positions records the gateway could not decode or apply (skipped and logged)",
            registry=self.registry,
        )
        self.relay_reconnects = Counter(
            "tracker_relay_reconnects",
            "Times this worker of `tracker gateway --workers N` connected to its positions relay again (the relay "
            "restarted, or dropped the worker for falling behind), each with a reload of the latest positions from "
            "Redis",
            registry=self.registry,
        )
        self.task_restarts = Counter(
            "tracker_gateway_task_restarts",
            "Background tasks of this gateway restarted after they failed or ended",
            labelnames=["task"],
            registry=self.registry,
        )
        self.couriers_expired = Counter(
            "tracker_couriers_expired",
            "Couriers expired after courier_ttl_s without a fix: from this gateway's "
            "memory, and from Redis by this gateway's sweeps",
            labelnames=["where"],
            registry=self.registry,
        )
        for where in ("memory", "redis"):
            self.couriers_expired.labels(where=where)
        self.delivery_delay = CheapHistogram(  # observed once per position read: the hot path
            "tracker_position_delivery_delay_seconds",
            "From the validator accepting a ping to this gateway reading its position",
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12),
        )
        self.registry.register(self.delivery_delay)
        # Only where the broker's end offsets are true (not on the embedded Tansu): a wrong lag is worse
        # than none.
        self.consumer_lag = (
            Gauge(
                "tracker_positions_consumer_lag",
                "Records of courier-positions not yet read by this gateway",
                registry=self.registry,
            )
            if report_lag
            else None
        )

    def render(self, counters: dict[str, int], statuses: dict[str, int]) -> bytes:
        self.pipeline.counters = counters
        self.pipeline.statuses = statuses
        return generate_latest(self.registry)
