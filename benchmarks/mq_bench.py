"""Publish and consume throughput of each broker (msgs/s). A script, not a test.

Usage: python benchmarks/mq_bench.py [--count N] [--kafka host:port] [--no-kafka]
Publish modes: ``single`` awaits each publish in turn, ``concurrent`` runs one task per message,
``batch`` uses ``publish_batch`` (500 per call). Consumption acks every message in turn; on Kafka
each ack commits, so the consume rate is bound by commit round trips.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mq import Broker, Message, open_broker

KAFKA_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
BATCH = 500


Publisher = Callable[[Broker, str, bytes, int], Awaitable[None]]


async def timed_publish(
    publish: Publisher, broker: Broker, topic: str, payload: bytes, count: int
) -> float:
    started = time.perf_counter()
    await publish(broker, topic, payload, count)
    return count / (time.perf_counter() - started)


async def publish_single(broker: Broker, topic: str, payload: bytes, count: int) -> None:
    for _ in range(count):
        await broker.publish(topic, payload)


async def publish_concurrent(broker: Broker, topic: str, payload: bytes, count: int) -> None:
    """Many tasks publishing one message each (what a pool of workers does)."""
    await asyncio.gather(*(broker.publish(topic, payload) for _ in range(count)))


async def publish_batched(broker: Broker, topic: str, payload: bytes, count: int) -> None:
    for start in range(0, count, BATCH):
        batch = [Message(payload) for _ in range(min(BATCH, count - start))]
        await broker.publish_batch(topic, batch)


def open_for_bench(url: str, count: int) -> Broker:
    """InProc holds every message (no consumer yet while publishing); Kafka gets short timeouts."""
    if url.startswith("inproc"):
        return open_broker(url, maxsize=count + 1)
    return open_broker(url, **KAFKA_OPTIONS)


async def bench(url: str, size: int, count: int) -> list[str]:
    """One row per publish mode: publish rate, then the rate of consuming those messages."""
    broker = open_for_bench(url, count)
    payload = os.urandom(size)
    rows = []
    modes: list[tuple[str, Publisher]] = [
        ("single", publish_single),
        ("concurrent", publish_concurrent),
        ("batch", publish_batched),
    ]
    for mode, publish in modes:
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        await broker.ensure_topic(topic)
        published = await timed_publish(publish, broker, topic, payload, count)
        consumed = await timed_consume(broker, topic, count)
        name = url.split(":")[0]
        rows.append(f"| {name} | {size} B | {mode} | {published:,.0f} | {consumed:,.0f} |")
    await broker.close()
    return rows


async def timed_consume(broker: Broker, topic: str, count: int) -> float:
    """Consume rate, measured from the first delivery (excludes the group join)."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    async with broker.consume(topic, group) as consumer:
        started = 0.0
        received = 0
        async for delivery in consumer:
            await delivery.ack()
            if received == 0:
                started = time.perf_counter()
            received += 1
            if received == count:
                break
    return (count - 1) / max(time.perf_counter() - started, 1e-9)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument("--no-kafka", action="store_true")
    args = parser.parse_args()
    urls = ["inproc://"] + ([] if args.no_kafka else [f"kafka://{args.kafka}"])
    print(f"{args.count} messages per cell; consume acks each message\n")
    print("| broker | payload | publish | publish msgs/s | consume msgs/s |")
    print("| --- | ---: | --- | ---: | ---: |")
    for url in urls:
        for size in (100, 1024):
            for row in await bench(url, size, args.count):
                print(row, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
