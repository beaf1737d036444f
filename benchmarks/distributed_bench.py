"""Step throughput of the distributed engine: ``python benchmarks/distributed_bench.py``.

Usage: python benchmarks/distributed_bench.py [--mode embedded|cluster|both] [--executions N]
       [--chain 10] [--workers W --concurrency C]

Runs a chain of ``--chain`` no-op steps (a node type that returns ``NodeResult(output=None)``)
on a ``Runtime`` with a worker pool of W workers x C slots, in each mode: ``embedded`` (LevelDB
in a temporary directory + the in-process broker) and ``cluster`` (Redis + the Kafka-protocol
broker, with a unique namespace, topic and consumer group; its Redis prefix is deleted
afterwards). Per mode it measures:

* ``single``: one execution alone, submit (``execute_async``) to final status, in steps/s
  (median of three runs). Steps of a chain run one after another, so this is 1 / (per-step
  latency); its dispatch p50 is the measure below, over the steps of those runs.
* ``concurrent``: N executions submitted at once, first submit to last final, in steps/s.
* dispatch: from a step's predecessor's ``finished_at`` (the execution's ``created_at`` for the
  first step) to the step's ``started_at`` (when a worker took its lease): store writes, the
  enqueue, broker delivery, the worker's checks, and under load the wait for a free slot.
  ``step`` is ``started_at`` to ``finished_at`` (running the node and building the result).
  Both come from the step records of the runs.

Ends are taken from the final status's ``finished_at`` (wall clock written by the worker), so the
client's polling interval does not add to the figures. Warm-up executions (which also let the
Kafka consumer group settle) run before the measurements.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import workloads
from distributed import EngineConfig, PoolConfig, Runtime, WorkerConfig
from orchestration import Engine

WORKFLOW = "bench-chain"
KAFKA_OPTIONS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}
# Tansu holds a waiting fetch's answer for about half of fetch_max_wait_ms even when data
# arrives (Kafka answers at once), so on Tansu the long poll, not the engine, sets the latency.
SINGLE_RUNS = 3
TIMEOUT = 60.0  # seconds for one batch of executions to finish


def local_engine(length: int) -> Engine:
    """A chain of ``length`` no-op steps (``benchmarks.workloads``) as workflow ``WORKFLOW``."""
    return workloads.local_engine([workloads.chain(WORKFLOW, length)])


@dataclass
class Result:
    single: float = 0.0  # steps/s, one execution alone (median of SINGLE_RUNS)
    single_dispatch: list[float] = field(default_factory=list)  # seconds, per step
    concurrent: float = 0.0  # steps/s, N executions at once
    dispatch: list[float] = field(default_factory=list)  # seconds, per step
    step: list[float] = field(default_factory=list)  # seconds, per step
    error: str | None = None


async def run_batch(runtime: Runtime, count: int) -> tuple[float, list[str]]:
    """Submit ``count`` executions at once; return (seconds to the last final, their ids)."""
    engine = runtime.engine
    started = time.time()
    ids = await asyncio.gather(*(engine.execute_async(WORKFLOW) for _ in range(count)))
    deadline = time.monotonic() + TIMEOUT
    finished: list[float] = []
    for eid in ids:
        snapshot = await engine.wait(eid, timeout=max(deadline - time.monotonic(), 0.1))
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        finished.append(snapshot.finished_at or time.time())
    return max(finished) - started, ids


async def step_times(runtime: Runtime, ids: list[str]) -> tuple[list[float], list[float]]:
    """Dispatch delays and step durations (seconds) from the step records of ``ids``."""
    dispatch: list[float] = []
    durations: list[float] = []
    for eid in ids:
        snapshot = await runtime.engine.get_execution_status(eid)
        previous_end = snapshot.created_at
        for step in sorted(snapshot.steps.values(), key=lambda s: s.started_at or 0.0):
            if step.started_at is None or step.finished_at is None:
                continue
            dispatch.append(step.started_at - previous_end)
            durations.append(step.finished_at - step.started_at)
            previous_end = step.finished_at
    return dispatch, durations


async def measure(runtime: Runtime, executions: int, length: int) -> Result:
    # Poll often: wait() only decides when we look; the figures use the recorded finished_at.
    runtime.engine.config = EngineConfig(poll_interval=0.005, max_poll_interval=0.02)
    await run_batch(runtime, 1)  # warm-up: connections, topic, group assignment
    await run_batch(runtime, min(executions, 10))
    singles = [await run_batch(runtime, 1) for _ in range(SINGLE_RUNS)]
    single_dispatch, _ = await step_times(runtime, [eid for _, ids in singles for eid in ids])
    seconds, ids = await run_batch(runtime, executions)
    dispatch, durations = await step_times(runtime, ids)
    return Result(
        single=length / statistics.median(s for s, _ in singles),
        single_dispatch=single_dispatch,
        concurrent=executions * length / seconds,
        dispatch=dispatch,
        step=durations,
    )


def pool_config(workers: int, concurrency: int, group: str | None = None) -> PoolConfig:
    worker = WorkerConfig(grace_period=5.0)
    if group is not None:
        worker = replace(worker, group=group)
    return PoolConfig(worker_count=workers, concurrency=concurrency, worker=worker)


async def bench_embedded(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="flowloom-bench-") as directory:
        runtime = Runtime.from_urls(
            local_engine(args.chain),
            store_url=f"leveldb://{directory}/leveldb",
            broker_url="inproc://",
            pool=pool_config(args.workers, args.concurrency),
        )
        async with runtime:
            return await measure(runtime, args.executions, args.chain)


async def bench_cluster(args: argparse.Namespace) -> Result:
    tag = f"flowloom-bench-{uuid.uuid4().hex[:10]}"
    runtime = Runtime.from_urls(
        local_engine(args.chain),
        store_url=args.redis_url,
        broker_url=f"kafka://{args.kafka}",
        pool=pool_config(args.workers, args.concurrency, group=f"{tag}.workers"),
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        store_options={"prefix": f"{tag}:"},
        broker_options={**KAFKA_OPTIONS, "fetch_max_wait_ms": args.fetch_max_wait_ms},
    )
    try:
        async with runtime:
            return await measure(runtime, args.executions, args.chain)
    finally:
        await delete_prefix(args.redis_url, f"{tag}:")


async def delete_prefix(url: str, prefix: str) -> None:
    """Remove what the cluster run wrote to the shared Redis (only its own prefix)."""
    from store import Delete, open_store

    store = open_store(url, prefix=prefix)
    try:
        keys = [key async for key, _ in store.scan("")]
        for start in range(0, len(keys), 500):
            await store.batch([Delete(k) for k in keys[start : start + 500]])
    finally:
        await store.close()


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def print_table(results: dict[str, Result], args: argparse.Namespace) -> None:
    print(
        f"chain of {args.chain} no-op steps; pool {args.workers} workers x {args.concurrency} "
        f"slots; single = one execution alone (median of {SINGLE_RUNS}); "
        f"concurrent = {args.executions} executions at once\n"
    )
    print(
        "| mode | single steps/s | single dispatch p50 ms | concurrent steps/s "
        "| concurrent dispatch p50 / p95 ms | step p50 / p95 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for mode, r in results.items():
        if r.error is not None:
            print(f"| {mode} | {r.error} | | | | |")
            continue
        single = ms(percentile(r.single_dispatch, 50))
        dispatch = f"{ms(percentile(r.dispatch, 50))} / {ms(percentile(r.dispatch, 95))}"
        step = f"{ms(percentile(r.step, 50))} / {ms(percentile(r.step, 95))}"
        print(
            f"| {mode} | {r.single:,.0f} | {single} | {r.concurrent:,.0f} | {dispatch} | {step} |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "cluster", "both"], default="both")
    parser.add_argument("--executions", type=int, default=50, help="concurrent executions")
    parser.add_argument("--chain", type=int, default=10, help="steps per execution")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="slots per worker")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    parser.add_argument(
        "--fetch-max-wait-ms", type=int, default=20, help="Kafka fetch long poll (aiokafka: 500)"
    )
    args = parser.parse_args()
    modes = ["embedded", "cluster"] if args.mode == "both" else [args.mode]
    benches = {"embedded": bench_embedded, "cluster": bench_cluster}
    results: dict[str, Result] = {}
    for mode in modes:
        started = time.perf_counter()
        try:
            results[mode] = await benches[mode](args)
        except Exception as exc:  # report the mode as failed, still print the others
            results[mode] = Result(error=f"failed ({type(exc).__name__}: {exc})")
        print(f"{mode}: {time.perf_counter() - started:.1f}s", flush=True)
    print()
    print_table(results, args)


if __name__ == "__main__":
    asyncio.run(main())
