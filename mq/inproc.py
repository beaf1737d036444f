"""``InProcBroker``: an asyncio broker inside one process, used by the embedded mode and tests.

Semantics match the Kafka backend where it matters:

* every consumer group gets every message published after the group was first consumed; a topic
  that has no group yet keeps its messages for the first group that subscribes;
* within a group each message goes to one consumer (competing consumers), in publish order;
* a delivery not acked when its consumer closes is redelivered to the group (first in line), a
  nacked one is requeued at the back, and both count towards ``max_deliveries``;
* a group holds at most ``maxsize`` undelivered messages: ``publish`` waits for room, never drops.
  Redeliveries and dead letters never wait (they must not deadlock a consumer).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

from mq.errors import BrokerClosed, DeliveryRevoked
from mq.headers import (
    DEFAULT_MAX_DELIVERIES,
    DEFAULT_MAX_MESSAGE_BYTES,
    check_payload_size,
    dead_letter_message,
    dead_letter_topic,
    dead_letter_verdict,
    split_delivery_count,
)
from mq.protocol import Delivery, Message

__all__ = ["InProcBroker", "InProcConsumer", "InProcDelivery"]

logger = logging.getLogger(__name__)

DEFAULT_MAXSIZE = 10_000


@dataclass(frozen=True)
class _Envelope:
    """A message as stored in a group queue."""

    seq: int
    payload: bytes
    key: str | None
    headers: Mapping[str, str]
    delivery_count: int

    def redelivery(self) -> _Envelope:
        return replace(self, delivery_count=self.delivery_count + 1)


class _Signal:
    """Wake every task waiting for 'something changed' (a condition variable without a lock)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class _GroupQueue:
    """Messages of one (topic, group) waiting for a consumer; bounded for publishers only."""

    def __init__(self, maxsize: int | None) -> None:
        self._ready: deque[_Envelope] = deque()
        self._maxsize = maxsize
        self.changed = _Signal()
        self.closed = False

    def __len__(self) -> int:
        return len(self._ready)

    def _full(self) -> bool:
        return self._maxsize is not None and len(self._ready) >= self._maxsize

    async def put(self, envelope: _Envelope) -> None:
        """Append, waiting while the queue is full (backpressure)."""
        while self._full() and not self.closed:
            await self.changed.wait()
        if self.closed:
            raise BrokerClosed("broker closed while publishing")
        self.put_nowait(envelope)

    def put_nowait(self, envelope: _Envelope) -> None:
        """Append, ignoring the bound."""
        self._ready.append(envelope)
        self.changed.notify()

    def put_back(self, envelopes: Iterable[_Envelope]) -> None:
        """Put redeliveries at the front, keeping their publish order, ignoring the bound."""
        self._ready.extendleft(sorted(envelopes, key=lambda e: e.seq, reverse=True))
        self.changed.notify()

    def pop(self) -> _Envelope | None:
        """Take the next message, or None when empty."""
        if not self._ready:
            return None
        envelope = self._ready.popleft()
        self.changed.notify()
        return envelope

    def close(self) -> None:
        self.closed = True
        self.changed.notify()


class _Topic:
    """A topic: one queue per consumer group, plus a backlog until the first group appears."""

    def __init__(self, name: str, maxsize: int | None) -> None:
        self.name = name
        self._maxsize = maxsize
        self._backlog: _GroupQueue | None = _GroupQueue(maxsize)
        self.groups: dict[str, _GroupQueue] = {}

    def group(self, name: str) -> _GroupQueue:
        """The queue of group ``name``; the first group adopts the backlog."""
        if name not in self.groups:
            backlog, self._backlog = self._backlog, None
            queue = backlog if backlog is not None else _GroupQueue(self._maxsize)
            self.groups[name] = queue
        return self.groups[name]

    def queues(self) -> list[_GroupQueue]:
        return list(self.groups.values()) or ([self._backlog] if self._backlog is not None else [])

    async def put(self, envelope: _Envelope) -> None:
        for queue in self.queues():
            await queue.put(envelope)

    def put_nowait(self, envelope: _Envelope) -> None:
        for queue in self.queues():
            queue.put_nowait(envelope)

    def close(self) -> None:
        for queue in self.queues():
            queue.close()


