"""What a simulation run does: :class:`SimConfig`, and how its bad share splits over fault kinds."""

from __future__ import annotations

import math
import re

import msgspec

from simulator.faults import DOOR_SAFE, FaultKind
from simulator.fleet import DEFAULT_ID_PREFIX

ID_PREFIX_MAX = 40
# Courier ids go into URLs, HTTP Basic user names and Redis keys: the prefix keeps to URL-safe characters.
_ID_PREFIX = re.compile(r"[A-Za-z0-9._~-]*")


class SimConfig(msgspec.Struct, frozen=True, kw_only=True):
    couriers: int = 300
    interval_s: float = 1.0  # seconds between two pings of one courier (±10 % per ping)
    duration_s: float | None = None  # span of event time to cover; None: until count or stopped
    count: int | None = None  # stop after this many pings
    bad_rate: float = 0.05  # share of all pings that the validator must reject, split evenly over kinds
    fault_rates: dict[FaultKind, float] = msgspec.field(default_factory=dict)  # fixed shares for some kinds
    duplicate_rate: float = 0.01  # share of all pings that are exact resends of the courier's last good one
    seed: int | None = None  # None: a fresh random seed per run
    burst: bool = False  # no sleeping; event time is virtual and ends at the run's start
    rate: float | None = None  # cap on pings per second sent
    # Real-time mode gathers the pings that fall due within this window into one produce request, like
    # Kafka's linger.ms. Sending each ping the moment it is due made ~200 requests/s at `make run`'s 300
    # pings/s, and that request rate, not the pings, kept the broker, validator and gateway busy
    # (~0.85 of a core in all; ~0.35 with 20 ms: `make bench`, footprint). A ping's ``ts`` is when it fell
    # due, so it reaches the broker up to this much later.
    linger_ms: float = 20.0
    # Courier ids are this prefix and a number (courier-0001, ...): a second simulator with another prefix
    # has couriers of its own.
    id_prefix: str = DEFAULT_ID_PREFIX
    # Pings go through `tracker ingest` (a phone protocol over HTTP), not straight to Kafka: only the fault
    # kinds that mean the same whatever the protocol are drawn (faults.DOOR_SAFE).
    via_ingest: bool = False

    def checked(self) -> SimConfig:
        """Self, or ValueError naming the first problem (one line, worded for the CLI flags)."""
        if self.couriers < 1:
            raise ValueError(f"--couriers must be at least 1, got {self.couriers}")
        if not (math.isfinite(self.interval_s) and self.interval_s >= 0.001):
            raise ValueError(f"--interval must be at least 0.001 seconds, got {self.interval_s}")
        if self.duration_s is not None and not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"--duration must be positive, got {self.duration_s}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"--count must be at least 1, got {self.count}")
        if not (math.isfinite(self.linger_ms) and 0 <= self.linger_ms <= 1000):
            raise ValueError(f"--linger-ms must be between 0 and 1000, got {self.linger_ms:g}")
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"--rate must be positive, got {self.rate}")
        if len(self.id_prefix) > ID_PREFIX_MAX or not _ID_PREFIX.fullmatch(self.id_prefix):
            raise ValueError(
                f"--id-prefix must be at most {ID_PREFIX_MAX} of A-Z a-z 0-9 . _ ~ -, got {self.id_prefix!r}"
            )
        if self.via_ingest:
            for kind in self.fault_rates:
                if kind not in DOOR_SAFE:
                    raise ValueError(
                        f"--fault {kind.value} can't go through the ingest (it sets the courier and parses the "
                        f"fix); kinds that can: {', '.join(kind.value for kind in FaultKind if kind in DOOR_SAFE)}"
                    )
        for name, value in (
            ("--bad-rate", self.bad_rate),
            ("--duplicate-rate", self.duplicate_rate),
            *((f"--fault {kind.value}", rate) for kind, rate in self.fault_rates.items()),
        ):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        bad = sum(fault_shares(self).values())
        # Duplicates follow good pings, so good pings must outnumber them.
        if bad + 2 * self.duplicate_rate > 1:
            raise ValueError(
                f"bad pings ({bad:g}) plus twice the duplicate rate ({self.duplicate_rate:g}) must not exceed 1"
            )
        if self.burst and self.count is None and self.duration_s is None:
            raise ValueError(
                "--burst needs --count or --duration (burst event time ends now, so it must start somewhere)"
            )
        return self


def fault_shares(config: SimConfig) -> dict[FaultKind, float]:
    """Share of all pings per fault kind.

    ``fault_rates`` fixes the share of the kinds it names; what is left of ``bad_rate`` is split evenly over
    the other kinds (nothing is left when the fixed shares already reach it); through the ingest, over the other
    kinds in ``faults.DOOR_SAFE`` only.
    """
    free = [
        kind for kind in FaultKind if kind not in config.fault_rates and (kind in DOOR_SAFE or not config.via_ingest)
    ]
    left = max(0.0, config.bad_rate - sum(config.fault_rates.values()))
    shares = {kind: left / len(free) for kind in free} if free else {}
    shares.update(config.fault_rates)
    return {kind: shares.get(kind, 0.0) for kind in FaultKind}


def burst_rounds(config: SimConfig) -> int:
    """How many pings per courier a burst run covers: its event time spans rounds x interval."""
    candidates = []
    if config.count is not None:
        candidates.append(math.ceil(config.count / config.couriers))
    if config.duration_s is not None:
        candidates.append(math.ceil(config.duration_s / config.interval_s))
    return min(candidates)
