"""``WorkerPool``: several workers in one process, scalable while running, plus one reaper."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace

from .persistence import WorkflowPersistence
from .queue import TaskQueue
from .reaper import Reaper
from .scheduler import Scheduler
from .steps import StepExecutor
from .timebox import within
from .worker import Worker, WorkerConfig

__all__ = ["PoolConfig", "WorkerPool"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """``worker_count`` workers of ``concurrency`` slots each; ``worker`` tunes leases and stops.
    The pool's reaper sweeps every ``reaper_interval`` seconds and fails a step whose worker
    died or hung ``max_lease_expiries`` times."""

    worker_count: int = 1
    concurrency: int = 4
    reaper_interval: float = 1.0
    max_lease_expiries: int = 5
    worker: WorkerConfig = field(default_factory=WorkerConfig)

    def worker_config(self) -> WorkerConfig:
        return replace(self.worker, concurrency=self.concurrency)


class WorkerPool:
    """Starts, stops and scales workers that share one queue, persistence and executor."""

    def __init__(
        self,
        queue: TaskQueue,
        executor: StepExecutor,
        config: PoolConfig | None = None,
        *,
        persistence: WorkflowPersistence,
    ) -> None:
        self.queue = queue
        self.executor = executor
        self.config = config or PoolConfig()
        self.persistence = persistence
        self.workers: list[Worker] = []
        self._reaper_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def size(self) -> int:
        return len(self.workers)

    async def start(self) -> None:
        await self.scale(self.config.worker_count)
        if self._reaper_task is None:
            scheduler = Scheduler(self.persistence, self.queue)
            reaper = Reaper(
                scheduler,
                interval=self.config.reaper_interval,
                max_lease_expiries=self.config.max_lease_expiries,
            )
            self._reaper_task = asyncio.create_task(reaper.run_forever(), name="reaper")

    async def scale(self, count: int) -> None:
        """Grow or shrink to ``count`` workers; shrinking lets running steps finish."""
        if count < 0:
            raise ValueError(f"worker count must be >= 0, not {count}")
        async with self._lock:
            while len(self.workers) < count:
                worker = self._new_worker()
                await worker.start()
                self.workers.append(worker)
            leaving = self.workers[count:]
            del self.workers[count:]
        await asyncio.gather(*(worker.stop() for worker in leaving))
        log.info("worker pool scaled to %d", count)

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop the reaper, then every worker gracefully (phases in ``Worker.stop``)."""
        if self._reaper_task is not None:
            self._reaper_task.cancel()
            await within(self._reaper_task, self.config.worker.close_timeout, "stopping the reaper")
            self._reaper_task = None
        async with self._lock:
            leaving, self.workers = self.workers, []
        await asyncio.gather(*(worker.stop(grace_period) for worker in leaving))

    def _new_worker(self) -> Worker:
        return Worker(
            self.queue,
            self.persistence,
            self.executor.engine,
            config=self.config.worker_config(),
            executor=self.executor,
        )
