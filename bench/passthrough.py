"""The baseline: a bare aiokafka consume -> produce -> commit loop, no validation, no Redis.

``--mode send`` produces each record with ``producer.send`` (the idiomatic loop); ``--mode batch`` uses the
same per-partition batch API the validator uses, the fastest pass-through aiokafka offers. Prints one JSON
line like ``tracker validate --until-idle``: records consumed and the busy time they took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder


async def main(args: argparse.Namespace) -> None:
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=args.batch,
        fetch_max_wait_ms=100,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5, max_batch_size=1024 * 1024)
    await producer.start()
    await consumer.start()
    partitions = len(await producer.partitions_for(args.out))
    consumed = 0
    busy_since = None
    quiet_since = time.monotonic()
    try:
        while True:
            polled = await consumer.getmany(timeout_ms=200, max_records=args.batch)
            if not polled:
                if time.monotonic() - quiet_since >= args.until_idle:
                    break
                continue
            busy_since = busy_since or time.monotonic()
            futures = []
            if args.mode == "send":
                futures.extend(
                    [
                        await producer.send(args.out, key=r.key, value=r.value, headers=list(r.headers))
                        for records in polled.values()
                        for r in records
                    ]
                )
            else:
                batches: dict[int, BatchBuilder] = {}
                for records in polled.values():
                    for r in records:
                        part = (murmur2(r.key) & 0x7FFFFFFF) % partitions
                        batch = batches.get(part) or batches.setdefault(part, producer.create_batch())
                        if batch.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers)) is None:
                            batch.close()
                            futures.append(await producer.send_batch(batch, args.out, partition=part))
                            batch = batches[part] = producer.create_batch()
                            batch.append(key=r.key, value=r.value, timestamp=None, headers=list(r.headers))
                for part, batch in batches.items():
                    batch.close()
                    futures.append(await producer.send_batch(batch, args.out, partition=part))
            await asyncio.gather(*futures)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in polled.items()})
            consumed += sum(len(records) for records in polled.values())
            quiet_since = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    busy_s = (quiet_since - busy_since) if busy_since else 0.0
    print(json.dumps({"consumed": consumed, "busy_ms": round(busy_s * 1000)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--mode", choices=("send", "batch"), default="send")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--until-idle", type=float, default=2.0)
    asyncio.run(main(parser.parse_args()))
