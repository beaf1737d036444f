"""A process that parks an execution on a wait, for the SIGKILL tests of tests/test_waits.py.

    python tests/distributed/wait_app.py embedded DATA_DIR
    python tests/distributed/wait_app.py cluster STORE_URL PREFIX BROKER_URL TAG

Submits one review-flow execution, prints its id once it is awaiting the ``review`` signal,
then runs (its worker pool too) until killed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from crash_app import cluster_runtime, pool_config
from scenario_support import Probe
from support import assert_eventually

from distributed import Runtime
from orchestration import Engine


def review_flow() -> dict[str, Any]:
    nodes = [
        {"id": "draft", "uses": "probe", "params": {}},
        {"id": "review", "uses": "wait", "params": {"event": "review"}},
        {"id": "publish", "uses": "probe", "params": {}},
        {"id": "revise", "uses": "probe", "params": {}},
    ]
    edges = [
        {"source": "draft", "target": "review"},
        {"source": "review", "target": "publish", "action": "approve"},
        {"source": "review", "target": "revise", "action": "reject"},
    ]
    return {"id": "review-flow", "nodes": nodes, "edges": edges}


def build_engine() -> Engine:
    engine = Engine()
    engine.node_types.register("probe", Probe())
    engine.register_blueprint(review_flow())
    return engine


async def park(runtime: Runtime) -> None:
    async with runtime:
        eid = await runtime.engine.execute_async("review-flow", {})
        await assert_eventually(lambda: _awaiting(runtime, eid), timeout=60)
        print(eid, flush=True)
        await asyncio.Event().wait()


async def _awaiting(runtime: Runtime, eid: str) -> bool:
    return (await runtime.engine.get_execution_status(eid)).status == "awaiting"


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "embedded":
        asyncio.run(park(Runtime.embedded(build_engine(), args[0], pool=pool_config())))
    else:
        store_url, prefix, broker_url, tag = args
        runtime = cluster_runtime(
            build_engine(), store_url, prefix, broker_url, tag, pool=pool_config(tag)
        )
        asyncio.run(park(runtime))
