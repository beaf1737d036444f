"""The broker contract, run against every backend (ids ``inproc`` and ``kafka``)."""

from __future__ import annotations

import asyncio
import os
from collections import Counter, defaultdict

import pytest
from conftest import Backend, receive, unique
from support import assert_eventually, while_running

from mq import (
    DEAD_LETTER_REASON,
    ORIGINAL_TOPIC,
    Broker,
    Delivery,
    DeliveryRevoked,
    Message,
    PayloadTooLarge,
    dead_letter_topic,
)
from mq.protocol import Consumer


async def test_messages_with_the_same_key_arrive_in_publish_order(broker: Broker) -> None:
    topic = unique("order")
    await broker.ensure_topic(topic, partitions=3)
    for i in range(10):
        await broker.publish(topic, f"a:{i}".encode(), key="a")
    await broker.publish_batch(
        topic, [Message(f"{k}:{i}".encode(), key=k) for i in range(10) for k in "bc"]
    )

    async with broker.consume(topic, unique("g")) as consumer:
        deliveries = await receive(consumer, 30)

    by_key: defaultdict[str, list[int]] = defaultdict(list)
    for delivery in deliveries:
        key, seq = delivery.payload.decode().split(":")
        assert delivery.key == key
        by_key[key].append(int(seq))
    assert by_key == {k: list(range(10)) for k in "abc"}


async def test_every_group_receives_every_message(broker: Broker) -> None:
    topic = unique("fanout")
    async with (
        broker.consume(topic, unique("g1")) as first,
        broker.consume(topic, unique("g2")) as second,
    ):
        await broker.publish_batch(topic, [Message(str(i).encode()) for i in range(5)])
        got_first, got_second = await asyncio.gather(receive(first, 5), receive(second, 5))

    expected = [str(i).encode() for i in range(5)]
    assert [d.payload for d in got_first] == expected
    assert [d.payload for d in got_second] == expected


async def _ack_into(consumer: Consumer, acked: list[bytes]) -> None:
    async for delivery in consumer:
        try:
            await delivery.ack()
        except DeliveryRevoked:
            continue  # a rebalance took it back: the new owner acks it
        acked.append(delivery.payload)


async def test_consumers_of_one_group_split_the_load(broker: Broker) -> None:
    topic, group = unique("split"), unique("g")
    await broker.ensure_topic(topic, partitions=4)
    published: list[bytes] = []
    acked_a: list[bytes] = []
    acked_b: list[bytes] = []

    async def publish_wave() -> bool:
        wave = [f"m{len(published) + i}".encode() for i in range(16)]
        await broker.publish_batch(topic, [Message(p, key=p.decode()) for p in wave])
        published.extend(wave)
        return bool(acked_a) and bool(acked_b)

    async with broker.consume(topic, group) as a, broker.consume(topic, group) as b:
        tasks = [
            asyncio.create_task(_ack_into(a, acked_a)),
            asyncio.create_task(_ack_into(b, acked_b)),
        ]
        try:  # a consumer task that dies fails the test at once, not at the polling timeout
            await while_running(
                assert_eventually(
                    publish_wave, timeout=40, interval=0.5, message="both consumers got work"
                ),
                *tasks,
            )
            everything_acked = assert_eventually(
                lambda: len(acked_a) + len(acked_b) >= len(published), timeout=30
            )
            await while_running(everything_acked, *tasks)
        finally:
            for task in tasks:
                task.cancel()

    assert Counter(acked_a + acked_b) == Counter(published)  # all of them, each acked once


async def test_messages_of_a_consumer_that_dies_unacked_reach_another(
    backend: Backend, broker: Broker
) -> None:
    topic, group = unique("crash"), unique("g")
    await broker.ensure_topic(topic)
    payloads = [f"job-{i}".encode() for i in range(3)]
    await broker.publish_batch(topic, [Message(p) for p in payloads])

    await backend.crash_consumer(broker, topic, group, count=3)

    async with broker.consume(topic, group) as survivor:
        deliveries = await receive(survivor, 3, timeout=60)
    assert sorted(d.payload for d in deliveries) == payloads


async def test_a_restarted_consumer_gets_only_the_unacked_messages(broker: Broker) -> None:
    topic, group = unique("restart"), unique("g")
    await broker.publish_batch(topic, [Message(f"m{i}".encode()) for i in range(4)])

    async with broker.consume(topic, group) as consumer:
        first = await receive(consumer, 4, ack=False)
        await first[0].ack()
        await first[1].ack()

    await broker.publish(topic, b"m4")
    async with broker.consume(topic, group) as restarted:
        second = await receive(restarted, 3)
    assert [d.payload for d in second] == [b"m2", b"m3", b"m4"]


