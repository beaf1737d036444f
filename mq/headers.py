"""Header names the brokers use, and the rules shared by every backend.

``x-delivery-count`` is the number this copy of the message will be delivered as (absent means
1). It travels with a message when a nack republishes it, and is stripped from
``Delivery.headers``. A dead-lettered message carries ``x-dead-letter-reason``,
``x-original-topic`` and ``x-original-delivery-count``.
"""

from __future__ import annotations

from collections.abc import Mapping

from mq.errors import PayloadTooLarge
from mq.protocol import Delivery

__all__ = [
    "DEAD_LETTER_REASON",
    "DEFAULT_MAX_DELIVERIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DELIVERY_COUNT",
    "ORIGINAL_DELIVERY_COUNT",
    "ORIGINAL_TOPIC",
    "check_payload_size",
    "dead_letter_headers",
    "dead_letter_topic",
    "dead_letter_verdict",
    "split_delivery_count",
]

DELIVERY_COUNT = "x-delivery-count"
DEAD_LETTER_REASON = "x-dead-letter-reason"
ORIGINAL_TOPIC = "x-original-topic"
ORIGINAL_DELIVERY_COUNT = "x-original-delivery-count"

DEFAULT_MAX_DELIVERIES = 10
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}.dlq"


def check_payload_size(payload: bytes, limit: int) -> None:
    """Raise ``PayloadTooLarge`` when ``payload`` is over ``limit`` bytes."""
    if len(payload) > limit:
        raise PayloadTooLarge(len(payload), limit)


def split_delivery_count(headers: Mapping[str, str]) -> tuple[int, dict[str, str]]:
    """Return (delivery count, headers without the count); a bad count reads as 1."""
    user_headers = {k: v for k, v in headers.items() if k != DELIVERY_COUNT}
    try:
        count = int(headers.get(DELIVERY_COUNT, "1"))
    except ValueError:
        count = 1
    return max(count, 1), user_headers


def dead_letter_headers(delivery: Delivery, reason: str) -> dict[str, str]:
    """Headers of the dead-letter copy of ``delivery``."""
    return {
        **delivery.headers,
        DEAD_LETTER_REASON: reason,
        ORIGINAL_TOPIC: delivery.topic,
        ORIGINAL_DELIVERY_COUNT: str(delivery.delivery_count),
    }


def dead_letter_verdict(
    delivery: Delivery, *, requeue: bool, reason: str | None, max_deliveries: int
) -> str | None:
    """The dead-letter reason for a nack of ``delivery``, or None to redeliver it."""
    if not requeue:
        return reason or "rejected"
    if delivery.delivery_count >= max_deliveries:
        cause = f": {reason}" if reason else ""
        return f"delivery limit of {max_deliveries} reached{cause}"
    return None
