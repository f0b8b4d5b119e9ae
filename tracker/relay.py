"""The positions relay of ``tracker gateway --workers N``: one process reads ``courier-positions`` and hands
every record to each worker over a Unix socket, so N workers pay for Kafka's client (fetching, parsing each
record: about a third of what following 20,000 pings a second costs a gateway; BENCHMARKS.md, fan-out notes)
once instead of N times.

The relay (:func:`serve`) is a standalone reader of every partition from the latest offsets, as a gateway is.
A worker (:class:`RelayConsumer`, in place of the gateway's Kafka consumer) connects, and from then on gets
every record the relay polls; once connected it loads the latest positions from Redis (the gateway's
``load_from_redis``), as a gateway does once its consumer has its offsets, so it misses nothing in between
(the hub is newer-wins: overlap is harmless). The same holds after any reconnection: a relay that restarts, or
that drops a worker, costs the worker a reload from Redis, never a gap.

A worker that does not read what the relay writes (stopped, or far behind) is dropped once
``TRACKER_RELAY_BUFFER_BYTES`` wait for it: the relay never holds up the other workers nor grows without bound,
and the worker reconnects and reloads. A drop, rather than keeping the latest record of each courier for the
worker until it drains: that was tried and measured worse (BENCHMARKS.md, fan-out notes, session 9). A worker
a second behind, at a ping a second per courier, is owed about one record per courier anyway, so such a
catch-up sheds nothing and comes on top of what already waits in the socket; dropping the connection discards
that and reloads the present once.

Wire: each frame is a 4-byte big-endian length, then a msgpack array of ``[partition, offset, value]`` (value
the record's bytes as the broker has them, or nil): one frame per poll of the relay's consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable

import msgspec

from tracker.kafka import Consumer
from tracker.models import Record
from tracker.settings import Settings
from tracker.signals import install_stop_handlers

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
Relayed = tuple[int, int, bytes | None]  # partition, offset, value
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[Relayed]).decode
RELAY_POLL_RECORDS = 1000  # records per frame at most
CONNECT_RETRY_S = 0.2


class RelayError(Exception):
    """The relay is not there, or went away: the worker's positions reader retries (and then reloads)."""


async def serve(settings: Settings, path: str, ready: asyncio.Event | None = None) -> None:
    """Relay ``courier-positions`` to every worker connected on the Unix socket ``path`` until cancelled."""
    workers: set[asyncio.StreamWriter] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        workers.add(writer)
        log.info("relay: a worker connected (%d)", len(workers))
        try:
            await reader.read()  # a worker never writes: this returns when it goes
        finally:
            workers.discard(writer)
            writer.close()

    consumer = Consumer(settings, [settings.positions_topic], group_id=None, start="latest")
    await consumer.start()
    try:
        await consumer.wait_for_positions()  # before a worker connects: it loads Redis once connected
    except BaseException:
        await consumer.stop()
        raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a socket left by a relay that was killed
    server = await asyncio.start_unix_server(accept, path)
    limit = settings.relay_buffer_bytes
    try:
        if ready is not None:
            ready.set()
        log.info("relay: serving %s on %s", settings.positions_topic, path)
        while True:
            polled = await consumer.poll(timeout_ms=500, max_records=RELAY_POLL_RECORDS)
            batch = [(r.partition, r.offset, r.value) for records in polled.values() for r in records]
            if not batch or not workers:
                continue
            body = _encode(batch)
            frame = HEADER.pack(len(body)) + body
            for writer in list(workers):
                if writer.transport.get_write_buffer_size() > limit:
                    log.warning("relay: a worker has %d bytes waiting; dropped (it reconnects and reloads)", limit)
                    workers.discard(writer)
                    writer.transport.abort()
                else:
                    writer.write(frame)
    finally:
        server.close()
        for writer in workers:
            writer.transport.abort()
        await consumer.stop()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class RelayConsumer:
    """A worker's positions source: the relay's records, polled as from a Kafka consumer (``poll`` returns
    them under one key). ``on_connect`` runs after each connection but the first (which :meth:`start` makes,
    before the gateway loads from Redis itself), before any record of it is handed out."""

    def __init__(
        self,
        path: str,
        topic: str,
        on_connect: Callable[[], Awaitable[object]],
        connect_timeout_s: float,
    ) -> None:
        self.path = path
        self.topic = topic
        self.on_connect = on_connect
        self.connect_timeout_s = connect_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: list[Record] = []

    async def start(self) -> None:
        """Connect, waiting up to ``connect_timeout_s`` for the relay (started with the workers)."""
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                await self._connect()
                return
            except RelayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(CONNECT_RETRY_S)

    async def _connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self.path, limit=2**20)
        except OSError as exc:
            raise RelayError(f"the positions relay at {self.path} is not there: {exc!r}") from exc

    @property
    def connected(self) -> bool:
        return self._reader is not None

    async def stop(self) -> None:
        self._drop()

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None
        self._pending = []

    async def poll(self, timeout_ms: int, max_records: int | None = None) -> dict[tuple[str, int], list[Record]]:
        """The records relayed since the last poll (at most ``max_records``), waiting up to ``timeout_ms`` for
        some; raises :class:`RelayError` when the relay is gone (the next poll reconnects)."""
        if self._reader is None:
            await self._connect()
            try:
                await self.on_connect()
            except BaseException:
                self._drop()  # the next poll connects and reloads again: no records before a reload
                raise
        if not self._pending:
            await self._read_frame(timeout_ms)
        if not self._pending:
            return {}
        take = max_records or len(self._pending)
        out, self._pending = self._pending[:take], self._pending[take:]
        return {(self.topic, -1): out}

    async def _read_frame(self, timeout_ms: int) -> None:
        reader = self._reader
        assert reader is not None
        try:
            async with asyncio.timeout(timeout_ms / 1000):
                header = await reader.readexactly(HEADER.size)
            body = await reader.readexactly(HEADER.unpack(header)[0])
            relayed = _decode(body)
        except TimeoutError:
            return
        except (OSError, asyncio.IncompleteReadError, msgspec.DecodeError) as exc:
            self._drop()
            raise RelayError(f"the positions relay went away: {exc!r}") from exc
        topic = self.topic
        self._pending = [Record(topic, partition, offset, 0, None, value, ()) for partition, offset, value in relayed]


async def run(settings: Settings) -> int:
    """``tracker gateway --relay`` (started by ``--workers N``): serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    install_stop_handlers(asyncio.get_running_loop(), stop)
    relay = asyncio.create_task(serve(settings, settings.gateway_relay))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({relay, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if relay.done():
        relay.result()  # it failed: raise it (the supervisor restarts the relay)
        return 1
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    return 0
