"""``browse``: read every message a topic holds now, without a consumer group.

Reading through a consumer group moves that group's offsets and, on some brokers, waits seconds
for the group to form. Browsing assigns the topic's partitions directly, reads from the start
to the end offsets taken when it began, and changes nothing: what operators need to list a
dead-letter topic. Only a broker that keeps a log (Kafka) can be browsed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from mq.errors import BrokerError
from mq.kafka import KafkaBroker
from mq.kafka_codec import decode_headers, decode_key
from mq.protocol import Broker

__all__ = ["StoredMessage", "browse"]

_FETCH_TIMEOUT_MS = 200


@dataclass(frozen=True)
class StoredMessage:
    """A message as the log holds it; ``id`` (``partition:offset``) names it in its topic."""

    topic: str
    partition: int
    offset: int
    payload: bytes
    key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    timestamp: float | None = None  # seconds since the epoch, as the broker stamped it

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"


async def browse(broker: Broker, topic: str) -> list[StoredMessage]:
    """Every message of ``topic`` in the log now, oldest first per partition (``[]`` when the
    topic does not exist). Raises ``BrokerError`` for a broker that keeps no log."""
    if not isinstance(broker, KafkaBroker):
        raise BrokerError(f"{type(broker).__name__} keeps no log to browse; use a Kafka broker")
    client = AIOKafkaConsumer(**broker._client_options, group_id=None, enable_auto_commit=False)
    async with broker.translate(f"browsing {topic!r}"):
        await client.start()
    try:
        async with broker.translate(f"browsing {topic!r}"):
            return await _read_to_end(client, topic)
    finally:
        await client.stop()


async def _read_to_end(client: AIOKafkaConsumer, topic: str) -> list[StoredMessage]:
    if topic not in await client.topics():
        return []
    partitions = [TopicPartition(topic, p) for p in sorted(client.partitions_for_topic(topic))]
    client.assign(partitions)
    await client.seek_to_beginning(*partitions)
    end = await client.end_offsets(partitions)
    found: list[StoredMessage] = []
    while [tp for tp in partitions if await client.position(tp) < end[tp]]:
        batches = await client.getmany(timeout_ms=_FETCH_TIMEOUT_MS)
        for tp, records in batches.items():
            found += [_stored(r) for r in records if r.offset < end[tp]]
    return sorted(found, key=lambda m: (m.partition, m.offset))


def _stored(record: ConsumerRecord[bytes, bytes]) -> StoredMessage:
    return StoredMessage(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        payload=record.value or b"",
        key=decode_key(record.key),
        headers=decode_headers(record.headers),
        timestamp=record.timestamp / 1000 if record.timestamp else None,
    )
