"""Workers and the recovery sweep keep going, and stop, when a broker or store client misbehaves
on purpose.

Real in-process broker and memory store, wrapped to fail the way client libraries do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from scenario_support import Probe, blueprint

from distributed import (
    DistributedEngine,
    KVPersistence,
    MQTaskQueue,
    RecoveryConfig,
    RecoveryManager,
    RuntimeContext,
    Worker,
    WorkerConfig,
)
from distributed.models import AgendaEntry
from distributed.queue import QueuedTask, TaskConsumer
from mq import BrokerUnavailable, InProcBroker
from orchestration import Engine
from store import MemoryStore, StoreUnavailable


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

    def next_ready(self) -> QueuedTask | None:
        return None  # every fetch waits, and may fail

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
    context = RuntimeContext.build(local, queue, persistence)
    worker = Worker(context, config=WorkerConfig(fetch_retry_interval=0.01))
    await worker.start()
    try:
        engine = DistributedEngine(local, queue, persistence)
        snapshot = await engine.execute_sync("two", {"x": 1}, timeout=10)
    finally:
        await worker.stop()
    assert snapshot.status == "completed"
    assert snapshot.outputs == {"b": "b:1"}


class CancelSwallowingPersistence(KVPersistence):
    """Its agenda scan turns a cancellation into a store error, as a client library sometimes
    does."""

    def __init__(self) -> None:
        super().__init__(MemoryStore())
        self.scanning = asyncio.Event()

    async def agenda(self, eid: str | None = None) -> AsyncIterator[AgendaEntry]:
        self.scanning.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise StoreUnavailable("redis://127.0.0.1:6379", "connection reset") from None
        yield AgendaEntry(execution_id="never", node_id="never", since=0)


async def test_the_sweep_stops_even_when_the_store_turns_its_cancellation_into_an_error() -> None:
    persistence = CancelSwallowingPersistence()
    config = RecoveryConfig(interval=0.001)
    recovery = RecoveryManager(persistence, MQTaskQueue(InProcBroker()), Engine(), config=config)
    sweeping = asyncio.create_task(recovery.run())
    await asyncio.wait_for(persistence.scanning.wait(), timeout=5)
    sweeping.cancel()
    done, _ = await asyncio.wait({sweeping}, timeout=5)
    assert sweeping in done and sweeping.cancelled()
