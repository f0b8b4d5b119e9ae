"""Prometheus metrics of one ingest process (its ``/metrics``; the house style of tracker/metrics.py)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported)
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tracker.ingest.records import Protocol

# Why a request's credentials were refused: none at all (GPSLogger before 2024 and curl send none until
# challenged), or a token that is unknown, revoked, or another device's.
AUTH_FAILURES = ("missing", "invalid")
# What an authenticated message that holds no fix was (only OwnTracks posts those).
IGNORED = ("empty", "not_json", "encrypted", "not_a_location")


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "tracker_ingest_requests",
            "Requests answered, by protocol and HTTP status",
            labelnames=["protocol", "status"],
            registry=self.registry,
        )
        self.pings = Counter(
            "tracker_ingest_pings_produced",
            "Pings the broker acknowledged, by protocol",
            labelnames=["protocol"],
            registry=self.registry,
        )
        self.ignored = Counter(
            "tracker_ingest_messages_ignored",
            "Authenticated messages that hold no fix, answered 200 and not produced: an empty body, not JSON, "
            "encrypted (OwnTracks' payload encryption is on: fix the app), not a location (a transition, ...)",
            labelnames=["protocol", "kind"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "tracker_ingest_auth_failures",
            "Requests refused with 401, by why",
            labelnames=["reason"],
            registry=self.registry,
        )
        self.produce_latency = Histogram(
            "tracker_ingest_produce_seconds",
            "From a request's pings being queued for the broker to its acknowledgement (acks=all)",
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
            registry=self.registry,
        )
        self.batches = Counter(
            "tracker_ingest_produce_batches",
            "Produce calls: each carries the pings of every request that waited for it",
            registry=self.registry,
        )
        self.batch_pings = Histogram(
            "tracker_ingest_produce_batch_pings",
            "Pings per produce call",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
            registry=self.registry,
        )
        for protocol in Protocol:
            self.pings.labels(protocol=protocol.value)
        for reason in AUTH_FAILURES:
            self.auth_failures.labels(reason=reason)
        for kind in IGNORED:
            self.ignored.labels(protocol=Protocol.OWNTRACKS.value, kind=kind)

    def render(self) -> bytes:
        return generate_latest(self.registry)
