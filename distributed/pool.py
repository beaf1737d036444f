"""``WorkerPool``: several workers in one process, scalable while running, plus the recovery
sweep (which sweeps only while this pool holds the namespace's leader lease)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .context import RuntimeContext
from .errors import InvalidSettings
from .hooks import Hooks
from .persistence import WorkflowPersistence
from .queue import TaskQueue
from .recovery import RecoveryConfig, RecoveryManager
from .steps import StepExecutor
from .timebox import within
from .worker import Worker, WorkerConfig

__all__ = ["PoolConfig", "WorkerPool"]

log = logging.getLogger(__name__)


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class PoolConfig:
    """``worker_count`` workers of ``concurrency`` slots each; ``worker`` tunes leases and stops;
    ``recovery`` tunes the sweep. ``reaper_interval`` and ``max_lease_expiries``, when given,
    override the sweep's ``interval`` and ``max_lease_expiries``. Validated when built."""

    worker_count: int = Field(default=1, ge=0)
    concurrency: int = Field(default=4, ge=1)
    reaper_interval: float | None = Field(default=None, gt=0)
    max_lease_expiries: int | None = Field(default=None, ge=1)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)

    def worker_config(self) -> WorkerConfig:
        return replace(self.worker, concurrency=self.concurrency)

    def recovery_config(self) -> RecoveryConfig:
        recovery = self.recovery
        if self.reaper_interval is not None:
            recovery = replace(recovery, interval=self.reaper_interval)
        if self.max_lease_expiries is not None:
            recovery = replace(recovery, max_lease_expiries=self.max_lease_expiries)
        return recovery


class WorkerPool:
    """Starts, stops and scales workers that share one runtime context."""

    def __init__(
        self,
        queue: TaskQueue,
        executor: StepExecutor,
        config: PoolConfig | None = None,
        *,
        persistence: WorkflowPersistence | None = None,
        hooks: Hooks | None = None,
        context: RuntimeContext | None = None,
    ) -> None:
        """``context``: share the runtime's context (``Runtime`` passes it); otherwise one is
        built from ``queue``, the persistence (``persistence=``, else the queue's own, as in
        ``MQTaskQueue(broker, persistence)``), the executor's engine and ``hooks``."""
        if context is None:
            store = _persistence_of(queue, persistence)
            context = RuntimeContext.build(executor.engine, queue, store, hooks)
        self.context = context
        self.queue = queue
        self.executor = executor
        self.config = config or PoolConfig()
        self.persistence = context.persistence
        self.recovery = RecoveryManager.from_context(self.context, self.config.recovery_config())
        self.workers: list[Worker] = []
        self._recovery_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return len(self.workers)

    async def start(self) -> None:
        await self.scale(self.config.worker_count)
        if self._recovery_task is None:
            self._recovery_task = asyncio.create_task(self.recovery.run(), name="recovery")

    async def scale(self, count: int) -> None:
        """Grow or shrink to ``count`` workers; shrinking lets running steps finish."""
        if count < 0:
            raise InvalidSettings(f"worker count must be >= 0, not {count}")
        async with self._lock:
            while len(self.workers) < count:
                worker = Worker(
                    self.context, config=self.config.worker_config(), executor=self.executor
                )
                await worker.start()
                self.workers.append(worker)
            leaving = self.workers[count:]
            del self.workers[count:]
        await asyncio.gather(*(worker.stop() for worker in leaving))
        log.info("worker pool scaled to %d", count)

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop the recovery sweep, then every worker gracefully (phases in ``Worker.stop``)."""
        if self._recovery_task is not None:
            self._recovery_task.cancel()
            timeout = self.config.worker.close_timeout
            await within(self._recovery_task, timeout, "stopping the recovery sweep")
            self._recovery_task = None
        async with self._lock:
            leaving, self.workers = self.workers, []
        await asyncio.gather(*(worker.stop(grace_period) for worker in leaving))


def _persistence_of(
    queue: TaskQueue, persistence: WorkflowPersistence | None
) -> WorkflowPersistence:
    found: WorkflowPersistence | None = persistence or getattr(queue, "persistence", None)
    if found is None:
        raise InvalidSettings(
            "WorkerPool needs the workflow persistence: pass persistence=..., or build the "
            "queue with it: MQTaskQueue(broker, persistence)"
        )
    return found