class InProcDelivery(Delivery):
    """A delivery from an ``InProcConsumer``."""

    def __init__(self, consumer: InProcConsumer, envelope: _Envelope) -> None:
        super().__init__(
            topic=consumer.topic,
            payload=envelope.payload,
            key=envelope.key,
            headers=dict(envelope.headers),
            delivery_count=envelope.delivery_count,
        )
        self._consumer = consumer
        self.envelope = envelope
        self.settled = False
        self.revoked = False

    def settle(self) -> bool:
        """Mark settled; False when it already was; ``DeliveryRevoked`` when it was taken back."""
        if self.settled:
            return False
        if self.revoked:
            raise DeliveryRevoked(
                f"delivery from {self.topic!r} was returned to its group when its consumer "
                "closed; it will be redelivered"
            )
        self.settled = True
        self._consumer.forget(self)
        return True

    async def ack(self) -> None:
        self.settle()

    async def nack(self, *, requeue: bool = True, reason: str | None = None) -> None:
        if not self.settle():
            return
        verdict = dead_letter_verdict(
            self,
            requeue=requeue,
            reason=reason,
            max_deliveries=self._consumer.max_deliveries,
            max_message_bytes=self._consumer.broker.max_message_bytes,  # as on Kafka
        )
        if verdict is None:
            self._consumer.queue.put_nowait(self.envelope.redelivery())
        else:
            self._consumer.broker.dead_letter_nowait(self, verdict)


