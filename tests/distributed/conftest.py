"""Fixtures for the distributed scenarios: one runtime per backend pair, a probe node type.

``runtime`` is parametrised: ``embedded`` (LevelDB + in-process broker) and ``cluster`` (Redis +
the Kafka-protocol broker). Every runtime gets its own namespace, topic and consumer group, so
tests share services without seeing each other's messages or keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from scenario_support import FAST_POOL, Probe, RuntimeFactory
from support import require_kafka, require_redis

from distributed import PoolConfig, Runtime, WorkerConfig
from orchestration import Engine


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def engine(probe: Probe) -> Engine:
    local = Engine()
    local.node_types.register("probe", probe)
    return local


def _cluster_runtime(local: Engine, pool: PoolConfig | None, tag: str) -> Runtime:
    redis_url = require_redis()
    kafka = require_kafka()
    return Runtime.from_urls(
        local,
        store_url=redis_url,
        broker_url=f"kafka://{kafka}",
        pool=pool,
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        store_options={"prefix": f"{tag}:"},
        broker_options={"session_timeout_ms": 6000, "heartbeat_interval_ms": 500},
    )


@pytest.fixture(params=["embedded", "cluster"])
async def make_runtime(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RuntimeFactory]:
    """Builds runtimes of the parametrised backend pair; all share one store/topic per test."""
    tag = f"flowloom-test-{uuid.uuid4().hex[:10]}"
    backend = request.param
    leveldb = tmp_path / "leveldb"

    def make(
        local: Engine, pool: PoolConfig | None = FAST_POOL, *, workers: bool = True
    ) -> Runtime:
        if backend == "embedded":
            return Runtime.from_urls(
                local,
                store_url=f"leveldb://{leveldb}",
                broker_url="inproc://",
                pool=pool,
                workers=workers,
            )
        group = PoolConfig(
            worker_count=(pool or FAST_POOL).worker_count,
            concurrency=(pool or FAST_POOL).concurrency,
            reaper_interval=(pool or FAST_POOL).reaper_interval,
            worker=_with_group((pool or FAST_POOL).worker, f"{tag}.workers"),
        )
        return _cluster_runtime(local, group, tag)

    yield make
    if backend == "cluster":
        await _delete_prefix(f"{tag}:")


async def _delete_prefix(prefix: str) -> None:
    """Remove what a cluster test wrote to the shared Redis (only its own prefix)."""
    from store import Delete, open_store

    store = open_store(require_redis(), prefix=prefix)
    try:
        keys = [key async for key, _ in store.scan("")]
        for start in range(0, len(keys), 500):
            await store.batch([Delete(k) for k in keys[start : start + 500]])
    finally:
        await store.close()


def _with_group(config: WorkerConfig, group: str) -> WorkerConfig:
    return replace(config, group=group)


@pytest.fixture
async def runtime(make_runtime: RuntimeFactory, engine: Engine) -> AsyncIterator[Runtime]:
    async with make_runtime(engine) as started:
        yield started
