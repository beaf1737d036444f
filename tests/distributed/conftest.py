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
from scenario_support import FAST_POOL, TANSU_OPTIONS, Probe, RuntimeFactory, delete_prefix
from support import require_kafka, require_redis

from distributed import PoolConfig, Runtime
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
        base = pool or FAST_POOL
        grouped = replace(base, worker=replace(base.worker, group=f"{tag}.workers"))
        return _cluster_runtime(local, grouped, tag)

    yield make
    if backend == "cluster":
        await delete_prefix(f"{tag}:")


@pytest.fixture
async def runtime(make_runtime: RuntimeFactory, engine: Engine) -> AsyncIterator[Runtime]:
    async with make_runtime(engine) as started:
        yield started