class InProcConsumer:
    """Competing consumer of one (topic, group) on an ``InProcBroker``."""

    def __init__(self, broker: InProcBroker, topic: str, group: str, queue: _GroupQueue) -> None:
        self.broker = broker
        self.topic = topic
        self.group = group
        self.queue = queue
        self.max_deliveries = broker.max_deliveries
        self._unacked: dict[int, InProcDelivery] = {}
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> InProcDelivery:
        await asyncio.sleep(0)  # let competing consumers of the group take their turn
        while not (self._closed or self.queue.closed):
            delivery = self.next_ready()
            if delivery is not None:
                return delivery
            await self.queue.changed.wait()
        raise StopAsyncIteration

    def next_ready(self) -> InProcDelivery | None:
        """The group's next message, if one is waiting (no turn is given to competitors)."""
        while not (self._closed or self.queue.closed):
            envelope = self.queue.pop()
            if envelope is None:
                return None
            if envelope.delivery_count > self.max_deliveries:
                self._dead_letter_exhausted(envelope)
                continue
            delivery = InProcDelivery(self, envelope)
            self._unacked[id(delivery)] = delivery
            return delivery
        return None

    def _dead_letter_exhausted(self, envelope: _Envelope) -> None:
        delivery = InProcDelivery(self, replace(envelope, delivery_count=self.max_deliveries))
        reason = f"delivery limit of {self.max_deliveries} reached: consumers closed without ack"
        self.broker.dead_letter_nowait(delivery, reason)

    async def lag(self) -> dict[int, int]:
        """The group's one ordered queue, as partition 0: messages not yet delivered plus
        deliveries to any consumer of the group not yet settled."""
        peers = [c for c in self.broker.consumers() if c.queue is self.queue]
        return {0: len(self.queue) + sum(len(c._unacked) for c in peers)}

    def forget(self, delivery: InProcDelivery) -> None:
        """Stop tracking a settled delivery."""
        self._unacked.pop(id(delivery), None)

    async def close(self) -> None:
        """Stop iterating and hand unacked deliveries back to the group."""
        if self._closed:
            return
        self._closed = True
        self.broker.forget(self)
        for delivery in self._unacked.values():
            delivery.revoked = True
        returned = [d.envelope.redelivery() for d in self._unacked.values()]
        self._unacked.clear()
        if returned:
            logger.debug(
                "returning %d unacked deliveries to %s/%s", len(returned), self.topic, self.group
            )
        self.queue.put_back(returned)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class InProcBroker:
    """An in-process ``Broker``; see the module docstring for its semantics."""

    def __init__(
        self,
        *,
        maxsize: int = DEFAULT_MAXSIZE,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        """``maxsize``: undelivered messages a group holds before ``publish`` waits."""
        if maxsize < 1 or max_deliveries < 1:
            raise ValueError("maxsize and max_deliveries must be at least 1")
        self.maxsize = maxsize
        self.max_deliveries = max_deliveries
        self.max_message_bytes = max_message_bytes
        self._topics: dict[str, _Topic] = {}
        self._consumers: set[InProcConsumer] = set()
        self._seq = itertools.count()
        self._closed = False

    def _topic(self, name: str) -> _Topic:
        if name not in self._topics:
            self._topics[name] = _Topic(name, self.maxsize)
        return self._topics[name]

    def _envelope(
        self, payload: bytes, key: str | None, headers: Mapping[str, str] | None
    ) -> _Envelope:
        check_payload_size(payload, self.max_message_bytes)
        count, user_headers = split_delivery_count(headers or {})
        return _Envelope(next(self._seq), bytes(payload), key, user_headers, count)

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerClosed("InProcBroker is closed")

    def consumers(self) -> list[InProcConsumer]:
        """The consumers that are open."""
        return list(self._consumers)

    def forget(self, consumer: InProcConsumer) -> None:
        """Stop tracking a closed consumer."""
        self._consumers.discard(consumer)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Publish one message; waits while a group's queue is full."""
        self._check_open()
        await self._topic(topic).put(self._envelope(payload, key, headers))

    async def publish_batch(self, topic: str, messages: Sequence[Message]) -> None:
        """Publish messages in order; all sizes are checked before anything is sent."""
        self._check_open()
        envelopes = [self._envelope(m.payload, m.key, m.headers) for m in messages]
        target = self._topic(topic)
        for envelope in envelopes:
            await target.put(envelope)

    def consume(self, topic: str, group: str) -> InProcConsumer:
        """A new competing consumer of ``topic`` in ``group``."""
        self._check_open()
        consumer = InProcConsumer(self, topic, group, self._topic(topic).group(group))
        self._consumers.add(consumer)
        return consumer

    async def ensure_topic(self, name: str, partitions: int = 1) -> None:
        """Create the topic; in-process topics have one ordered queue per group."""
        self._check_open()
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self._topic(name)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move ``delivery`` to its dead-letter topic with ``reason`` and ack it."""
        if not isinstance(delivery, InProcDelivery):
            raise TypeError(f"not a delivery of this broker: {delivery!r}")
        if delivery.settle():
            self.dead_letter_nowait(delivery, reason)

    def dead_letter_nowait(self, delivery: Delivery, reason: str) -> None:
        """Publish the dead-letter copy of ``delivery`` (never waits; DLQs are unbounded).
        As on Kafka, the copy fits ``max_message_bytes`` (``dead_letter_message``)."""
        letter = dead_letter_message(delivery, reason, max_message_bytes=self.max_message_bytes)
        logger.warning(
            "dead-lettering a message of %r (%d bytes): %s",
            delivery.topic,
            len(delivery.payload),
            reason,
        )
        envelope = _Envelope(next(self._seq), letter.payload, letter.key, letter.headers, 1)
        self._topic(dead_letter_topic(delivery.topic)).put_nowait(envelope)

    async def close(self) -> None:
        """Close every consumer (their unacked deliveries return to the queues) and the topics."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers):
            await consumer.close()
        for topic in self._topics.values():
            topic.close()
