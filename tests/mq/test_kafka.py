"""Behaviour specific to the Kafka broker: unreachable clusters and rebalances."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import KAFKA_TEST_OPTIONS, receive, unique
from support import assert_eventually, require_kafka, while_running

from mq import BrokerUnavailable, Delivery, DeliveryRevoked, KafkaBroker, Message, open_broker
from mq.protocol import Consumer

pytestmark = pytest.mark.kafka


async def test_an_unreachable_cluster_raises_broker_unavailable_quickly() -> None:
    broker = open_broker("kafka://127.0.0.1:1", request_timeout_ms=3000)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish("t", b"x")
    with pytest.raises(BrokerUnavailable):
        await broker.ensure_topic("t")
    with pytest.raises(BrokerUnavailable):
        async with broker.consume("t", "g"):
            pass
    await broker.close()
    assert time.monotonic() - started < 10


async def _collect(consumer: Consumer, into: list[Delivery]) -> None:
    async for delivery in consumer:
        into.append(delivery)


async def test_a_rebalance_revokes_unacked_deliveries_and_redelivers_them() -> None:
    broker = KafkaBroker(require_kafka(), **KAFKA_TEST_OPTIONS)
    topic, group = unique("rebalance"), unique("g")
    try:
        await broker.publish(topic, b"in flight")
        async with broker.consume(topic, group) as first:
            (held,) = await receive(first, 1, ack=False)
            seen: list[Delivery] = []
            async with broker.consume(topic, group) as second:
                tasks = [asyncio.create_task(_collect(c, seen)) for c in (first, second)]
                try:
                    redelivered = assert_eventually(lambda: seen, timeout=40)
                    (again,) = await while_running(redelivered, *tasks)
                    with pytest.raises(DeliveryRevoked):
                        await held.ack()
                    await again.ack()
                finally:
                    for task in tasks:
                        task.cancel()
    finally:
        await broker.close()
    assert again.payload == b"in flight"


async def _committed(broker: KafkaBroker, topic: str, group: str) -> int:
    client = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    await client.start()
    try:
        return int(await client.committed(TopicPartition(topic, 0)) or 0)
    finally:
        await client.stop()


@pytest.mark.parametrize("interval_ms", [0, 300])
async def test_acks_are_committed_in_one_request_per_interval_or_each_at_zero(
    interval_ms: int,
) -> None:
    """At 0 an ack returns once its offset is committed; on a timer, the acks in between share
    one commit request and the offsets are committed within the interval, consumer still open."""
    broker = KafkaBroker(require_kafka(), commit_interval_ms=interval_ms, **KAFKA_TEST_OPTIONS)
    topic, group, count = unique("batched"), unique("g"), 20
    try:
        await broker.publish_batch(topic, [Message(b"%d" % i) for i in range(count)])
        async with broker.consume(topic, group) as consumer:
            deliveries = await receive(consumer, count, ack=False)
            client = consumer._client
            assert client is not None
            requests: list[dict[object, int]] = []
            commit = client.commit

            async def counted(offsets: dict[object, int]) -> None:
                requests.append(dict(offsets))
                await commit(offsets)

            client.commit = counted  # observe the real client's commit requests
            for delivery in deliveries:
                await delivery.ack()
            if interval_ms == 0:
                assert len(requests) == count
                assert await _committed(broker, topic, group) == count
            else:
                assert requests == []  # nothing waits on a commit
                await assert_eventually(lambda: requests, timeout=5)
                assert [list(r.values()) for r in requests] == [[count]]
                assert await _committed(broker, topic, group) == count
    finally:
        await broker.close()


async def test_settled_offsets_not_yet_committed_are_committed_when_the_consumer_closes() -> None:
    broker = KafkaBroker(require_kafka(), commit_interval_ms=60_000, **KAFKA_TEST_OPTIONS)
    topic, group = unique("close-commits"), unique("g")
    try:
        await broker.publish_batch(topic, [Message(b"a"), Message(b"b")])
        async with broker.consume(topic, group) as consumer:
            await receive(consumer, 2)
        assert await _committed(broker, topic, group) == 2
    finally:
        await broker.close()
