"""Worker behaviour that needs a broker misbehaving on purpose (in-process broker, memory store)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from scenario_support import Probe, blueprint

from distributed import DistributedEngine, KVPersistence, MQTaskQueue, Worker, WorkerConfig
from distributed.queue import QueuedTask, TaskConsumer
from mq import BrokerUnavailable, InProcBroker
from orchestration import Engine
from store import MemoryStore


class BlippingConsumer(TaskConsumer):
    """Fails its first ``failures`` fetches as a broker outage would, then delivers."""

    def __init__(self, inner: TaskConsumer, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def next(self) -> QueuedTask:
        if self.failures:
            self.failures -= 1
            raise BrokerUnavailable("broker did not answer")
        return await self.inner.next()

    async def close(self) -> None:
        await self.inner.close()


class BlippingQueue(MQTaskQueue):
    async def consumer(self, group: str) -> TaskConsumer:
        return BlippingConsumer(await super().consumer(group), failures=3)


@pytest.fixture
async def parts() -> AsyncIterator[tuple[Engine, BlippingQueue, KVPersistence]]:
    local = Engine()
    local.node_types.register("probe", Probe())
    local.register_blueprint(blueprint("two", {"a": {}, "b": {}}, [("a", "b")]))
    queue = BlippingQueue(InProcBroker())
    yield local, queue, KVPersistence(MemoryStore())
    await queue.close()


async def test_a_worker_keeps_consuming_after_the_broker_fails_a_fetch(
    parts: tuple[Engine, BlippingQueue, KVPersistence],
) -> None:
    local, queue, persistence = parts
    worker = Worker(queue, persistence, local, config=WorkerConfig(fetch_retry_interval=0.01))
    await worker.start()
    try:
        engine = DistributedEngine(local, queue, persistence)
        snapshot = await engine.execute_sync("two", {"x": 1}, timeout=10)
    finally:
        await worker.stop()
    assert snapshot.status == "completed"
    assert snapshot.outputs == {"b": "b:1"}
