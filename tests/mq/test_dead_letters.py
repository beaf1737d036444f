"""Dead letters always fit: a message too large to forward (2 MB against a 1 MB limit) is
dead-lettered once -- what fits of its payload, its size and SHA-256 -- and its offset moves on.
Run on both backends (ids ``inproc`` and ``kafka``)."""

from __future__ import annotations

import hashlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from conftest import Backend, receive, unique

from mq import Broker, Delivery, InProcBroker, KafkaBroker, dead_letter_topic
from mq.browse import browse
from mq.headers import (
    DEAD_LETTER_OVERHEAD_BYTES,
    DEAD_LETTER_REASON,
    DEFAULT_MAX_MESSAGE_BYTES,
    ORIGINAL_DELIVERY_COUNT,
    ORIGINAL_KEY_SIZE,
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    ORIGINAL_TOPIC,
    PAYLOAD_TRUNCATED,
    dead_letter_message,
    message_size,
)

MiB = 1024 * 1024
BIG = 2 * MiB


class _Delivery(Delivery):
    async def ack(self) -> None:
        pass

    async def nack(self, *, requeue: bool = True, reason: str | None = None) -> None:
        pass


def _delivery(payload: bytes, key: str | None = "k", headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return _Delivery(
        topic="tasks", payload=payload, key=key, headers=headers or {}, delivery_count=3
    )


def test_a_dead_letter_copy_fits_the_limit_and_says_what_the_original_was() -> None:
    payload = bytes(range(256)) * (BIG // 256)
    letter = dead_letter_message(
        _delivery(payload, headers={"trace": "t1"}), "poison", max_message_bytes=MiB
    )
    headers = dict(letter.headers)
    assert message_size(letter.payload, letter.key, headers) + DEAD_LETTER_OVERHEAD_BYTES <= MiB
    assert payload.startswith(letter.payload) and len(letter.payload) > MiB - 2048
    assert headers[ORIGINAL_SIZE] == str(BIG)
    assert headers[ORIGINAL_SHA256] == hashlib.sha256(payload).hexdigest()
    assert headers[PAYLOAD_TRUNCATED] == "true"
    assert headers[DEAD_LETTER_REASON] == "poison" and headers[ORIGINAL_TOPIC] == "tasks"
    assert headers[ORIGINAL_DELIVERY_COUNT] == "3" and headers["trace"] == "t1"
    assert letter.key == "k"


def test_what_cannot_fit_is_cut_or_dropped_never_the_letter() -> None:
    small = dead_letter_message(_delivery(b"task"), "r", max_message_bytes=MiB)
    assert small.payload == b"task" and small.headers[PAYLOAD_TRUNCATED] == "false"

    huge_key, huge_header = "k" * 5000, {"big": "h" * 100_000, "small": "s"}
    letter = dead_letter_message(
        _delivery(b"p" * 5000, key=huge_key, headers=huge_header),
        "why " * 1000,
        max_message_bytes=4096,
    )
    headers = dict(letter.headers)
    assert letter.key is None and headers[ORIGINAL_KEY_SIZE] == "5000"
    assert "big" not in headers  # an original header that does not fit is left out
    assert len(headers[DEAD_LETTER_REASON]) == 1000 and headers[DEAD_LETTER_REASON].endswith("...")
    assert message_size(letter.payload, letter.key, headers) + DEAD_LETTER_OVERHEAD_BYTES <= 4096
    assert headers[ORIGINAL_SIZE] == "5000" and headers[PAYLOAD_TRUNCATED] == "true"

    tiny = dead_letter_message(_delivery(b"x" * 100), "r", max_message_bytes=100)
    assert tiny.payload == b"" and tiny.headers[PAYLOAD_TRUNCATED] == "true"


async def test_a_message_too_large_to_forward_is_dead_lettered_once_and_its_offset_moves_on(
    backend: Backend,
) -> None:
    """Two 2 MB messages (a producer with a larger limit sent them) reach a consumer whose
    broker allows 1 MB: one is dead-lettered by hand, one is nacked for redelivery -- which
    it cannot get (it cannot be published again), so it is dead-lettered at once. Both copies
    fit; the message behind them is delivered; every offset is committed."""
    topic, group = unique("too-large"), unique("g")
    producer = backend.open(max_message_bytes=4 * BIG)
    kafka = isinstance(producer, KafkaBroker)
    broker: Broker = backend.open() if kafka else producer
    first, second = b"1" * BIG, b"2" * BIG
    try:
        await producer.publish(topic, first, key="same")
        await producer.publish(topic, second, key="same")
        await producer.publish(topic, b"after", key="same")
        if isinstance(producer, InProcBroker):  # one broker: its limit is lowered afterwards
            producer.max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES
        async with broker.consume(topic, group) as consumer:
            big_one, big_two, after = await receive(consumer, 3, ack=False)
            await broker.dead_letter(big_one, "poison")
            await big_two.nack(requeue=True, reason="worker error")
            await after.ack()
            assert after.payload == b"after" and after.delivery_count == 1
            if isinstance(broker, InProcBroker):
                assert await consumer.lag() == {0: 0}
        letters = await _dead_letters(broker, topic)
        if isinstance(broker, KafkaBroker):
            assert await _committed(broker, topic, group) == 3
    finally:
        await producer.close()
        if broker is not producer:
            await broker.close()

    assert len(letters) == 2
    by_reason = {d[1][DEAD_LETTER_REASON]: d for d in letters}
    for payload, headers in by_reason.values():
        assert message_size(payload, "same", headers) <= DEFAULT_MAX_MESSAGE_BYTES
        assert headers[ORIGINAL_SIZE] == str(BIG) and headers[PAYLOAD_TRUNCATED] == "true"
        assert headers[ORIGINAL_DELIVERY_COUNT] == "1"
    assert by_reason["poison"][1][ORIGINAL_SHA256] == hashlib.sha256(first).hexdigest()
    forwarded = f"too large to redeliver: {BIG} bytes, over max_message_bytes=1048576"
    (payload, headers) = by_reason[f"{forwarded}: worker error"]
    assert headers[ORIGINAL_SHA256] == hashlib.sha256(second).hexdigest()
    assert second.startswith(payload)


async def _dead_letters(broker: Broker, topic: str) -> list[tuple[bytes, dict[str, str]]]:
    if isinstance(broker, KafkaBroker):
        stored = await browse(broker, dead_letter_topic(topic))
        return [(m.payload, dict(m.headers)) for m in stored]
    async with broker.consume(dead_letter_topic(topic), unique("dlq")) as dlq:
        return [(d.payload, dict(d.headers)) for d in await receive(dlq, 2, timeout=5)]


async def _committed(broker: KafkaBroker, topic: str, group: str) -> int | None:
    client = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    await client.start()
    try:
        offset: int | None = await client.committed(TopicPartition(topic, 0))
        return offset
    finally:
        await client.stop()
