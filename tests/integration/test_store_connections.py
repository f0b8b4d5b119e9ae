"""More commands in flight than the process may open connections to Redis: they wait their turn instead of
failing (redis-py's own pools raise MaxConnectionsError at once). Seen as customers' sockets refused with
"the order store is unavailable" while 10,000 of them connected at once (BENCHMARKS.md, tracking)."""

from __future__ import annotations

import asyncio

import pytest

from tracker.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]  # its subject is Redis


async def test_commands_beyond_the_connection_limit_wait_for_a_connection(settings):
    async with Store(settings.replace(redis_max_connections=2)) as store:
        answers = await asyncio.gather(*(store.ping() for _ in range(200)))
        counters = await asyncio.gather(*(store.counters() for _ in range(50)))
    assert answers == [True] * 200
    assert all(isinstance(one, dict) for one in counters)
