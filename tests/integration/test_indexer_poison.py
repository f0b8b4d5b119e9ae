"""The DLQ indexer survives any record: dead letters of every hostile shape, produced straight to the DLQ
topic of the real broker, are each listed for review with a reason, and the indexer keeps running. The
review index stays within its byte cap."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

import msgspec
import pytest
from starlette.testclient import TestClient

from tests.helpers import eventually
from tests.integration.kafka_helpers import produce_with_raw_header_key
from tracker import constants as c
from tracker.dlq.entry import entry_from_record
from tracker.dlq.index import DlqIndex, Filters
from tracker.dlq.indexer import run_indexer
from tracker.dlq.letter import dead_letter
from tracker.gateway import create_app
from tracker.models import OutRecord, Reason, Record
from tracker.store import Store

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def letter(
    offset: int,
    value: bytes | None,
    reason: Reason,
    detail: str = "rejected",
    headers=(),
    key: bytes | None = b"courier-p",
) -> OutRecord:
    """The dead letter a validator would write for the ping at ``offset`` of location-updates."""
    original = Record("location-updates", 0, offset, int(time.time() * 1000), key, value, tuple(headers))
    return dead_letter(
        original,
        reason,
        detail,
        group="location-validator",
        validator_id="v-test",
        rejected_at_ms=int(time.time() * 1000),
    )


def shapes() -> dict[int, OutRecord]:
    """Original offset -> dead letter; each offset is one hostile shape (the last one is a normal ping)."""
    now = int(time.time() * 1000)
    return {
        1: letter(
            1, b'{"lat": 1' + b"0" * 300 + b', "lon": 77.6, "ts": 1}', Reason.MISSING_PARTNER_ID, "partner_id is absent"
        ),
        2: letter(
            2,
            b'{"partner_id": "\\ud800", "lat": 95, "lon": 1e999, "ts": 1}',
            Reason.INVALID_COORDINATES,
            "lat 95 is outside \u00b190",
            key=b"\xed\xa0\x80",
        ),
        3: letter(
            3,
            b'{"partner_id": "courier-big", "pad": "' + b"p" * 60 * 1024 + b'"}',
            Reason.MALFORMED_PAYLOAD,
            "payload is 61471 bytes",
        ),
        4: letter(4, None, Reason.MALFORMED_PAYLOAD, "record has no value (tombstone)"),
        5: letter(
            5,
            b"{}",
            Reason.MISSING_PARTNER_ID,
            "partner_id is absent",
            headers=[("null", None), ("latin-1", b"caf\xe9"), ("binary", b"\x00\xff\xfe")],
        ),
        6: letter(6, b"[" * 1000 + b"]" * 1000, Reason.MALFORMED_PAYLOAD, "payload is not JSON"),
        7: letter(7, bytes(range(256)) * (4 * 1024), Reason.MALFORMED_PAYLOAD, "payload is 1048576 bytes"),
        8: letter(
            8,
            json.dumps({"partner_id": "courier-ok", "lat": 95, "lon": 77.6, "ts": now}).encode(),
            Reason.INVALID_COORDINATES,
            "lat 95 is outside \u00b190",
            key=b"courier-ok",
        ),
    }


async def index_until(index: DlqIndex, count: int, timeout_s: float = 60.0):
    """The first page of the review index once it holds ``count`` entries."""

    async def listed():
        page = await index.list(Filters(), limit=100)
        return page if page.total >= count else None

    return await eventually(listed, timeout_s=timeout_s, interval_s=0.2, what=f"{count} entries in the review index")


async def test_every_hostile_dead_letter_is_indexed_and_the_indexer_keeps_running(settings, store, producer):
    letters = shapes()
    hostile = [letters[offset] for offset in sorted(letters) if offset != 8]
    await asyncio.gather(*await producer.send_many(settings.dlq_topic, hostile))
    stop = asyncio.Event()
    indexer = asyncio.create_task(run_indexer(settings, store, stop))
    try:
        index = DlqIndex(store)
        await index_until(index, len(hostile))
        # A DLQ record no client can read (a header name that is not UTF-8) reaches the indexer as unreadable.
        unreadable = OutRecord(value=b"{}", key=b"courier-u", headers=(("name-\u00e9", b"v"),))
        await produce_with_raw_header_key(
            settings, settings.dlq_topic, 0, [unreadable], {"name-\u00e9": b"name-\xff\xfe"}
        )
        # None of them stopped it: a normal dead letter after them is indexed too.
        await asyncio.gather(*await producer.send_many(settings.dlq_topic, [letters[8]]))
        page = await index_until(index, len(hostile) + 2)
        assert not indexer.done()
    finally:
        stop.set()
        await asyncio.wait_for(indexer, 30)

    rows = {row.entry.original.offset: row for row in page.rows}
    assert page.total == len(rows) == len(letters) + 1  # + the unreadable one, whose offset is unknown (-1)
    for row in page.rows:
        assert row.entry.reason and row.status == "new"
    expected = {
        1: "missing_partner_id",
        2: "invalid_coordinates",
        3: "malformed_payload",
        4: "malformed_payload",
        5: "missing_partner_id",
        6: "malformed_payload",
        7: "malformed_payload",
        8: "invalid_coordinates",
    }
    assert {offset: rows[offset].entry.reason for offset in expected} == expected
    assert rows[2].entry.partner_id is None and rows[2].entry.lat is None
    assert rows[3].entry.payload_truncated and rows[3].entry.partner_id == "courier-p"  # from the key
    assert dict(rows[5].entry.headers)["null"] == "" and dict(rows[5].entry.headers)["latin-1"] == "caf\ufffd"
    assert rows[5].entry.headers_b64[0] == ("null", None)
    one_mib = bytes(range(256)) * (4 * 1024)
    big = rows[7].entry  # the 1 MiB ping's dead letter went through the real broker, cut to 64 KiB
    assert big.payload_truncated and not big.replay_as_is
    assert (big.payload_size, big.payload_sha256) == (MIB, hashlib.sha256(one_mib).hexdigest())
    normal = rows[8].entry
    assert (normal.partner_id, normal.detail) == ("courier-ok", "lat 95 is outside \u00b190")
    lost = rows[-1].entry
    assert lost.reason == "unknown" and "could not be read" in lost.detail

    # Every one of them is shown by the API the review page reads.
    with TestClient(create_app(settings, consume=False), base_url="http://localhost") as client:
        listing = client.get("/api/dlq", params={"limit": 100})
        assert listing.status_code == 200 and listing.json()["total"] == len(rows)
        details = {}
        for row in page.rows:
            response = client.get(f"/api/dlq/{row.entry.id}")
            assert response.status_code == 200, (row.entry.original.offset, response.text)
            details[row.entry.original.offset] = response.json()
    assert details[8]["payload_json"]["partner_id"] == "courier-ok"
    assert details[1]["payload_json"] is None and "1000000000" in details[1]["payload_text"]  # exact text
    assert details[2]["payload_json"] is None and "\\ud800" in details[2]["payload_text"]
    assert details[7]["payload_truncated"] and details[7]["payload_size"] == MIB
    assert details[7]["payload_shown"] == settings.max_payload_bytes


def sized_entry(settings, offset: int, partner: str):
    """A review entry of a few KiB (its payload) for ``partner``, rejected at ``offset`` ms past a fixed time."""
    value = json.dumps({"partner_id": partner, "lat": 95, "lon": 77.6, "pad": "x" * 2000}).encode()
    record = Record(
        settings.dlq_topic,
        0,
        offset,
        1_795_000_000_000 + offset,
        partner.encode(),
        value,
        ((c.H_REASON, b"invalid_coordinates"), (c.H_ORIGINAL_OFFSET, str(offset).encode())),
    )
    return entry_from_record(record, replay_secret=None, payload_max_bytes=settings.max_payload_bytes)


async def test_the_index_is_capped_by_bytes_and_keeps_the_busiest_couriers_counts(settings):
    size = len(msgspec.json.encode(sized_entry(settings, 0, "courier-m")))
    capped = settings.replace(dlq_index_max_bytes=4 * size + size // 2, dlq_partners_top=2)
    partners = ["courier-m", "courier-n", "courier-a", "courier-a", "courier-a", "courier-n"]
    async with Store(capped) as store:
        index = DlqIndex(store)
        assert index.max_entries == settings.dlq_index_max  # far more than the bytes allow
        for offset, partner in enumerate(partners):
            await index.add([sized_entry(capped, offset, partner)])
        stats = await index.stats(top_partners=10)
        page = await index.list(Filters(), limit=100)
    assert [row.entry.original.offset for row in page.rows] == [5, 4, 3, 2]  # the newest four fit
    assert stats["indexed"] == 4 and stats["indexed_bytes"] == 4 * size
    assert stats["total"] == 6  # counts by reason stay cumulative
    assert stats["by_status"]["new"] == 4
    # Per-courier counts: the busiest two only; a courier that arrives once the list is full gets in.
    assert stats["by_partner"] == [["courier-a", 3], ["courier-n", 2]]


@pytest.mark.broker_agnostic  # a Redis outage; the broker under it is incidental
async def test_the_indexer_waits_out_a_redis_outage_and_goes_on(settings, producer, caplog):
    quick = settings.replace(redis_timeout_s=0.3, retry_backoff_ms=50, retry_max_backoff_ms=300)
    letters = shapes()
    caplog.set_level(logging.INFO, logger="tracker.dlq.indexer")
    async with Store(quick) as store:
        index = DlqIndex(store)
        stop = asyncio.Event()
        indexer = asyncio.create_task(run_indexer(quick, store, stop))
        try:
            await asyncio.gather(*await producer.send_many(quick.dlq_topic, [letters[1]]))
            await index_until(index, 1)
            # Redis refuses writes for 3 s (every script write times out meanwhile); a dead letter arrives.
            await store.redis.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
            await asyncio.gather(*await producer.send_many(quick.dlq_topic, [letters[8]]))
            await asyncio.sleep(2)  # the outage under test: nothing is indexed while it lasts, and the indexer lives
            assert (await index.list(Filters())).total == 1 and not indexer.done()
            page = await index_until(index, 2)
            assert not indexer.done()
        finally:
            stop.set()
            await asyncio.wait_for(indexer, 30)
    assert page.rows[0].entry.partner_id == "courier-ok"
    failures = [r for r in caplog.records if "writing the review index failed" in r.getMessage()]
    assert failures and failures[0].levelno == logging.ERROR
    assert all(r.levelno == logging.WARNING for r in failures[1:])
    assert any("works again" in r.getMessage() for r in caplog.records)
