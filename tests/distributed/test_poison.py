"""Poison on the task topic, on both backend pairs: a 2 MB message (over the broker's 1 MB
limit, so its whole copy could never be dead-lettered) and a task whose execution id holds a
NUL byte. Each is dead-lettered once, on its first delivery, with a precise reason, its size
and SHA-256; its offset moves on; the worker keeps running the tasks behind it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from scenario_support import TANSU_OPTIONS, RuntimeFactory, blueprint, plain
from support import assert_eventually, assert_never, require_kafka

from distributed import Runtime
from mq import InProcBroker, KafkaBroker, dead_letter_topic
from mq.browse import browse
from mq.headers import (
    DEAD_LETTER_REASON,
    DEFAULT_MAX_MESSAGE_BYTES,
    ORIGINAL_DELIVERY_COUNT,
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    PAYLOAD_TRUNCATED,
    message_size,
)
from orchestration import Engine

WAIT = 30.0
BIG = 2 * 1024 * 1024


@dataclass
class Letter:
    payload: bytes
    key: str | None
    headers: dict[str, str]


async def publish_oversized(runtime: Runtime, topic: str, payload: bytes, key: str) -> None:
    """Put ``payload`` on ``topic`` as a producer with a larger message limit would."""
    broker = runtime.broker
    if isinstance(broker, InProcBroker):  # one process: lift this broker's limit for one publish
        limit, broker.max_message_bytes = broker.max_message_bytes, 4 * BIG
        try:
            await broker.publish(topic, payload, key=key)
        finally:
            broker.max_message_bytes = limit
        return
    producer = KafkaBroker(require_kafka(), max_message_bytes=4 * BIG, **TANSU_OPTIONS)
    try:
        await producer.publish(topic, payload, key=key)
    finally:
        await producer.close()


class DeadLetters:
    """Reads a runtime's dead-letter topic: browsing the log on Kafka, a group in process."""

    def __init__(self, runtime: Runtime, topic: str) -> None:
        self.broker = runtime.broker
        self.topic = dead_letter_topic(topic)
        self.seen: list[Letter] = []
        self._consumer = (
            self.broker.consume(self.topic, "dlq-reader")
            if isinstance(self.broker, InProcBroker)
            else None
        )

    async def read(self) -> list[Letter]:
        if self._consumer is None:
            stored = await browse(self.broker, self.topic)
            self.seen = [Letter(m.payload, m.key, dict(m.headers)) for m in stored]
            return self.seen
        while True:
            try:
                delivery = await asyncio.wait_for(self._consumer.__anext__(), 0.05)
            except TimeoutError:
                return self.seen
            await delivery.ack()
            self.seen.append(Letter(delivery.payload, delivery.key, dict(delivery.headers)))

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.close()


async def settled(runtime: Runtime, topic: str, group: str) -> bool:
    """Every task message is settled: the group's committed offsets reach the end of every
    partition (Kafka), or no delivery is waiting or unacked (in process)."""
    broker = runtime.broker
    if isinstance(broker, InProcBroker):
        lags = [await c.lag() for c in broker.consumers() if c.topic == topic]
        return bool(lags) and all(sum(lag.values()) == 0 for lag in lags)
    assert isinstance(broker, KafkaBroker)
    client = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    await client.start()
    try:
        count: int = runtime.engine.queue.partitions  # type: ignore[attr-defined]
        ends = await client.end_offsets([TopicPartition(topic, p) for p in range(count)])
        committed = {tp: await client.committed(tp) or 0 for tp in ends}
        return all(committed[tp] >= end for tp, end in ends.items())
    finally:
        await client.stop()


async def test_a_2mb_message_and_a_nul_id_are_dead_lettered_once_and_the_tasks_behind_run(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("after-poison", plain("a", "b"), [("a", "b")]))
    runtime = make_runtime(engine)
    topic: str = runtime.engine.queue.topic  # type: ignore[attr-defined]
    assert runtime.pool is not None
    group = runtime.pool.config.worker.group
    eid = f"after-poison-{uuid.uuid4().hex[:8]}"  # its tasks share the poison's partition
    poison = bytes(range(256)) * (BIG // 256)
    letters = DeadLetters(runtime, topic)
    async with runtime:
        await publish_oversized(runtime, topic, poison, key=eid)
        nul_task = json.dumps({"execution_id": "bad\x00id", "node_id": "a"}).encode()
        await runtime.broker.publish(topic, nul_task, key="bad\x00id")
        await runtime.engine.execute_async("after-poison", {}, execution_id=eid)
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
        assert snapshot.status == "completed"

        async def at_least(count: int) -> list[Letter] | None:
            seen = await letters.read()
            return seen if len(seen) >= count else None

        found = await assert_eventually(
            lambda: at_least(2), timeout=WAIT, message="two dead letters"
        )
        await assert_never(
            lambda: at_least(3), during=1.0, message="a poison message was dead-lettered twice"
        )
        await assert_eventually(
            lambda: settled(runtime, topic, group), timeout=WAIT, message="offsets moved on"
        )
        await letters.close()

    by_size = {int(letter.headers[ORIGINAL_SIZE]): letter for letter in found}
    big, nul = by_size[BIG], by_size[min(by_size)]

    assert "over the task size limit" in big.headers[DEAD_LETTER_REASON]
    assert big.headers[ORIGINAL_DELIVERY_COUNT] == "1"
    assert big.headers[ORIGINAL_SHA256] == hashlib.sha256(poison).hexdigest()
    assert big.headers[PAYLOAD_TRUNCATED] == "true"
    assert poison.startswith(big.payload) and len(big.payload) > BIG // 4
    assert message_size(big.payload, big.key, big.headers) <= DEFAULT_MAX_MESSAGE_BYTES

    reason = nul.headers[DEAD_LETTER_REASON]
    assert "invalid execution id 'bad\\x00id'" in reason and "NUL" in reason, reason
    assert nul.headers[ORIGINAL_DELIVERY_COUNT] == "1"  # not 10 deliveries
    assert nul.headers[PAYLOAD_TRUNCATED] == "false"
