"""``tracker simulate --via-ingest`` on the real ingest, broker and Redis: registered couriers' fixes, posted as
Traccar Client posts them with the token in the URL, all reach the validator, and every one gets the verdict
the simulator made it for (the accounting identity, exactly, with the simulator's own counts)."""

from __future__ import annotations

import pytest

from simulator.config import SimConfig
from simulator.fleet import partner_id_for
from simulator.phones import PhoneProtocol
from simulator.via_ingest import IngestTarget, run_via_ingest
from tests.integration.ingest_helpers import running_ingest
from tests.integration.kafka_helpers import validate_until_idle
from tracker.ingest import devices
from tracker.settings import Settings
from tracker.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.broker_agnostic]

COURIERS = 20


async def test_the_simulator_through_the_front_door_keeps_the_accounting_identity(
    settings: Settings, store: Store
) -> None:
    tokens = {
        courier: await devices.add(store, courier)
        for courier in (partner_id_for(index, "door-") for index in range(COURIERS))
    }
    config = SimConfig(couriers=COURIERS, count=600, burst=True, bad_rate=0.2, seed=20261127, id_prefix="door-")
    async with running_ingest(settings) as (_, client):
        stats = await run_via_ingest(
            settings, config, IngestTarget(str(client.base_url), PhoneProtocol.OSMAND, tokens), client=client
        )
    assert (stats.produced, stats.unsent, stats.retries) == (600, 0, 0)
    assert stats.bad > 60 and stats.duplicates > 0

    totals = await validate_until_idle(settings)
    assert totals["consumed"] == stats.produced
    counters = await store.counters()
    assert counters.get("accepted", 0) == stats.good
    assert counters.get("duplicates", 0) == stats.duplicates
    assert {name: count for name, count in counters.items() if name.startswith("rejected:")} == {
        f"rejected:{reason}": count for reason, count in stats.bad_by_reason.items() if count
    }
