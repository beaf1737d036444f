"""The original Go framework's quick start, block for block, in Flowloom's Python spelling.

    python examples/quickstart_go_style.py                 # embedded: LevelDB + in-process queue
    python examples/quickstart_go_style.py --store redis://127.0.0.1:6379/0 \\
        --broker kafka://127.0.0.1:19092                   # the same program on Redis + Kafka

Five blocks, as in the original README: setup, worker setup, distributed parallel execution,
fault tolerance, monitoring. Agents answer with the offline provider (no key, no network).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import urllib.request
import uuid
from typing import Any

from distributed import (
    DistributedEngine,
    DistributedParallelStep,
    ExecutionOptions,
    InstrumentedEngine,
    KVPersistence,
    MQTaskQueue,
    MQTaskQueueConfig,
    PoolConfig,
    RecoveryManager,
    RemoteStep,
    StepExecutor,
    WorkerConfig,
    WorkerPool,
    default_engine_config,
    default_retry_policy,
    retry_with_policy,
)
from metrics import PrometheusCollector, serve_metrics
from mq import open_broker
from orchestration import Agent, Engine, FunctionStep, SequentialStep, Workflow
from store import open_store

warehouse = {"calls": 0}


def extract_step(state: Any) -> str:
    """A registered step: fetch the figures to analyse."""
    return f"sales for {state['quarter']}: revenue +12%, margin -3%"


def load_step(state: Any) -> str:
    """Fails on its first call (a warehouse outage), succeeds after that."""
    warehouse["calls"] += 1
    if warehouse["calls"] == 1:
        raise ConnectionError("warehouse unavailable")
    return "report stored"


def research_workflow(engine: DistributedEngine) -> Workflow:
    optimist = Agent("optimist", "Find what went well.")
    critic = Agent("critic", "Find the risks.")
    writer = Agent("writer", "Write a two-line summary.")
    return (
        Workflow("quarterly-report", "Quarterly report", "extract, analyse in parallel, summarise")
        .add_step(RemoteStep("extract", engine, "extract", output_key="figures"))
        # NewDistributedParallelStep(name, agents, inputFn, outputKeys, ...)
        .add_step(
            DistributedParallelStep(
                "analyse",
                engine,
                [optimist, critic],
                input_fn=lambda s: f"Analyse: {s['figures']}",
                output_keys=["strengths", "risks"],
            )
        )
        .add_step(
            SequentialStep(
                "summarise",
                writer,
                lambda s: f"Strengths: {s['strengths']}\nRisks: {s['risks']}",
                output_key="summary",
            )
        )
        .add_step(FunctionStep("load", load_step, output_key="stored"))
    )


async def main(store_url: str, broker_url: str) -> None:
    namespace = f"quickstart-{uuid.uuid4().hex[:8]}"

    # 1. Setup -----------------------------------------------------------------------------------
    # persistence := NewKVPersistence(kv.NewKVStore(Options{DataDir}))
    persistence = KVPersistence(open_store(store_url), namespace=f"{namespace}/")
    # queue := NewMQTaskQueue(broker, persistence, DefaultMQTaskQueueConfig())
    queue = MQTaskQueue(open_broker(broker_url), persistence, MQTaskQueueConfig(topic=namespace))
    # engine := NewDistributedEngine(local, queue, persistence, DefaultEngineConfig())
    local = Engine()
    engine = DistributedEngine(local, queue, persistence, default_engine_config())

    # 2. Worker setup ----------------------------------------------------------------------------
    # executor := NewStepExecutor(local); executor.RegisterStep("extract", extractStep)
    executor = StepExecutor(local)
    executor.register_step("extract", extract_step)
    # pool := NewWorkerPool(queue, executor, PoolConfig{WorkerCount: 4, Concurrency: 4})
    workers = WorkerConfig(group=f"{namespace}.workers")  # one consumer group per application
    pool = WorkerPool(queue, executor, PoolConfig(worker_count=4, concurrency=4, worker=workers))
    await pool.start()
    await pool.scale(8)  # pool.Scale(8)
    print(f"worker pool: {pool.size} workers")

    # 3. Distributed parallel execution ---------------------------------------------------------
    workflow = research_workflow(engine)
    local.register_workflow(workflow)
    options = ExecutionOptions(distributed=True, timeout=600, checkpoints=True)
    execution_id = await engine.execute_async("quarterly-report", {"quarter": "Q3"}, options)
    snapshot = await engine.wait(execution_id, timeout=120)
    print(
        f"status: {snapshot.status} ({len(snapshot.completed_steps)}/{len(workflow.steps)} steps)"
    )
    print(f"root cause: {snapshot.failed_step}: {snapshot.error}")

    # 4. Fault tolerance -------------------------------------------------------------------------
    # recovery := NewRecoveryManager(persistence, queue, engine); recovery.RecoverFailedExecution
    recovery = RecoveryManager(persistence, queue, engine)
    generation = await recovery.recover_failed_execution(execution_id)
    snapshot = await engine.wait(execution_id, timeout=120)
    print(f"recovered as generation {generation}: {snapshot.status}")
    summary = snapshot.steps["summarise"].result
    print(f"summary: {summary.output if summary else None!r}; outputs: {snapshot.outputs}")
    # RetryWithPolicy(DefaultRetryPolicy(), fn)
    attempts: list[int] = []

    async def ping_warehouse() -> str:
        attempts.append(1)
        if len(attempts) < 2:
            raise TimeoutError("slow")
        return "pong"

    reply = await retry_with_policy(default_retry_policy(), ping_warehouse)
    print(f"retry_with_policy: {reply} after {len(attempts)} attempts")

    # 5. Monitoring ------------------------------------------------------------------------------
    # instrumented := NewInstrumentedDistributedEngine(engine, metrics.NewPrometheusCollector())
    collector = PrometheusCollector()
    instrumented = InstrumentedEngine(engine, collector, pool=pool)
    with serve_metrics(collector, port=0) as server:  # port 9464 in production
        again = await instrumented.execute_sync("extract", {"quarter": "Q4"}, timeout=60)
        page = await asyncio.to_thread(_scrape, server.url)
    lines = page.splitlines()
    started = [s for s in lines if s.startswith("workflow_execution_") and "_created" not in s]
    print(f"monitored run: {again.status}; scraped {server.url}:")
    print("\n".join(f"  {line}" for line in started))

    await pool.stop()
    async for finished in persistence.all_executions():  # the example cleans up after itself
        await persistence.purge(finished)
    await queue.close()
    await persistence.store.close()


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store URL (default: LevelDB in a temporary directory)")
    parser.add_argument("--broker", default="inproc://", help="broker URL (default: inproc://)")
    return parser.parse_args()


if __name__ == "__main__":
    args = _arguments()
    with tempfile.TemporaryDirectory() as data:
        asyncio.run(main(args.store or f"leveldb://{data}", args.broker))
