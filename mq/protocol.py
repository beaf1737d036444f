"""The broker contract: ``Message``, ``Delivery``, ``Consumer`` and ``Broker``.

A broker is bytes-in/bytes-out: payloads pass through untouched, decoding is the caller's job.
Delivery is at-least-once: a message is delivered until a consumer of the group acks it, nacks
it, or it reaches the delivery limit and is moved to the dead-letter topic ``f"{topic}.dlq"``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Protocol, Self, runtime_checkable

__all__ = ["Broker", "Consumer", "Delivery", "Message"]

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class Message:
    """A message to publish: a payload, an optional partitioning key and string headers."""

    payload: bytes
    key: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: _NO_HEADERS)


class Delivery(abc.ABC):
    """One delivery of a message to one consumer; settle it with ``ack`` or ``nack``.

    ``delivery_count`` is 1 on the first delivery and grows with every redelivery. ``headers``
    holds the publisher's headers (the broker's own ``x-delivery-count`` is not among them).
    Settling twice is a no-op; settling after the consumer lost the message raises
    ``DeliveryRevoked``.
    """

    def __init__(
        self,
        *,
        topic: str,
        payload: bytes,
        key: str | None,
        headers: dict[str, str],
        delivery_count: int,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.key = key
        self.headers = headers
        self.delivery_count = delivery_count

    @property
    def redelivered(self) -> bool:
        """True when this message was delivered before."""
        return self.delivery_count > 1

    @abc.abstractmethod
    async def ack(self) -> None:
        """Mark the message processed; it is not delivered to this group again."""

    @abc.abstractmethod
    async def nack(self, *, requeue: bool = True, reason: str | None = None) -> None:
        """Give the message back: redeliver it, or dead-letter it when ``requeue`` is False
        or the delivery limit is reached (``reason`` goes into the dead-letter headers)."""

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} topic={self.topic!r} key={self.key!r} "
            f"delivery_count={self.delivery_count} size={len(self.payload)}>"
        )


@runtime_checkable
class Consumer(Protocol):
    """An async iterator of deliveries for one (topic, group); also an async context manager.

    ``close`` stops the iteration; deliveries not yet acked are redelivered to the group.
    ``lag`` is the consumer lag of the partitions this consumer holds: by partition, how many
    messages the group has not acked yet (undelivered, or delivered and not yet settled).
    """

    def __aiter__(self) -> AsyncIterator[Delivery]: ...

    async def __anext__(self) -> Delivery: ...

    def next_ready(self) -> Delivery | None:
        """The next delivery if one is at hand without waiting (fetched already), else
        None: then ``__anext__`` waits for one. Tracked and settled as any delivery."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def close(self) -> None: ...

    async def lag(self) -> dict[int, int]: ...


@runtime_checkable
class Broker(Protocol):
    """Publish/subscribe with consumer groups, acks and dead letters."""

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None: ...

    async def publish_batch(self, topic: str, messages: Sequence[Message]) -> None: ...

    def consume(self, topic: str, group: str) -> Consumer: ...

    async def ensure_topic(self, name: str, partitions: int = 1) -> None: ...

    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...

    async def close(self) -> None: ...
