"""The workflow the crash tests run, in the test process and in the victim subprocess.

    python tests/distributed/crash_app.py cluster STORE_URL PREFIX BROKER_URL TAG
        a worker pool on Redis + Kafka that runs until killed
    python tests/distributed/crash_app.py embedded DATA_DIR RUN_LOG COUNT
        an embedded runtime that submits COUNT executions and runs until killed

Steps append "start/end <execution> <step>" to the ``run_log`` input, so the test sees what
ran in a process it killed.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from typing import Any

from scenario_support import FAST_POOL, TANSU_OPTIONS, Probe, blueprint

from distributed import PoolConfig, Runtime
from orchestration import Engine

WORKFLOW = "crashy"
SLOW = 1.5  # seconds: long enough to be killed in the middle of


def build_engine() -> Engine:
    engine = Engine()
    engine.node_types.register("probe", Probe())
    nodes = {
        "fan": {},
        "s1": {"delay": SLOW},
        "s2": {"delay": SLOW},
        "s3": {"delay": SLOW},
        "join": {},
    }
    edges = [
        ("fan", "s1"),
        ("fan", "s2"),
        ("fan", "s3"),
        ("s1", "join"),
        ("s2", "join"),
        ("s3", "join"),
    ]
    engine.register_blueprint(blueprint(WORKFLOW, nodes, edges))
    return engine


def pool_config(tag: str | None = None, worker_count: int = 1) -> PoolConfig:
    worker = FAST_POOL.worker if tag is None else replace(FAST_POOL.worker, group=f"{tag}.workers")
    return replace(FAST_POOL, worker_count=worker_count, worker=worker)


def cluster_runtime(
    engine: Engine, store_url: str, prefix: str, broker_url: str, tag: str, **kw: Any
) -> Runtime:
    return Runtime.from_urls(
        engine,
        store_url=store_url,
        broker_url=broker_url,
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        store_options={"prefix": prefix},
        broker_options=TANSU_OPTIONS,
        **kw,
    )


async def run_cluster_worker(store_url: str, prefix: str, broker_url: str, tag: str) -> None:
    runtime = cluster_runtime(
        build_engine(), store_url, prefix, broker_url, tag, pool=pool_config(tag)
    )
    async with runtime:
        print("ready", flush=True)
        await asyncio.Event().wait()


async def run_embedded(data_dir: str, run_log: str, count: int) -> None:
    async with Runtime.embedded(build_engine(), data_dir, pool=pool_config()) as runtime:
        for _ in range(count):
            print(await runtime.engine.execute_async(WORKFLOW, {"run_log": run_log}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "cluster":
        asyncio.run(run_cluster_worker(*args))
    else:
        asyncio.run(run_embedded(args[0], args[1], int(args[2])))
