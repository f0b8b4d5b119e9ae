"""Records aiokafka's producer refuses to build: header names that are not UTF-8.

The Kafka protocol sends a header name as length-prefixed bytes; clients are expected to write UTF-8 there,
but nothing on the wire or in the broker enforces it, so any producer on the internet can send
``b"\\xff"`` as a header name. aiokafka's batch builder encodes header names with ``str.encode("utf-8")``
and so can't produce one. Here we encode the record batch (format v2, no compression) ourselves and hand it
to aiokafka's sender, which only needs the finished bytes and the producer state fields.

:func:`encode_batch` is pure. :class:`RawBatch` is the small duck-typed object ``AIOKafkaProducer.send_batch``
accepts in place of its own ``BatchBuilder``. The fuzz package may import aiokafka: it is a test tool, not
part of the product (whose only aiokafka importer stays ``tracker/kafka.py``).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.record.util import calc_crc32c

# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes, lastOffsetDelta, baseTimestamp,
# maxTimestamp, producerId, producerEpoch, baseSequence, recordCount (KIP-98 record batch, magic 2)
_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_AT = struct.calcsize(">qiib")
_ATTRIBUTES_AT = _CRC_AT + 4
_LENGTH_END = struct.calcsize(">qi")  # batchLength counts the bytes after this point
_PRODUCER_AT = struct.calcsize(">qiibIhiqq")
_PRODUCER = struct.Struct(">qhi")

RawHeaders = Sequence[tuple[str | bytes, bytes | None]]  # str names are written as UTF-8


def varint(value: int) -> bytes:
    """Kafka's zig-zag varint (signed, as in protobuf's sint64)."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = zigzag & 0x7F
        zigzag >>= 7
        if zigzag:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _nullable(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def _name(name: str | bytes) -> bytes:
    raw = name.encode("utf-8") if isinstance(name, str) else name
    return varint(len(raw)) + raw


def encode_record(offset_delta: int, key: bytes | None, value: bytes | None, headers: RawHeaders) -> bytes:
    body = b"".join(
        (
            b"\x00",  # attributes (unused)
            varint(0),  # timestamp delta: every record of a raw batch has the batch's timestamp
            varint(offset_delta),
            _nullable(key),
            _nullable(value),
            varint(len(headers)),
            *(_name(name) + _nullable(header_value) for name, header_value in headers),
        )
    )
    return varint(len(body)) + body


def encode_batch(
    records: Sequence[tuple[bytes | None, bytes | None, RawHeaders]],
    timestamp_ms: int,
    *,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """One uncompressed record batch holding ``records`` (key, value, headers)."""
    if not records:
        raise ValueError("a record batch holds at least one record")
    body = b"".join(encode_record(i, key, value, headers) for i, (key, value, headers) in enumerate(records))
    header = _HEADER.pack(
        0,
        _HEADER.size - _LENGTH_END + len(body),
        -1,
        2,
        0,
        0,
        len(records) - 1,
        timestamp_ms,
        timestamp_ms,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    return _with_crc(bytearray(header + body))


def _with_crc(batch: bytearray) -> bytes:
    struct.pack_into(">I", batch, _CRC_AT, calc_crc32c(bytes(batch[_ATTRIBUTES_AT:])))
    return bytes(batch)


class RawBatch:
    """A finished batch in the shape aiokafka's sender expects from ``producer.create_batch()``."""

    def __init__(self, data: bytes, record_count: int) -> None:
        self._data = data
        self._count = record_count

    def closed(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def record_count(self) -> int:
        return self._count

    def size(self) -> int:
        return len(self._data)

    def _set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int) -> None:
        batch = bytearray(self._data)
        _PRODUCER.pack_into(batch, _PRODUCER_AT, producer_id, producer_epoch, base_sequence)
        self._data = _with_crc(batch)

    def _build(self) -> bytes:
        return self._data


class RawProducer:
    """acks=all producer of hand-built batches, one partition per call."""

    def __init__(self, bootstrap_servers: str, *, idempotent: bool) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers, client_id="tracker-fuzz-raw", acks="all", enable_idempotence=idempotent
        )

    async def __aenter__(self) -> RawProducer:
        await self._producer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._producer.stop()

    async def partitions(self, topic: str) -> int:
        return len(await self._producer.partitions_for(topic))

    async def send(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes | None, bytes | None, RawHeaders]],
        timestamp_ms: int,
    ) -> asyncio.Future:
        batch = RawBatch(encode_batch(records, timestamp_ms), len(records))
        return await self._producer.send_batch(batch, topic, partition=partition)
