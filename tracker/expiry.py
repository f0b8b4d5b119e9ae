"""Couriers silent for ``settings.courier_ttl_s`` expire, so that minting new ids cannot grow Redis forever.

The gateway sweeps every :data:`SWEEP_INTERVAL_S` (a supervised task, see gateway.py): its own hub first
(:meth:`tracker.hub.Hub.expire`), then Redis, here. The GEO set lists every courier with a position; it is
walked, partition by partition (each has its own: tracker/store.py), with ZSCAN in chunks of about
:data:`CHUNK` members (:meth:`Store.scan_couriers`), and each chunk goes to
expire_couriers.lua (:meth:`Store.expire_couriers`), which deletes ``pos:<id>`` and ``trail:<id>`` and the GEO
member of each courier whose latest fix is older than the cut-off, atomically (see the script). Several
gateways may sweep at once: expiring twice changes nothing.
"""

from __future__ import annotations

import time

from tracker.store import Store

SWEEP_INTERVAL_S = 60.0
CHUNK = 500  # GEO members per script call: a few milliseconds of Redis time at most


def cutoff_ms(ttl_s: float, now_ms: int | None = None) -> int:
    """Event time before which a courier's latest fix is too old to keep."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return now_ms - round(ttl_s * 1000)


async def sweep_redis(store: Store, cutoff: int, chunk: int = CHUNK) -> int:
    """Expire from Redis every courier whose latest fix is older than ``cutoff`` (epoch ms); returns how many."""
    expired = 0
    for partition in store.partitions:
        cursor = 0
        while True:
            # ZSCAN returns every member present for the whole walk at least once, even while some are removed.
            cursor, partner_ids = await store.scan_couriers(partition, cursor, chunk)
            expired += await store.expire_couriers(partition, cutoff, partner_ids)
            if cursor == 0:
                break
    return expired