async def test_next_ready_hands_out_what_is_fetched_without_waiting(broker: Broker) -> None:
    topic, group = unique("ready"), unique("g")
    payloads = [f"m{i}".encode() for i in range(6)]
    await broker.ensure_topic(topic)
    async with broker.consume(topic, group) as consumer:
        assert consumer.next_ready() is None  # nothing fetched yet: None, at once
        await broker.publish_batch(topic, [Message(p, key="k") for p in payloads])
        got = await receive(consumer, 1, ack=False)
        while (ready := consumer.next_ready()) is not None:
            got.append(ready)
        assert len(got) > 1, "the fetch that brought the first brought others"
        got += await receive(consumer, len(payloads) - len(got), ack=False)
        assert [d.payload for d in got] == payloads  # in order, each once
        for delivery in got[:3]:
            await delivery.ack()

    async with broker.consume(topic, group) as restarted:  # settled as any delivery
        again = await receive(restarted, 3)
        assert restarted.next_ready() is None
    assert [d.payload for d in again] == payloads[3:]


async def test_settling_after_the_consumer_closed_raises_delivery_revoked(broker: Broker) -> None:
    topic = unique("revoked")
    await broker.publish(topic, b"late")
    async with broker.consume(topic, unique("g")) as consumer:
        (delivery,) = await receive(consumer, 1, ack=False)
    with pytest.raises(DeliveryRevoked):
        await delivery.ack()
    with pytest.raises(DeliveryRevoked):
        await delivery.nack()


async def _nack_until_dead(consumer: Consumer, counts: list[int], broker: Broker) -> None:
    async for delivery in consumer:
        counts.append(delivery.delivery_count)
        assert delivery.redelivered == (delivery.delivery_count > 1)
        if delivery.payload == b"poison":
            await delivery.nack(reason="cannot parse")
        elif delivery.payload == b"rejected":
            await delivery.nack(requeue=False, reason="unknown workflow")
        else:
            await broker.dead_letter(delivery, "by hand")


async def test_dead_letters_carry_the_reason_and_the_original_topic(backend: Backend) -> None:
    broker = backend.open(max_deliveries=3)
    topic, group = unique("dlq"), unique("g")
    counts: list[int] = []
    try:
        async with (
            broker.consume(topic, group) as consumer,
            broker.consume(dead_letter_topic(topic), group) as dlq,
        ):
            await broker.publish_batch(topic, [Message(p) for p in (b"poison", b"rejected", b"x")])
            task = asyncio.create_task(_nack_until_dead(consumer, counts, broker))
            try:  # an assertion failing inside the task fails the test at once
                dead = {d.payload: d for d in await while_running(receive(dlq, 3), task)}
            finally:
                task.cancel()
    finally:
        await broker.close()

    assert sorted(counts) == [1, 1, 1, 2, 3]  # poison: 3 deliveries; the others one each
    assert "delivery limit of 3" in dead[b"poison"].headers[DEAD_LETTER_REASON]
    assert "cannot parse" in dead[b"poison"].headers[DEAD_LETTER_REASON]
    assert dead[b"rejected"].headers[DEAD_LETTER_REASON] == "unknown workflow"
    assert dead[b"x"].headers[DEAD_LETTER_REASON] == "by hand"
    assert {d.headers[ORIGINAL_TOPIC] for d in dead.values()} == {topic}


async def test_a_payload_over_the_limit_is_refused_and_nothing_is_sent(backend: Backend) -> None:
    broker = backend.open(max_message_bytes=1000)
    topic = unique("big")
    try:
        with pytest.raises(PayloadTooLarge):
            await broker.publish(topic, b"x" * 1001)
        with pytest.raises(PayloadTooLarge):
            await broker.publish_batch(topic, [Message(b"small"), Message(b"x" * 1001)])
        await broker.publish(topic, b"y" * 1000)
        async with broker.consume(topic, unique("g")) as consumer:
            (delivery,) = await receive(consumer, 1)
    finally:
        await broker.close()
    assert delivery.payload == b"y" * 1000


GARBAGE = [b"", b"\xff\xfe\x00\x80", bytes(range(256)), os.urandom(4096), "ünïcødé".encode()]


async def test_payload_bytes_pass_through_untouched(broker: Broker) -> None:
    topic = unique("bytes")
    headers = {"trace": "ü-\u2603", "empty": ""}
    await broker.publish_batch(topic, [Message(p, key="ключ", headers=headers) for p in GARBAGE])

    async with broker.consume(topic, unique("g")) as consumer:
        deliveries: list[Delivery] = await receive(consumer, len(GARBAGE))

    assert [d.payload for d in deliveries] == GARBAGE
    assert all(d.key == "ключ" and d.headers == headers for d in deliveries)
    assert all(d.topic == topic and d.delivery_count == 1 for d in deliveries)
