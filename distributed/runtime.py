"""``Runtime``: an engine, its store, broker and (optionally) a worker pool, built from settings.

    async with Runtime.embedded(local_engine, "./flowloom-data") as runtime:   # LevelDB + in-proc
        snapshot = await runtime.engine.execute_sync("blog-post", {...})

    Runtime.from_settings(local_engine, Settings.from_env())      # what ``flowloom`` does
    Runtime.from_urls(local_engine, store_url="redis://host:6379/0", broker_url="kafka://host:9092")

``from_settings`` takes the namespace's key prefix, topic and consumer group from the one
``Settings`` object; ``from_urls`` is the lower-level form where each is passed on its own.

The in-process broker keeps messages in memory only, so a runtime on it re-enqueues the ready
steps of every unfinished execution when it starts: a process killed mid-run picks up where
the store says it was (steps that already completed are not run again).
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

from mq import Broker, open_broker
from orchestration import Engine
from store import KVStore, open_store

from .context import RuntimeContext
from .engine import DistributedEngine, EngineConfig
from .hooks import Hooks
from .limits import Limits
from .persistence import KVPersistence
from .pool import PoolConfig, WorkerPool
from .queue import MQTaskQueue
from .recovery import RecoveryConfig, RecoveryManager
from .settings import Settings
from .steps import StepExecutor
from .timebox import within
from .worker import WorkerConfig

__all__ = ["Runtime", "pool_config"]

log = logging.getLogger(__name__)


class Runtime:
    """Owns the connections; ``start`` starts the pool, ``close`` stops everything in order."""

    def __init__(
        self,
        engine: DistributedEngine,
        store: KVStore,
        broker: Broker,
        pool: WorkerPool | None,
        *,
        durable_broker: bool,
    ) -> None:
        self.engine = engine
        self.store = store
        self.broker = broker
        self.pool = pool
        self.durable_broker = durable_broker
        self.settings: Settings | None = None

    @classmethod
    def from_settings(
        cls,
        local_engine: Engine,
        settings: Settings | None = None,
        *,
        workers: bool = True,
        hooks: Hooks | None = None,
    ) -> Runtime:
        """The runtime ``settings`` describe (default: ``Settings()``, the embedded default).
        ``workers=False`` makes a client without a pool."""
        settings = settings or Settings()
        runtime = cls.from_urls(
            local_engine,
            store_url=settings.store_url,
            broker_url=settings.broker_url,
            pool=pool_config(settings),
            workers=workers,
            namespace=settings.key_prefix or "",
            retention=settings.retention,
            topic=settings.topic or "",
            store_options=settings.store_options,
            broker_options=settings.broker_options,
            hooks=hooks,
            limits=settings.limits,
        )
        runtime.settings = settings
        return runtime

    @classmethod
    def from_urls(
        cls,
        local_engine: Engine,
        *,
        store_url: str,
        broker_url: str,
        pool: PoolConfig | None = None,
        workers: bool = True,
        namespace: str = "flowloom/",
        retention: float | None = None,
        topic: str = "flowloom.tasks",
        store_options: dict[str, Any] | None = None,
        broker_options: dict[str, Any] | None = None,
        hooks: Hooks | None = None,
        limits: Limits | None = None,
    ) -> Runtime:
        """Connect to a store and a broker. ``workers=False`` makes a client without a pool;
        ``hooks`` observe every part (engine, workers, recovery) of this runtime; ``limits``
        bound inputs, step results and tasks (default ``Limits()``)."""
        limits = limits or Limits()
        store = open_store(store_url, **(store_options or {}))
        broker = open_broker(broker_url, **(broker_options or {}))
        persistence = KVPersistence(store, namespace=namespace, retention=retention)
        queue = MQTaskQueue(broker, topic=topic, limits=limits)
        context = RuntimeContext.build(local_engine, queue, persistence, hooks)
        engine = DistributedEngine.from_context(context, EngineConfig(limits=limits))
        worker_pool = None
        if workers:
            executor = StepExecutor(local_engine, limits=limits)
            worker_pool = WorkerPool(
                queue, executor, pool or PoolConfig(), persistence=persistence, context=context
            )
        durable = not broker_url.startswith("inproc:")
        return cls(engine, store, broker, worker_pool, durable_broker=durable)

    @classmethod
    def embedded(
        cls,
        local_engine: Engine,
        path: str = "./flowloom-data",
        *,
        pool: PoolConfig | None = None,
        hooks: Hooks | None = None,
    ) -> Runtime:
        """The zero-service default: LevelDB at ``path`` and the in-process broker."""
        return cls.from_urls(
            local_engine,
            store_url=f"leveldb://{path}",
            broker_url="inproc://",
            pool=pool,
            hooks=hooks,
        )

    @property
    def recovery(self) -> RecoveryManager:
        """The runtime's ``RecoveryManager`` (the pool's, or one for this client)."""
        if self.pool is not None:
            return self.pool.recovery
        return RecoveryManager(self.engine.persistence, self.engine.queue, self.engine)

    async def start(self) -> None:
        if self.pool is not None:
            await self.pool.start()
        if not self.durable_broker:
            await self.recover_unfinished()

    async def recover_unfinished(self) -> int:
        """Re-enqueue the scheduled steps of every execution without a final status."""
        return await self.recovery.recover_unfinished()

    async def close(
        self, grace_period: float | None = None, *, close_timeout: float = 10.0
    ) -> None:
        """Stop the pool (graceful, see ``Worker.stop``), then close the connections; each
        connection gets ``close_timeout`` seconds, so a broker that stops answering cannot
        hold the shutdown."""
        if self.pool is not None:
            await self.pool.stop(grace_period)
        await self.engine.close()
        await within(self.broker.close(), close_timeout, "closing the broker")
        await within(self.store.close(), close_timeout, "closing the store")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def pool_config(settings: Settings) -> PoolConfig:
    """The worker pool ``settings`` describe: its consumer group, slots, leases and sweep."""
    worker = WorkerConfig(
        group=settings.group or f"{settings.namespace}.workers",
        lease_ttl=settings.lease_ttl,
        grace_period=settings.grace_period,
    )
    return PoolConfig(
        worker_count=settings.workers,
        concurrency=settings.concurrency,
        worker=worker,
        recovery=RecoveryConfig(interval=settings.sweep_interval),
    )
