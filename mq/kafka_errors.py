"""Translation of aiokafka errors into the ``mq`` error tree, at the edge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import errors as kafka_errors

from mq.errors import BrokerClosed, BrokerError, BrokerUnavailable, DeliveryRevoked

__all__ = ["translate_errors"]

_UNAVAILABLE = (
    kafka_errors.KafkaConnectionError,
    kafka_errors.KafkaTimeoutError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.NoBrokersAvailable,
    kafka_errors.CoordinatorNotAvailableError,
)
_REVOKED = (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError)


@asynccontextmanager
async def translate_errors(
    action: str, bootstrap: str, within: float | None
) -> AsyncIterator[None]:
    """Run the block within ``within`` seconds and raise ``mq`` errors instead of aiokafka's."""
    try:
        async with asyncio.timeout(within):
            yield
    except TimeoutError as exc:
        message = f"{action}: no answer from Kafka at {bootstrap} within {within}s"
        raise BrokerUnavailable(message) from exc
    except _UNAVAILABLE as exc:
        raise BrokerUnavailable(f"{action}: Kafka at {bootstrap} is unavailable: {exc}") from exc
    except _REVOKED as exc:
        raise DeliveryRevoked(f"{action}: partition was reassigned in a rebalance: {exc}") from exc
    except kafka_errors.ConsumerStoppedError as exc:
        raise BrokerClosed(f"{action}: consumer stopped") from exc
    except kafka_errors.KafkaError as exc:
        raise BrokerError(f"{action} failed: {exc!r}") from exc
