"""How many pings a device may send: a token bucket per device. Pure (the caller passes the clock).

Each device's bucket holds up to ``burst`` pings and refills at ``rate`` pings per second; a request of
``cost`` pings takes that many, or is refused with the seconds until it could be taken (the 429's
Retry-After). A request costs at most ``burst``, so that a request larger than the bucket waits for a full
bucket instead of never passing. The buckets of at most ``max_devices`` devices are kept; past that the ones
idle longest are dropped (a dropped bucket comes back full, which only errs toward letting a device through).
"""

from __future__ import annotations

from collections import OrderedDict


class DeviceBuckets:
    def __init__(self, rate: float, burst: int, max_devices: int = 100_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self.max_devices = max_devices
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # device -> (tokens, at)

    def take(self, device: str, cost: int, now: float) -> float:
        """Take ``cost`` pings from ``device``'s bucket at ``now`` (seconds): 0.0 when taken, else the
        seconds to wait before the same request would be taken (nothing is taken then)."""
        cost = min(cost, self.burst)
        tokens, at = self._buckets.pop(device, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate
        self._buckets[device] = (tokens, now)  # most recently used last
        while len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)
