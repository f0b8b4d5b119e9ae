"""The worker's side of the positions relay (tracker/relay.py), against a stand-in relay on a Unix socket:
records come as the relay framed them, a reload from Redis runs on every connection before any record of it,
and a reload that fails leaves the worker unconnected, so the next poll connects and reloads again."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tracker.relay import HEADER, RelayConsumer, RelayError


async def _stand_in(path: str, batches: list[list[tuple[int, int, bytes | None]]]) -> asyncio.AbstractServer:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for batch in batches:
            body = msgspec.msgpack.encode(batch)
            writer.write(HEADER.pack(len(body)) + body)
        await writer.drain()
        await reader.read()  # until the worker goes

    return await asyncio.start_unix_server(serve, path)


async def test_every_connection_reloads_before_its_records_and_a_failed_reload_is_retried(tmp_path):
    path = str(tmp_path / "relay.sock")
    server = await _stand_in(path, [[(0, 5, b'{"id":"a"}'), (1, 7, None)], [(2, 9, b"x")]])
    reloads: list[int] = []

    async def reload() -> None:
        reloads.append(len(reloads))
        if len(reloads) == 1:
            raise OSError("redis went away")

    consumer = RelayConsumer(path, "t.courier-positions", reload, connect_timeout_s=5)
    try:
        await consumer.start()  # the first connection: the gateway loads from Redis itself after start()
        polled = await consumer.poll(timeout_ms=2000, max_records=1)
        [(key, [record])] = polled.items()
        assert key == ("t.courier-positions", -1) and (record.partition, record.offset, record.value) == (
            0,
            5,
            b'{"id":"a"}',
        )
        [[record]] = (await consumer.poll(timeout_ms=2000)).values()
        assert (record.offset, record.value) == (7, None)
        assert reloads == []
        await consumer.stop()  # as when the relay drops it: the next poll connects again
        with pytest.raises(OSError, match="redis went away"):
            await consumer.poll(timeout_ms=2000)
        assert reloads == [0] and not consumer.connected
        [[first, *_]] = (await consumer.poll(timeout_ms=2000)).values()
        assert reloads == [0, 1] and first.offset == 5  # reloaded again, then the new connection's records
    finally:
        await consumer.stop()
        server.close()
        await server.wait_closed()


async def test_a_relay_that_is_not_there_is_a_relay_error(tmp_path):
    consumer = RelayConsumer(str(tmp_path / "none.sock"), "t", lambda: asyncio.sleep(0), connect_timeout_s=0.3)
    with pytest.raises(RelayError, match="not there"):
        await consumer.start()
