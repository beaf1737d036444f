"""Behaviour specific to the in-process broker."""

from __future__ import annotations

import asyncio

import pytest
from conftest import receive

from mq import BrokerClosed, InProcBroker


async def test_a_slow_consumer_makes_the_producer_wait_and_nothing_is_dropped() -> None:
    broker = InProcBroker(maxsize=2)
    consumer = broker.consume("jobs", "workers")
    published: list[int] = []

    async def produce() -> None:
        for i in range(10):
            await broker.publish("jobs", str(i).encode())
            published.append(i)

    producer = asyncio.create_task(produce())
    for _ in range(20):  # give the producer every chance to run ahead
        await asyncio.sleep(0)
    assert published == [0, 1] and not producer.done()  # blocked on the full queue

    deliveries = await receive(consumer, 10, timeout=5)
    await producer
    assert [int(d.payload) for d in deliveries] == list(range(10))
    await broker.close()


async def test_a_message_published_before_any_group_goes_to_the_first_group() -> None:
    broker = InProcBroker()
    await broker.publish("early", b"kept")
    (delivery,) = await receive(broker.consume("early", "g"), 1, timeout=5)
    assert delivery.payload == b"kept"
    await broker.close()


async def test_redelivery_on_close_counts_towards_the_delivery_limit() -> None:
    broker = InProcBroker(max_deliveries=2)
    await broker.publish("crashy", b"poison")
    dlq = broker.consume("crashy.dlq", "ops")
    for expected_count in (1, 2):
        async with broker.consume("crashy", "g") as consumer:
            (delivery,) = await receive(consumer, 1, ack=False, timeout=5)
            assert delivery.delivery_count == expected_count

    async with broker.consume("crashy", "g") as consumer:
        consumer_task = asyncio.create_task(receive(consumer, 1, timeout=5))
        (dead,) = await receive(dlq, 1, timeout=5)
        consumer_task.cancel()
    assert "delivery limit of 2" in dead.headers["x-dead-letter-reason"]
    await broker.close()


async def test_a_closed_broker_refuses_work_and_ends_iteration() -> None:
    broker = InProcBroker()
    consumer = broker.consume("t", "g")
    waiting = asyncio.create_task(receive(consumer, 1, timeout=5))
    await asyncio.sleep(0)
    await broker.close()
    assert await waiting == []
    with pytest.raises(BrokerClosed):
        await broker.publish("t", b"late")


async def test_a_publisher_blocked_on_a_full_queue_is_released_by_close() -> None:
    broker = InProcBroker(maxsize=1)
    broker.consume("t", "g")
    await broker.publish("t", b"fills the queue")
    blocked = asyncio.create_task(broker.publish("t", b"waits"))
    await asyncio.sleep(0)
    await broker.close()
    with pytest.raises(BrokerClosed):
        await blocked
