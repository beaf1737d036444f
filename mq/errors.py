"""Errors raised by the message brokers.

Driver errors (aiokafka, asyncio) are translated at the edge; callers only see this tree::

    BrokerError                 base of every mq error
    ├── BrokerUnavailable       the broker cannot be reached within the configured timeout
    ├── BrokerClosed            the broker or consumer was closed before or during the call
    ├── DeliveryRevoked         a delivery can no longer be settled (its partition was reassigned
    │                           or its consumer closed); the message will be redelivered
    ├── InvalidBrokerURL        ``open_broker`` was given a URL it cannot interpret
    └── PayloadTooLarge         a payload exceeds ``max_message_bytes``; nothing was sent
"""

from __future__ import annotations

__all__ = [
    "BrokerClosed",
    "BrokerError",
    "BrokerUnavailable",
    "DeliveryRevoked",
    "InvalidBrokerURL",
    "PayloadTooLarge",
]


class BrokerError(Exception):
    """Base class of every error raised by ``mq``."""


class BrokerUnavailable(BrokerError):
    """The broker did not answer within the configured timeout."""


class BrokerClosed(BrokerError):
    """The broker or consumer is closed."""


class DeliveryRevoked(BrokerError):
    """The delivery can no longer be acked or nacked; it will be redelivered elsewhere."""


class InvalidBrokerURL(BrokerError, ValueError):
    """The broker URL has an unknown scheme or no hosts."""


class PayloadTooLarge(BrokerError, ValueError):
    """The payload is larger than ``max_message_bytes``; nothing was published."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds max_message_bytes={limit}")
        self.size = size
        self.limit = limit
