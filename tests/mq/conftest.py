"""Fixtures for the mq contract suite: one ``Backend`` per broker, ids ``inproc`` and ``kafka``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import KAFKA_OPTIONS, require_kafka

from mq import Broker, Delivery, open_broker
from mq.protocol import Consumer

VICTIM = Path(__file__).with_name("kafka_victim.py")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Short group timeouts so joins and failovers take a second or two (support.KAFKA_OPTIONS).
KAFKA_TEST_OPTIONS: dict[str, Any] = {
    "session_timeout_ms": KAFKA_OPTIONS["session_timeout_ms"],
    "heartbeat_interval_ms": KAFKA_OPTIONS["heartbeat_interval_ms"],
    "request_timeout_ms": 10_000,
}


def unique(prefix: str) -> str:
    """A topic or group name no other test (or test run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def receive(
    consumer: Consumer, count: int, *, ack: bool = True, timeout: float = 40.0
) -> list[Delivery]:
    """The next ``count`` deliveries of ``consumer``, acked unless ``ack`` is False."""
    deliveries: list[Delivery] = []
    if count == 0:
        return deliveries
    async with asyncio.timeout(timeout):
        async for delivery in consumer:
            if ack:
                await delivery.ack()
            deliveries.append(delivery)
            if len(deliveries) == count:
                break
    return deliveries


class Backend:
    """How the contract suite opens a broker and crashes a consumer on one backend."""

    name = "inproc"

    def url(self) -> str:
        return "inproc://"

    def open(self, **options: Any) -> Broker:
        return open_broker(self.url(), **options)

    async def crash_consumer(self, broker: Broker, topic: str, group: str, count: int) -> None:
        """A consumer of ``group`` receives ``count`` messages and dies without acking."""
        consumer = broker.consume(topic, group)
        await receive(consumer, count, ack=False)
        await consumer.close()


class KafkaBackend(Backend):
    """Kafka: the dying consumer is a separate process, killed with SIGKILL."""

    name = "kafka"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap.removeprefix("kafka://")

    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def open(self, **options: Any) -> Broker:
        return open_broker(self.url(), **(KAFKA_TEST_OPTIONS | options))

    async def crash_consumer(self, broker: Broker, topic: str, group: str, count: int) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(VICTIM), self.bootstrap, topic, group, str(count),
            stdout=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        assert process.stdout is not None
        try:
            async with asyncio.timeout(40):
                while (
                    line := await process.stdout.readline()
                ).strip() != f"received {count}".encode():
                    assert line, "victim consumer exited early"
        finally:
            process.send_signal(signal.SIGKILL)
            await process.wait()


@pytest.fixture(params=["inproc", "kafka"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "kafka":
        return KafkaBackend(require_kafka())
    return Backend()


@pytest.fixture
async def broker(backend: Backend) -> AsyncIterator[Broker]:
    opened = backend.open()
    yield opened
    await opened.close()
