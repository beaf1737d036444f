"""What the per-execution event log costs a step when nobody reads it, LLM token events included.

Usage: python benchmarks/events_overhead.py [--mode embedded|redis|both] [--executions 100]
       [--chain 5] [--rounds 5] [--workers 2 --concurrency 8] [--tokens 50] [--chunk-delay 0]

Runs the same batch -- ``--executions`` executions of a chain of ``--chain`` steps, submitted at
once -- on three runtimes over one store, ``--rounds`` times each, interleaved (off, tokens-off,
on, off, ...) so that drift of a shared machine hits all alike:

- ``off``: the event recorder removed from the hooks (no log at all);
- ``no-tokens``: the recorder, with token events off (``EventRecorder(tokens=False)``, what
  ``ExecutionOptions``' per-execution switch does): the provider is asked for a plain answer;
- ``on``: the default, token events on: the provider streams.

Each step is an LLM call to an in-process provider that answers ``--tokens`` chunks of 4
characters, ``--chunk-delay`` seconds apart (0: at once, yielding to the event loop between
chunks as a network stream would: the worst case, all cost and no model latency; ``--tokens
0``: a no-op step, no LLM call). So ``on`` vs ``no-tokens`` is what streaming the tokens into the
log costs (the chunks of a step are merged into one ``step.token`` event per 50 ms flush), and
``no-tokens`` vs ``off`` what the rest of the log costs. ``embedded`` = LevelDB in a temporary
directory + the in-process broker; ``redis`` = Redis (unique prefix, deleted after) + the
in-process broker, so the Redis round trips of the appends show without Kafka's delivery latency
hiding them. A batch's time runs from the first submit to the last final status's
``finished_at``. Printed: steps/s (median, min, max) per configuration, the median over the
rounds of the paired batch-time ratios, this process's CPU time per step, and how many events
the batch left in the logs (a check that the recorder ran).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from distributed.keys import Keys
from orchestration import Engine, Node, NodeContext, NodeResult
from orchestration.providers import Completion, Message, TokenSink
from store import MemoryStore

WORKFLOW = "bench-chain"
TIMEOUT = 120.0
CONFIGS = ("off", "no-tokens", "on")


class NoOp:
    """A node type that does nothing: every measured cost is the engine's."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        return NodeResult(output=None)


class InstantStreamer:
    """An LLM provider that answers at once: ``chunks`` chunks of 4 characters, with a yield to
    the event loop after each (as a network stream's reads would). The plain answer takes the
    same turns of the loop, so streaming differs from it only by handing the chunks over."""

    name = "instant"

    def __init__(self, chunks: int, delay: float = 0.0) -> None:
        self.chunks = chunks
        self.delay = delay

    async def complete(self, messages: Any, *, model: str, **options: Any) -> Completion:
        for _ in range(self.chunks):
            await asyncio.sleep(self.delay)
        return Completion("tok " * self.chunks, model, self.name)

    async def stream(
        self, messages: list[Message], *, model: str, on_token: TokenSink, **options: Any
    ) -> Completion:
        for _ in range(self.chunks):
            on_token("tok ")
            await asyncio.sleep(self.delay)
        return Completion("tok " * self.chunks, model, self.name)


def local_engine(length: int, tokens: int, delay: float) -> Engine:
    ids = [f"s{i:03d}" for i in range(length)]
    engine = Engine(provider=InstantStreamer(tokens, delay))
    engine.node_types.register("noop", NoOp())
    uses, params = ("llm-process", {"promptTemplate": "go"}) if tokens else ("noop", {})
    engine.register_blueprint(
        {
            "id": WORKFLOW,
            "nodes": [{"id": n, "uses": uses, "params": params, "config": {}} for n in ids],
            "edges": [{"source": a, "target": b} for a, b in itertools.pairwise(ids)],
        }
    )
    return engine


def configured(runtime: Runtime, name: str) -> Runtime:
    """The runtime as configuration ``name`` wants its event recorder."""
    hooks = runtime.engine.context.hooks
    if name == "off":
        hooks.hooks = [hook for hook in hooks.hooks if not isinstance(hook, EventRecorder)]
    for hook in hooks.hooks:
        if isinstance(hook, EventRecorder):
            hook.tokens = name == "on"
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


