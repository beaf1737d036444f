"""``KafkaBroker``: the ``Broker`` protocol on Apache Kafka (or any Kafka-protocol broker).

* Publishing goes through one lazily started ``AIOKafkaProducer`` (``acks="all"``, batching with
  ``linger_ms``); keys pick the partition with the default partitioner, so order holds per key.
* Consumers (``KafkaConsumer``) never auto-commit: an offset is committed after ``ack``/``nack``,
  contiguously per partition, in batches every ``commit_interval_ms`` (0: inside each ack).
  A nack republishes the message with ``x-delivery-count`` + 1 (or dead-letters it at the
  limit, or when it is too large to publish again), so a bad message never blocks its
  partition. A dead-letter copy always fits ``max_message_bytes`` (the
  payload is cut to fit, with the original's size and SHA-256 in headers).
* Redeliveries caused by a crash or a rebalance come from the log and keep their delivery count:
  only nacks increment it.
* An unreachable cluster raises ``BrokerUnavailable`` within ``request_timeout_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mq.errors import BrokerClosed, BrokerError
from mq.headers import (
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_MESSAGE_BYTES,
    check_payload_size,
    dead_letter_message,
    dead_letter_topic,
)
from mq.kafka_codec import encode_headers, encode_key
from mq.kafka_consumer import KafkaConsumer, KafkaDelivery
from mq.kafka_errors import translate_errors
from mq.protocol import Delivery, Message

__all__ = ["KafkaBroker"]

logger = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
_REQUEST_OVERHEAD_BYTES = 64 * 1024


class KafkaBroker:
    """A ``Broker`` on Kafka; connections open lazily, on first use."""

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str],
        *,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        linger_ms: int = 0,
        max_batch_size: int = 256 * 1024,
        request_timeout_ms: int = 15_000,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_poll_interval_ms: int = 300_000,
        fetch_max_wait_ms: int = 500,
        commit_interval_ms: int = 100,
        replication_factor: int = 1,
        auto_create_topics: bool = True,
        client_id: str = "flowloom",
        security_protocol: str = "PLAINTEXT",
        ssl_context: Any = None,
        sasl_mechanism: str | None = None,
        sasl_plain_username: str | None = None,
        sasl_plain_password: str | None = None,
    ) -> None:
        """Options not about delivery are passed through to aiokafka under the same names.

        ``linger_ms`` (aiokafka's) delays a send to fill batches. Concurrent publishes are batched
        even at 0 (records queue up while a request is in flight), and a publisher awaiting each
        message pays the full linger on every call, hence the default of 0.
        ``fetch_max_wait_ms`` bounds a fetch's long poll. Kafka answers as soon as data arrives;
        some Kafka-protocol brokers (Tansu) hold the answer for part of this wait, so tests and
        benchmarks on them set it low.
        ``commit_interval_ms``: settled offsets are committed on this timer, one request for
        every ack in between (a crash re-delivers at most that much, which consumers of an
        at-least-once queue drop as duplicates); 0 commits inside each ack.
        ``auto_create_topics`` creates a topic (``replication_factor``, one partition) the first
        time this broker publishes to or consumes from it, unless it exists.
        """
        if isinstance(bootstrap_servers, str):
            bootstrap_servers = bootstrap_servers.split(",")
        self.bootstrap = ",".join(bootstrap_servers)
        self.max_deliveries = max_deliveries
        self.max_message_bytes = max_message_bytes
        self.request_timeout_ms = request_timeout_ms
        self.commit_interval_ms = commit_interval_ms
        self.consumer_options: dict[str, Any] = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "fetch_max_wait_ms": fetch_max_wait_ms,
        }
        self._producer_options: dict[str, Any] = {
            "linger_ms": linger_ms,
            "max_batch_size": max_batch_size,
        }
        self._replication_factor = replication_factor
        self._auto_create_topics = auto_create_topics
        self._client_options = _client_options(
            list(bootstrap_servers),
            client_id=client_id,
            request_timeout_ms=request_timeout_ms,
            security_protocol=security_protocol,
            ssl_context=ssl_context,
            sasl_mechanism=sasl_mechanism,
            sasl_plain_username=sasl_plain_username,
            sasl_plain_password=sasl_plain_password,
        )
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._known_topics: set[str] = set()
        self._consumers: set[KafkaConsumer] = set()
        self._closed = False

    def __repr__(self) -> str:
        """Hosts, and the SASL user when there is one; never the password."""
        user = self._client_options.get("sasl_plain_username")
        return f"<KafkaBroker {self.bootstrap}{f' as {user!r}' if user else ''}>"

    # -- plumbing shared with the consumer -------------------------------------------------

    def translate(
        self, action: str, *, bounded: bool = True
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Error translation for ``action``, within ``request_timeout_ms`` when ``bounded``."""
        seconds = self.request_timeout_ms / 1000 if bounded else None
        return translate_errors(action, self.bootstrap, seconds)

    def new_lock(self) -> asyncio.Lock:
        return asyncio.Lock()

    def forget(self, consumer: KafkaConsumer) -> None:
        self._consumers.discard(consumer)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosed(f"{self!r} is closed")

    async def start_consumer_client(
        self, topic: str, group: str, listener: ConsumerRebalanceListener
    ) -> AIOKafkaConsumer:
        """A started aiokafka consumer of ``topic`` in ``group``, committing only on demand."""
        self._check_open()
        await self._ensure_known(topic)
        client = AIOKafkaConsumer(
            **self._client_options,
            **self.consumer_options,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        # Subscribing after start: start() then only connects (bounded by request_timeout_ms);
        # the group join, which may wait out a dead member's session, runs in the background.
        await _start(client, self.translate(f"connecting consumer of {topic!r}"))
        client.subscribe([topic], listener=listener)
        return client

    async def _get_producer(self) -> AIOKafkaProducer:
        self._check_open()
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    self._producer = await self._start_producer()
        return self._producer

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            **self._client_options,
            **self._producer_options,
            acks="all",
            enable_idempotence=False,
            max_request_size=self.max_message_bytes + _REQUEST_OVERHEAD_BYTES,
        )
        await _start(producer, self.translate("connecting producer"))
        return producer

    async def _get_admin(self) -> AIOKafkaAdminClient:
        self._check_open()
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self._client_options)
                await _start(admin, self.translate("connecting admin client"))
                self._admin = admin
        return self._admin

    async def _ensure_known(self, topic: str) -> None:
        if self._auto_create_topics and topic not in self._known_topics:
            await self.ensure_topic(topic)

    # -- the Broker protocol -----------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish one message and wait for the cluster's acknowledgement."""
        await self.publish_batch(topic, [Message(payload, key, headers or {})])

    async def publish_batch(self, topic: str, messages: Sequence[Message]) -> None:
        """Publish messages in order (per key) and wait until all are acknowledged."""
        for message in messages:
            check_payload_size(message.payload, self.max_message_bytes)
        producer = await self._get_producer()
        await self._ensure_known(topic)
        async with self.translate(f"publishing to {topic!r}", bounded=False):
            futures = [
                await producer.send(
                    topic, m.payload, key=encode_key(m.key), headers=encode_headers(m.headers)
                )
                for m in messages
            ]
            await asyncio.gather(*futures)

    def consume(self, topic: str, group: str) -> KafkaConsumer:
        """A consumer of ``topic`` in ``group``; it connects on ``async with`` or first fetch."""
        self._check_open()
        consumer = KafkaConsumer(self, topic, group)
        self._consumers.add(consumer)
        return consumer

    async def ensure_topic(self, name: str, partitions: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions unless it exists."""
        admin = await self._get_admin()
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=self._replication_factor
        )
        async with self.translate(f"creating topic {name!r}"):
            response = await admin.create_topics([topic])
        for error in response.topic_errors:
            code, message = error[1], error[2] if len(error) > 2 else ""
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise BrokerError(f"creating topic {name!r} failed: error {code} {message}")
        self._known_topics.add(name)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish ``delivery`` to its dead-letter topic with ``reason``, then ack it."""
        if not isinstance(delivery, KafkaDelivery):
            raise TypeError(f"not a delivery of this broker: {delivery!r}")
        if delivery.settled:
            return
        delivery.check_live()
        await self.publish_dead_letter(delivery, reason)
        await delivery.ack()

    async def publish_dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish the dead-letter copy of ``delivery`` (does not settle it). The copy always
        fits ``max_message_bytes`` (``mq.headers.dead_letter_message``: the payload is cut
        to fit; its original size and SHA-256 go along), so a message too large to forward
        is still dead-lettered, once, and its offset moves on."""
        letter = dead_letter_message(delivery, reason, max_message_bytes=self.max_message_bytes)
        logger.warning(
            "dead-lettering a message of %r (%d bytes%s): %s",
            delivery.topic,
            len(delivery.payload),
            ", truncated" if len(letter.payload) < len(delivery.payload) else "",
            reason,
        )
        await self.publish_batch(dead_letter_topic(delivery.topic), [letter])

    async def close(self) -> None:
        """Close consumers (unacked deliveries go back to their groups), flush and disconnect."""
        if self._closed:
            return
        for consumer in list(self._consumers):
            await consumer.close()
        self._closed = True
        producer, admin, self._producer, self._admin = self._producer, self._admin, None, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()


def _client_options(bootstrap_servers: list[str], **options: Any) -> dict[str, Any]:
    """aiokafka connection options, leaving out the unset ones."""
    return {"bootstrap_servers": bootstrap_servers} | {
        k: v for k, v in options.items() if v is not None
    }


async def _start(client: Any, guard: contextlib.AbstractAsyncContextManager[None]) -> None:
    """Start an aiokafka client under ``guard``; stop it again if starting fails."""
    try:
        async with guard:
            await client.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise
