"""The source of ``queue_lag``: a consumer's lag, by partition, on both brokers: messages the
group has not acked yet (waiting, or delivered and unsettled)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from support import KAFKA_OPTIONS, assert_eventually, require_kafka

from mq import Broker, Consumer, Delivery, open_broker


@pytest.fixture(params=["inproc", "kafka"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[Broker]:
    if request.param == "inproc":
        opened = open_broker("inproc://")
    else:
        opened = open_broker(f"kafka://{require_kafka()}", **KAFKA_OPTIONS)
    yield opened
    await opened.close()


async def total_lag(consumer: Consumer) -> int:
    return sum((await consumer.lag()).values())


async def test_lag_counts_what_the_group_has_not_acked(broker: Broker) -> None:
    topic = f"lag-{uuid.uuid4().hex[:10]}"
    await broker.ensure_topic(topic, 2)
    for n in range(6):
        await broker.publish(topic, b"task", key=f"execution-{n}")
    async with broker.consume(topic, f"{topic}.group") as consumer:
        first: Delivery = await consumer.__anext__()
        await assert_eventually(lambda: _equals(consumer, 6), message="6 unacked", timeout=30)
        await first.ack()
        await assert_eventually(lambda: _equals(consumer, 5), message="5 unacked")
        for _ in range(5):
            await (await consumer.__anext__()).ack()
        await assert_eventually(lambda: _equals(consumer, 0), message="all acked")
        assert all(partition in (0, 1) for partition in await consumer.lag())


async def _equals(consumer: Consumer, expected: int) -> bool:
    return await total_lag(consumer) == expected


async def test_in_process_consumers_of_one_group_report_their_shared_queue_once() -> None:
    broker = open_broker("inproc://")
    for _ in range(3):
        await broker.publish("tasks", b"task")
    one, two = broker.consume("tasks", "workers"), broker.consume("tasks", "workers")
    delivery = await one.__anext__()
    assert await one.lag() == await two.lag() == {0: 3}
    await delivery.ack()
    assert await two.lag() == {0: 2}
    await broker.close()
