"""Message brokers for Flowloom: the ``Broker`` protocol, in-process and Kafka backends."""

from mq.errors import (
    BrokerClosed,
    BrokerError,
    BrokerUnavailable,
    DeliveryRevoked,
    InvalidBrokerURL,
    PayloadTooLarge,
)
from mq.headers import (
    DEAD_LETTER_REASON,
    DELIVERY_COUNT,
    ORIGINAL_DELIVERY_COUNT,
    ORIGINAL_SHA256,
    ORIGINAL_SIZE,
    ORIGINAL_TOPIC,
    PAYLOAD_TRUNCATED,
    dead_letter_topic,
)
from mq.inproc import InProcBroker
from mq.kafka import KafkaBroker
from mq.protocol import Broker, Consumer, Delivery, Message
from mq.url import open_broker

__all__ = [
    "DEAD_LETTER_REASON",
    "DELIVERY_COUNT",
    "ORIGINAL_DELIVERY_COUNT",
    "ORIGINAL_SHA256",
    "ORIGINAL_SIZE",
    "ORIGINAL_TOPIC",
    "PAYLOAD_TRUNCATED",
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
