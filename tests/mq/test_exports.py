"""The public names of ``mq`` are pinned: changing them is a deliberate act."""

from __future__ import annotations

import mq


def test_the_public_api_is_pinned() -> None:
    assert mq.__all__ == [
        "DEAD_LETTER_REASON",
        "DELIVERY_COUNT",
        "ORIGINAL_DELIVERY_COUNT",
        "ORIGINAL_TOPIC",
        "Broker",
        "BrokerClosed",
        "BrokerError",
        "BrokerUnavailable",
        "Consumer",
        "Delivery",
        "DeliveryRevoked",
        "InProcBroker",
        "InvalidBrokerURL",
        "KafkaBroker",
        "Message",
        "PayloadTooLarge",
        "dead_letter_topic",
        "open_broker",
    ]
    assert all(hasattr(mq, name) for name in mq.__all__)


def test_errors_form_one_tree() -> None:
    leaves = [
        mq.BrokerUnavailable,
        mq.BrokerClosed,
        mq.DeliveryRevoked,
        mq.InvalidBrokerURL,
        mq.PayloadTooLarge,
    ]
    assert all(issubclass(leaf, mq.BrokerError) for leaf in leaves)
