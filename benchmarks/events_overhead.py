"""What the per-execution event log costs a step when nobody reads it.

Usage: python benchmarks/events_overhead.py [--mode embedded|redis|both] [--executions 100]
       [--chain 5] [--rounds 5] [--workers 2 --concurrency 8]

Runs the same batch -- ``--executions`` executions of a chain of ``--chain`` no-op steps,
submitted at once -- on two runtimes over one store, one with the event recorder (the default:
every step appends ``step.started`` and ``step.finished``, batched by a background task) and one
without it (the recorder removed from its hooks), ``--rounds`` times each, interleaved (off, on,
off, on, ...) so that drift of a shared machine hits both alike. ``embedded`` = LevelDB in a
temporary directory + the in-process broker; ``redis`` = Redis (unique prefix, deleted after) +
the in-process broker, so the Redis round trips of the appends show without Kafka's delivery
latency hiding them. A batch's time runs from the first submit to the last final status's
``finished_at``. Printed: steps/s (median, min, max) per configuration, the median over the
rounds of the paired batch-time ratio on/off, this process's CPU time per step, and how many
events the batch left in the logs (a check that the recorder ran).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from distributed import EventRecorder, PoolConfig, Runtime
from orchestration import Engine, Node, NodeContext, NodeResult

WORKFLOW = "bench-chain"
TIMEOUT = 120.0


class NoOp:
    """A node type that does nothing: every measured cost is the engine's."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        return NodeResult(output=None)


def local_engine(length: int) -> Engine:
    ids = [f"s{i:03d}" for i in range(length)]
    engine = Engine()
    engine.node_types.register("noop", NoOp())
    engine.register_blueprint(
        {
            "id": WORKFLOW,
            "nodes": [{"id": n, "uses": "noop", "params": {}, "config": {}} for n in ids],
            "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
        }
    )
    return engine


def without_events(runtime: Runtime) -> Runtime:
    hooks = runtime.engine.context.hooks
    hooks.hooks = [hook for hook in hooks.hooks if not isinstance(hook, EventRecorder)]
    return runtime


async def run_batch(runtime: Runtime, count: int) -> tuple[float, float, int]:
    """Submit ``count`` executions at once; return (seconds, CPU seconds, events logged)."""
    engine = runtime.engine
    cpu, started = time.process_time(), time.time()
    ids = await asyncio.gather(*(engine.execute_async(WORKFLOW) for _ in range(count)))
    finished = []
    for eid in ids:
        snapshot = await engine.wait(eid, timeout=TIMEOUT)
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        finished.append(snapshot.finished_at or time.time())
    elapsed, cpu_used = max(finished) - started, time.process_time() - cpu
    await engine.context.flush_events()
    events = 0
    for eid in ids:
        events += len([e async for e in engine.events(eid)])
    return elapsed, cpu_used, events


def runtimes(mode: str, args: argparse.Namespace, tmp: str) -> tuple[Runtime, Runtime, str]:
    pool = PoolConfig(worker_count=args.workers, concurrency=args.concurrency)
    made = []
    prefix = f"bench-events-{uuid.uuid4().hex[:8]}:"
    for name in ("off", "on"):
        if mode == "embedded":
            store_url, options = f"leveldb://{tmp}/{name}", {}
        else:
            store_url, options = args.redis_url, {"prefix": f"{prefix}{name}:"}
        runtime = Runtime.from_urls(
            local_engine(args.chain),
            store_url=store_url,
            broker_url="inproc://",
            pool=pool,
            store_options=options,
            topic=f"bench-{name}",
        )
        made.append(without_events(runtime) if name == "off" else runtime)
    return made[0], made[1], prefix


async def bench(mode: str, args: argparse.Namespace) -> None:
    steps = args.executions * args.chain
    with tempfile.TemporaryDirectory() as tmp:
        off, on, prefix = runtimes(mode, args, tmp)
        results: dict[str, list[tuple[float, float, int]]] = {"off": [], "on": []}
        async with off, on:
            for runtime in (off, on):  # warm-up
                await run_batch(runtime, min(10, args.executions))
            for _ in range(args.rounds):
                results["off"].append(await run_batch(off, args.executions))
                results["on"].append(await run_batch(on, args.executions))
        if mode == "redis":
            await delete_prefix(args.redis_url, prefix)
    print(
        f"\n{mode}: {args.executions} executions x {args.chain} no-op steps, {args.rounds} rounds"
    )
    print(
        f"{'events':<8}{'steps/s median':>16}{'min':>10}{'max':>10}{'CPU us/step':>14}{'events':>9}"
    )
    for name, rows in results.items():
        rates = [steps / elapsed for elapsed, _, _ in rows]
        cpu = statistics.median(c for _, c, _ in rows) / steps * 1e6
        print(
            f"{name:<8}{statistics.median(rates):>16,.0f}{min(rates):>10,.0f}"
            f"{max(rates):>10,.0f}{cpu:>14,.0f}{rows[-1][2]:>9,}"
        )
    ratios = [on_[0] / off_[0] for off_, on_ in zip(results["off"], results["on"], strict=True)]
    print(f"batch time on/off, paired median: {statistics.median(ratios):.3f}")


async def delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--executions", type=int, default=100)
    parser.add_argument("--chain", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    for mode in ("embedded", "redis") if args.mode == "both" else (args.mode,):
        asyncio.run(bench(mode, args))


if __name__ == "__main__":
    main()