def runtimes(mode: str, args: argparse.Namespace, tmp: str) -> tuple[dict[str, Runtime], str]:
    pool = PoolConfig(worker_count=args.workers, concurrency=args.concurrency)
    made = {}
    prefix = f"bench-events-{uuid.uuid4().hex[:8]}:"
    for name in CONFIGS:
        if mode == "embedded":
            store_url, options = f"leveldb://{tmp}/{name}", {}
        else:
            store_url, options = args.redis_url, {"prefix": f"{prefix}{name}:"}
        runtime = Runtime.from_urls(
            local_engine(args.chain, args.tokens, args.chunk_delay),
            store_url=store_url,
            broker_url="inproc://",
            pool=pool,
            store_options=options,
            topic=f"bench-{name}",
        )
        made[name] = configured(runtime, name)
    return made, prefix


async def bench(mode: str, args: argparse.Namespace) -> None:
    steps = args.executions * args.chain
    with tempfile.TemporaryDirectory() as tmp:
        made, prefix = runtimes(mode, args, tmp)
        results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in CONFIGS}
        async with contextlib.AsyncExitStack() as stack:
            for runtime in made.values():
                await stack.enter_async_context(runtime)
            for runtime in made.values():  # warm-up
                await run_batch(runtime, min(10, args.executions))
            for _ in range(args.rounds):
                for name, runtime in made.items():
                    results[name].append(await run_batch(runtime, args.executions))
        if mode == "redis":
            await delete_prefix(args.redis_url, prefix)
    work = f"LLM steps streaming {args.tokens} chunks" if args.tokens else "no-op steps"
    if args.tokens and args.chunk_delay:
        work += f" {args.chunk_delay * 1000:g} ms apart"
    print(f"\n{mode}: {args.executions} executions x {args.chain} {work}, {args.rounds} rounds")
    print(
        f"{'events':<10}{'steps/s median':>16}{'min':>10}{'max':>10}{'CPU us/step':>14}"
        f"{'events':>9}"
    )
    for name, rows in results.items():
        rates = [steps / elapsed for elapsed, _, _ in rows]
        cpu = statistics.median(c for _, c, _ in rows) / steps * 1e6
        print(
            f"{name:<10}{statistics.median(rates):>16,.0f}{min(rates):>10,.0f}"
            f"{max(rates):>10,.0f}{cpu:>14,.0f}{rows[-1][2]:>9,}"
        )
    for a, b in (("no-tokens", "off"), ("on", "no-tokens"), ("on", "off")):
        ratios = [x[0] / y[0] for x, y in zip(results[a], results[b], strict=True)]
        print(f"batch time {a}/{b}, paired median: {statistics.median(ratios):.3f}")


async def chunk_cost(count: int = 200_000, steps: int = 20) -> None:
    """The recorder's own cost per chunk (queue and merge) and per ``step.token`` event (encode
    and append to a memory store), without a runtime."""
    recorder = EventRecorder(MemoryStore(), Keys("bench/"), flush_interval=3600)
    started = time.perf_counter()
    for n in range(count):
        recorder.record_token("e", f"s{n % steps}", 1, "tok ")
    queued = time.perf_counter() - started
    events = len(recorder._queue)
    started = time.perf_counter()
    await recorder.flush()
    flushed = time.perf_counter() - started
    print(
        f"\nrecorder alone: {queued / count * 1e6:.2f} us per chunk queued; {events} step.token "
        f"events ({steps} steps interleaved, {recorder.token_chars} characters each at most), "
        f"{flushed / events * 1e6:.1f} us each to encode and append (memory store)"
    )


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
        "--tokens", type=int, default=50, help="chunks each step streams (0: no-op steps)"
    )
    parser.add_argument(
        "--chunk-delay", type=float, default=0.0, help="seconds between chunks (0: at once)"
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()
    asyncio.run(chunk_cost())
    for mode in ("embedded", "redis") if args.mode == "both" else (args.mode,):
        asyncio.run(bench(mode, args))


if __name__ == "__main__":
    main()
