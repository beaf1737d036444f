"""Behaviour specific to the Kafka broker: unreachable clusters and rebalances."""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import KAFKA_TEST_OPTIONS, receive, unique
from support import assert_eventually, require_kafka, while_running

from mq import BrokerUnavailable, Delivery, DeliveryRevoked, KafkaBroker, open_broker
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
