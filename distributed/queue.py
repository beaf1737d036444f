"""``TaskQueue``: tasks as JSON on any ``Broker``; undecodable messages are dead-lettered.

A message does not decode -- and the worker dead-letters it once, with the reason, instead of
retrying it -- when it is larger than ``Limits.max_task_bytes`` (it is not parsed at all), is
not a JSON task, or names an execution or step id that breaks the rules of ``distributed.ids``
(a NUL byte, a ``/`` in an execution id, ...). Each reason starts with ``not a task``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mq import Broker, Consumer, Delivery, Message, dead_letter_topic

from .errors import UndecodableTask, format_size
from .ids import task_ids_problem
from .limits import DEFAULT_LIMITS, Limits
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

    def __init__(self, consumer: Consumer, *, max_task_bytes: int | None = None) -> None:
        self._consumer = consumer
        self._max_task_bytes = max_task_bytes or DEFAULT_LIMITS.max_task_bytes

    async def next(self) -> QueuedTask:
        return _decoded(await self._consumer.__anext__(), self._max_task_bytes)

    def next_ready(self) -> QueuedTask | None:
        """The next delivery if one is at hand without waiting, else None."""
        delivery = self._consumer.next_ready()
        return None if delivery is None else _decoded(delivery, self._max_task_bytes)

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


def decode_task(payload: bytes, *, max_bytes: int | None = None) -> Task:
    """Parse a task from untrusted bytes (JSON only) or raise ``UndecodableTask`` saying why:
    over ``max_bytes`` (default ``Limits().max_task_bytes``; not parsed), not a JSON task, or
    an invalid execution/step id (``distributed.ids``)."""
    limit = max_bytes or DEFAULT_LIMITS.max_task_bytes
    if len(payload) > limit:
        raise UndecodableTask(
            f"not a task: message of {format_size(len(payload))} is over the task size limit "
            f"of {format_size(limit)} (max_task_bytes)"
        )
    try:
        task = Task.from_bytes(payload)
    except ValueError as exc:  # msgspec's DecodeError: not JSON, or not a valid task
        raise UndecodableTask(f"not a task: {exc.__class__.__name__}: {str(exc)[:200]}") from exc
    problem = task_ids_problem(task.execution_id, task.node_id)
    if problem is not None:
        raise UndecodableTask(f"not a task: {problem}")
    return task


class MQTaskQueue:
    """Tasks on one broker topic, spread over its partitions by a key per task (``_spread``).

    ``persistence``, when given, is the one the queue's workers use: ``WorkerPool(queue,
    executor, config)`` then needs nothing more. ``config`` or the ``topic``/``partitions``
    keywords (which win) say where tasks travel. ``limits.max_task_bytes`` (default
    ``Limits()``) bounds the messages its consumers decode.
    """

    def __init__(
        self,
        broker: Broker,
        persistence: WorkflowPersistence | None = None,
        config: MQTaskQueueConfig | None = None,
        *,
        topic: str | None = None,
        partitions: int | None = None,
        limits: Limits | None = None,
    ) -> None:
        config = config or MQTaskQueueConfig()
        self.broker = broker
        self.limits = limits or DEFAULT_LIMITS
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
        await self.broker.publish(self.topic, task.to_bytes(), key=_spread(task))

    async def enqueue_many(self, tasks: Sequence[Task]) -> None:
        if not tasks:
            return
        await self._ensure_topic()
        messages = [Message(task.to_bytes(), key=_spread(task)) for task in tasks]
        await self.broker.publish_batch(self.topic, messages)

    async def consumer(self, group: str) -> TaskConsumer:
        await self._ensure_topic()
        consumer = self.broker.consume(self.topic, group)
        await consumer.__aenter__()
        return TaskConsumer(consumer, max_task_bytes=self.limits.max_task_bytes)

    async def dead_letter(self, delivery: Delivery, reason: str) -> None:
        await self.broker.dead_letter(delivery, reason)

    async def close(self) -> None:
        await self.broker.close()


def _spread(task: Task) -> str:
    """The partition key: one per task, so an execution's tasks spread over every partition
    (a fan-out uses every consumer; order between tasks never mattered, the store decides),
    and a task re-enqueued by the recovery sweep does not land on the partition of the dead
    worker it is taken from, which nobody reads until the group rebalances."""
    return f"{task.execution_id}/{task.node_id}@{task.enqueued_at!r}"


def _decoded(delivery: Delivery, max_task_bytes: int) -> QueuedTask:
    try:
        return QueuedTask(decode_task(delivery.payload, max_bytes=max_task_bytes), delivery)
    except UndecodableTask as exc:
        return QueuedTask(None, delivery, str(exc))
