"""Fixtures for the distributed scenarios: one runtime per backend pair, a probe node type.

``runtime`` is parametrised: ``embedded`` (LevelDB + in-process broker) and ``cluster`` (Redis +
the Kafka-protocol broker). Every runtime gets its own namespace, topic and consumer group, so
tests share services without seeing each other's messages or keys. ``make_runtime(engine,
pool, workers=False)`` is a client without workers on both backends; ``wrap_store`` puts a
test's wrapper (a store that misbehaves on purpose) between the runtime and its real store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from scenario_support import FAST_POOL, TANSU_OPTIONS, Probe, RuntimeFactory, delete_prefix
from support import require_kafka, require_redis

from distributed import KVPersistence, PoolConfig, Runtime
from orchestration import Engine
from store import KVStore


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def engine(probe: Probe) -> Engine:
    local = Engine()
    local.node_types.register("probe", probe)
    return local


def _cluster_runtime(local: Engine, pool: PoolConfig | None, tag: str, workers: bool) -> Runtime:
    redis_url = require_redis()
    kafka = require_kafka()
    return Runtime.from_urls(
        local,
        store_url=redis_url,
        broker_url=f"kafka://{kafka}",
        pool=pool,
        workers=workers,
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        store_options={"prefix": f"{tag}:"},
        broker_options=TANSU_OPTIONS,
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
        local: Engine,
        pool: PoolConfig | None = FAST_POOL,
        *,
        workers: bool = True,
        wrap_store: Callable[[KVStore], KVStore] | None = None,
    ) -> Runtime:
        if backend == "embedded":
            runtime = Runtime.from_urls(
                local,
                store_url=f"leveldb://{leveldb}",
                broker_url="inproc://",
                pool=pool,
                workers=workers,
            )
        else:
            base = pool or FAST_POOL
            grouped = replace(base, worker=replace(base.worker, group=f"{tag}.workers"))
            runtime = _cluster_runtime(local, grouped, tag, workers)
        if wrap_store is not None:  # engine, workers and sweep share this one persistence
            persistence = runtime.engine.persistence
            assert isinstance(persistence, KVPersistence)
            persistence.store = wrap_store(persistence.store)
        return runtime

    yield make
    if backend == "cluster":
        await delete_prefix(f"{tag}:")


@pytest.fixture
async def runtime(make_runtime: RuntimeFactory, engine: Engine) -> AsyncIterator[Runtime]:
    async with make_runtime(engine) as started:
        yield started
