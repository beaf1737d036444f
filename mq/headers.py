"""Header names the brokers use, and the rules shared by every backend.

``x-delivery-count`` is the number this copy of the message will be delivered as (absent means
1). It travels with a message when a nack republishes it, and is stripped from
``Delivery.headers``.

A **dead letter** (``dead_letter_message``) is a copy that always fits the broker's message
limit, whatever the original was, so dead-lettering never fails for size and the original's
offset always moves on. It carries the original's headers (those that fit in 16 KiB), and:

==============================  ==============================================================
``x-dead-letter-reason``        why (at most 1,000 characters)
``x-original-topic``            the topic it came from
``x-original-delivery-count``   the delivery it was dead-lettered on
``x-original-size``             the original payload's size in bytes
``x-original-sha256``           the original payload's SHA-256 (hex)
``x-payload-truncated``         ``true`` when the payload kept is only the original's first
                                bytes (as many as fit), else ``false``
``x-original-key-size``         only when the key (over 1 KiB) was dropped: its size
==============================  ==============================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from mq.errors import PayloadTooLarge
from mq.protocol import Delivery, Message

__all__ = [
    "DEAD_LETTER_OVERHEAD_BYTES",
    "DEAD_LETTER_REASON",
    "DEFAULT_MAX_DELIVERIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DELIVERY_COUNT",
    "ORIGINAL_DELIVERY_COUNT",
    "ORIGINAL_KEY_SIZE",
    "ORIGINAL_SHA256",
    "ORIGINAL_SIZE",
    "ORIGINAL_TOPIC",
    "PAYLOAD_TRUNCATED",
    "check_payload_size",
    "dead_letter_headers",
    "dead_letter_message",
    "dead_letter_topic",
    "dead_letter_verdict",
    "message_size",
    "split_delivery_count",
]

DELIVERY_COUNT = "x-delivery-count"
DEAD_LETTER_REASON = "x-dead-letter-reason"
ORIGINAL_TOPIC = "x-original-topic"
ORIGINAL_DELIVERY_COUNT = "x-original-delivery-count"
ORIGINAL_SIZE = "x-original-size"
ORIGINAL_SHA256 = "x-original-sha256"
ORIGINAL_KEY_SIZE = "x-original-key-size"
PAYLOAD_TRUNCATED = "x-payload-truncated"

DEFAULT_MAX_DELIVERIES = 10
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

DEAD_LETTER_OVERHEAD_BYTES = 1024  # record and batch framing, left free under the limit
MAX_REASON_CHARS = 1000
MAX_KEPT_HEADER_BYTES = 16 * 1024
MAX_KEPT_KEY_BYTES = 1024
_ENCODING, _ERRORS = "utf-8", "surrogateescape"  # as mq.kafka_codec


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
    """Headers of the dead-letter copy of ``delivery`` (see ``dead_letter_message``)."""
    return dict(dead_letter_message(delivery, reason, max_message_bytes=None).headers)


def _encoded(text: str) -> int:
    return len(text.encode(_ENCODING, _ERRORS))


def message_size(payload: bytes, key: str | None, headers: Mapping[str, str]) -> int:
    """Bytes of a message as sent: payload, key, header names and values."""
    key_size = 0 if key is None else _encoded(key)
    return len(payload) + key_size + sum(_encoded(k) + _encoded(v) for k, v in headers.items())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The original headers, in order, as long as they fit in ``MAX_KEPT_HEADER_BYTES``."""
    kept: dict[str, str] = {}
    used = 0
    for name, value in headers.items():
        used += _encoded(name) + _encoded(value)
        if used > MAX_KEPT_HEADER_BYTES:
            break
        kept[name] = value
    return kept


def dead_letter_message(
    delivery: Delivery, reason: str, *, max_message_bytes: int | None
) -> Message:
    """The dead-letter copy of ``delivery``: at most ``max_message_bytes`` in all (payload,
    key, headers, plus ``DEAD_LETTER_OVERHEAD_BYTES`` of framing), so it can always be
    published; None keeps the whole payload. See the module doc for its headers."""
    payload, key = delivery.payload, delivery.key
    headers = _kept_headers(delivery.headers)
    headers.update(
        {
            DEAD_LETTER_REASON: _cut(reason, MAX_REASON_CHARS),
            ORIGINAL_TOPIC: delivery.topic,
            ORIGINAL_DELIVERY_COUNT: str(delivery.delivery_count),
            ORIGINAL_SIZE: str(len(payload)),
            ORIGINAL_SHA256: hashlib.sha256(payload).hexdigest(),
        }
    )
    if key is not None and _encoded(key) > MAX_KEPT_KEY_BYTES:
        headers[ORIGINAL_KEY_SIZE] = str(_encoded(key))
        key = None
    headers[PAYLOAD_TRUNCATED] = "false"
    if max_message_bytes is not None:
        room = max_message_bytes - DEAD_LETTER_OVERHEAD_BYTES - message_size(b"", key, headers)
        if len(payload) > room:
            payload = payload[: max(room, 0)]
            headers[PAYLOAD_TRUNCATED] = "true"
    return Message(payload, key, headers)


def dead_letter_verdict(
    delivery: Delivery,
    *,
    requeue: bool,
    reason: str | None,
    max_deliveries: int,
    max_message_bytes: int | None = None,
) -> str | None:
    """The dead-letter reason for a nack of ``delivery``, or None to redeliver it.

    With ``max_message_bytes`` (brokers that redeliver by publishing again), a message larger
    than that cannot be redelivered: it is dead-lettered at once, saying so."""
    cause = f": {reason}" if reason else ""
    if not requeue:
        return reason or "rejected"
    if delivery.delivery_count >= max_deliveries:
        return f"delivery limit of {max_deliveries} reached{cause}"
    size = len(delivery.payload)
    if max_message_bytes is not None and size > max_message_bytes:
        return (
            f"too large to redeliver: {size} bytes, over max_message_bytes={max_message_bytes}"
            f"{cause}"
        )
    return None
