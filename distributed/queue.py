"""``TaskQueue``: tasks as JSON on any ``Broker``; undecodable messages are dead-lettered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import ValidationError

from mq import Broker, Consumer, Delivery, Message, dead_letter_topic

from .errors import UndecodableTask
from .models import Task
from .persistence import WorkflowPersistence

__all__ = [
    "MQTaskQueue",
    "MQTaskQueueConfig",
    "QueuedTask",
    "TaskConsumer",
    "TaskQueue",
    "decode_task",
    "default_mq_task_queue_config",
]

DEFAULT_TOPIC = "flowloom.tasks"


@dataclass(frozen=True, kw_only=True)
class MQTaskQueueConfig:
    """Where tasks travel: ``topic`` (default ``flowloom.tasks``) with ``partitions`` (8)."""

    topic: str = DEFAULT_TOPIC
    partitions: int = 8


def default_mq_task_queue_config() -> MQTaskQueueConfig:
    """The defaults: topic ``flowloom.tasks``, 8 partitions."""
    return MQTaskQueueConfig()


@dataclass(frozen=True)
class QueuedTask:
    """A delivered task with the delivery to ack; ``task`` is None when it did not decode."""

    task: Task | None
    delivery: Delivery
    problem: str | None = None

    async def ack(self) -> None:
        await self.delivery.ack()

    async def dead_letter(self, queue: TaskQueue, reason: str) -> None:
        await queue.dead_letter(self.delivery, reason)


class TaskConsumer:
    """Pulls tasks one at a time. Cancelling ``next`` keeps the consumer (and its unacked
    deliveries) open; only ``close`` hands unacked deliveries back to the group."""

    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    async def next(self) -> QueuedTask:
        return _decoded(await self._consumer.__anext__())

    async def lag(self) -> dict[int, int]:
        """Tasks of the partitions this consumer holds that the group has not acked yet."""
        return await self._consumer.lag()

    async def close(self) -> None:
        await self._consumer.close()


class TaskQueue(Protocol):
    async def enqueue(self, task: Task) -> None: ...
    async def enqueue_many(self, tasks: Sequence[Task]) -> None: ...
    async def consumer(self, group: str) -> TaskConsumer: ...
    async def dead_letter(self, delivery: Delivery, reason: str) -> None: ...
    async def close(self) -> None: ...


def decode_task(payload: bytes) -> Task:
    """Parse a task from untrusted bytes (JSON only) or raise ``UndecodableTask``."""
    try:
        task: Task = Task.model_validate_json(payload)
    except (ValidationError, ValueError) as exc:
        raise UndecodableTask(f"not a task: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    return task


class MQTaskQueue:
    """Tasks on one broker topic, keyed by execution id (per-execution ordering on Kafka).

    ``persistence``, when given, is the one the queue's workers use: ``WorkerPool(queue,
    executor, config)`` then needs nothing more. ``config`` or the ``topic``/``partitions``
    keywords (which win) say where tasks travel.
    """

    def __init__(
        self,
        broker: Broker,
        persistence: WorkflowPersistence | None = None,
        config: MQTaskQueueConfig | None = None,
        *,
        topic: str | None = None,
        partitions: int | None = None,
    ) -> None:
        config = config or MQTaskQueueConfig()
        self.broker = broker
        self.persistence = persistence
        self.topic = topic or config.topic
        self.partitions = partitions or config.partitions
        self._topic_ready = False

    async def _ensure_topic(self) -> None:
        """Create the task topic, and its dead-letter topic with one partition (created up
        front: a topic auto-created by the first dead letters can race, and a single partition
        lists dead letters in the order they came)."""
        if not self._topic_ready:
            await self.broker.ensure_topic(self.topic, self.partitions)
            await self.broker.ensure_topic(dead_letter_topic(self.topic), 1)
            self._topic_ready = True

    async def enqueue(self, task: Task) -> None:
        await self._ensure_topic()
        await self.broker.publish(self.topic, task.to_bytes(), key=task.execution_id)

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        await self._ensure_topic()
        messages = [Message(task.to_bytes(), key=task.execution_id) for task in tasks]
        await self.broker.publish_batch(self.topic, messages)

    async def consumer(self, group: str) -> TaskConsumer:
        await self._ensure_topic()
        consumer = self.broker.consume(self.topic, group)
        await consumer.__aenter__()
        return TaskConsumer(consumer)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self.broker.dead_letter(delivery, reason)

    async def close(self) -> None:
        await self.broker.close()


def _decoded(delivery: Delivery) -> QueuedTask:
    try:
        return QueuedTask(decode_task(delivery.payload), delivery)
    except UndecodableTask as exc:
        return QueuedTask(None, delivery, str(exc))
