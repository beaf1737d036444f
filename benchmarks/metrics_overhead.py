"""What metrics cost the engine: ``python benchmarks/metrics_overhead.py``.

Usage: python benchmarks/metrics_overhead.py [--executions 200] [--chain 5] [--rounds 7]
       [--workers 2 --concurrency 8]

Runs the same batch -- ``--executions`` executions of a chain of ``--chain`` no-op steps,
submitted at once -- on embedded runtimes (LevelDB in a temporary directory + the in-process
broker), in four configurations, ``--rounds`` times each, interleaved (plain, instrumented,
scraped 1/s, scraped flat out, plain, ...) so that drift of a shared machine hits all alike:

* ``plain``: the ``DistributedEngine`` as it is, no hooks;
* ``instrumented``: an ``InstrumentedEngine`` with its ``/metrics`` served, nobody scraping;
* ``scraped 1/s``: the same while another process GETs ``/metrics`` once a second (15 times
  Prometheus's default rate), so every batch is scraped while it runs;
* ``scraped flat out``: the same while the other process GETs and parses ``/metrics`` back to
  back, as fast as the server answers (hundreds of times a second).

The scraper is a separate process, as Prometheus is: what the engine pays is the hooks and the
server rendering the exposition on its thread. The embedded runtime is the worst case: engine,
workers and the server share one process (and its GIL), and a step costs well under a
millisecond, so any per-step cost of the hooks shows. A batch's time runs from the first submit
to the last final status's ``finished_at`` (written by the worker), so the client's polling does
not count. Printed per configuration: steps/s (median, min, max over the rounds); the batch
time's difference to ``plain`` (median over the rounds of the ratio to the ``plain`` batch of
the same round: pairing cancels most of a shared machine's drift); this process's CPU time per
step and its paired difference to ``plain``; then the scrapes (count per batch, p50/p95 time of
GET + parse, size), and, measured in isolation, the CPU the hooks take per step attempt and the
CPU one scrape's rendering takes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from distributed import (
    EngineConfig,
    InstrumentedEngine,
    MetricsHooks,
    PoolConfig,
    Runtime,
    StepFinished,
    StepStarted,
    WorkerConfig,
    WorkerStarted,
)
from metrics import PrometheusCollector, serve_metrics
from orchestration import Engine, Node, NodeContext, NodeResult

WORKFLOW = "bench-chain"
TIMEOUT = 120.0  # seconds for one batch to finish


class NoOp:
    """A node type that does nothing: every measured cost is the engine's (and the hooks')."""

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


@dataclass
class Scrapes:
    """What the scraper process saw: seconds per scrape (GET + parse) and body sizes."""

    seconds: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)


class Scraper:
    """Drives ``metrics_overhead.py --scraper URL`` (another process) over its stdin/stdout."""

    def __init__(self, url: str) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--scraper", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _say(self, line: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return self._proc.stdout.readline()

    def go(self, pause: float) -> None:
        self._say(f"go {pause}")

    def stop(self, into: Scrapes) -> None:
        seen = json.loads(self._say("stop"))
        into.seconds += seen["seconds"]
        into.sizes += seen["sizes"]

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=10)


def scrape_on_command(url: str) -> None:
    """The scraper process: ``go PAUSE`` starts scraping (GET + parse, PAUSE seconds apart)
    and answers ``scraping``; ``stop`` stops and answers what it saw, as JSON; end of input ends
    it."""
    running, stopped, scraping, seen = (
        threading.Event(),
        threading.Event(),
        threading.Lock(),
        Scrapes(),
    )
    pause = [0.0]

    def loop() -> None:
        while True:
            running.wait()
            with scraping:
                began = time.perf_counter()
                with urllib.request.urlopen(url, timeout=10) as response:
                    body = response.read()
                list(text_string_to_metric_families(body.decode()))
                seen.seconds.append(time.perf_counter() - began)
                seen.sizes.append(len(body))
            stopped.wait(pause[0])  # a stop ends the pause at once

    threading.Thread(target=loop, daemon=True).start()
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "go":
            seen.seconds, seen.sizes, pause[0] = [], [], float(rest[0])
            stopped.clear()
            running.set()
            print("scraping", flush=True)
        else:
            running.clear()
            stopped.set()
            with scraping:  # let a scrape under way finish
                print(json.dumps({"seconds": seen.seconds, "sizes": seen.sizes}), flush=True)


@dataclass(frozen=True)
class Batch:
    """One batch: wall seconds (first submit to last final) and this process's CPU seconds
    (every thread: the loop, and the server rendering scrapes)."""

    wall: float
    cpu: float


async def run_batch(engine: Any, count: int) -> Batch:
    """Submit ``count`` executions at once and wait for them all."""
    cpu = time.process_time()
    started = time.time()
    ids = await asyncio.gather(*(engine.execute_async(WORKFLOW) for _ in range(count)))
    finished = []
    for eid in ids:
        snapshot = await engine.wait(eid, timeout=TIMEOUT)
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        finished.append(snapshot.finished_at or time.time())
    return Batch(max(finished) - started, time.process_time() - cpu)


@dataclass
class Bench:
    """The two runtimes (plain, instrumented) and what each configuration measured."""

    plain: Runtime
    engine: InstrumentedEngine
    scraper: Scraper
    batches: dict[str, list[Batch]] = field(default_factory=dict)
    scrapes: dict[str, Scrapes] = field(default_factory=dict)
    hooks_us: float = 0.0
    render_ms: float = 0.0

    async def round(self, executions: int) -> None:
        batches: dict[str, Callable[[], Awaitable[Batch]]] = {
            "plain": lambda: run_batch(self.plain.engine, executions),
            "instrumented": lambda: run_batch(self.engine, executions),
            "scraped 1/s": lambda: self._scraped("scraped 1/s", executions, 1.0),
            "scraped flat out": lambda: self._scraped("scraped flat out", executions, 0.0),
        }
        for name, batch in batches.items():
            self.batches.setdefault(name, []).append(await batch())

    async def _scraped(self, name: str, executions: int, pause: float) -> Batch:
        await asyncio.to_thread(self.scraper.go, pause)
        try:
            return await run_batch(self.engine, executions)
        finally:
            await asyncio.to_thread(self.scraper.stop, self.scrapes.setdefault(name, Scrapes()))


def runtime(directory: str, args: argparse.Namespace) -> Runtime:
    worker = WorkerConfig(grace_period=5.0)
    pool = PoolConfig(worker_count=args.workers, concurrency=args.concurrency, worker=worker)
    built = Runtime.embedded(local_engine(args.chain), directory, pool=pool)
    # Poll often: wait() only decides when we look; the figures use the recorded finished_at.
    built.engine.config = EngineConfig(poll_interval=0.005, max_poll_interval=0.02)
    return built


async def bench(args: argparse.Namespace) -> Bench:
    with tempfile.TemporaryDirectory(prefix="flowloom-metrics-bench-") as directory:
        plain = runtime(f"{directory}/plain", args)
        instrumented = runtime(f"{directory}/instrumented", args)
        collector = PrometheusCollector()
        engine = InstrumentedEngine(instrumented.engine, collector, pool=instrumented.pool)
        with serve_metrics(collector, port=0) as server:
            scraper = Scraper(server.url)
            try:
                async with plain, instrumented:
                    result = Bench(plain, engine, scraper)
                    await run_batch(plain.engine, 20)  # warm-up
                    await run_batch(engine, 20)
                    for _ in range(args.rounds):
                        await result.round(args.executions)
                result.hooks_us = hooks_cost(PrometheusCollector())
                result.render_ms = render_cost(collector)
                await engine.close()
            finally:
                scraper.close()
    return result


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def paired_change(batches: list[Batch], base: list[Batch], of: Callable[[Batch], float]) -> float:
    """Median over the rounds of (this configuration / plain in the same round) - 1, in %:
    pairing by round cancels most of a shared machine's drift."""
    return (statistics.median(of(b) / of(p) for b, p in zip(batches, base, strict=True)) - 1) * 100


def hooks_cost(collector: PrometheusCollector, repeat: int = 20_000) -> float:
    """Microseconds of CPU the hooks take per step attempt (its start and its finish)."""
    hooks = MetricsHooks(collector)
    hooks.worker_started(WorkerStarted(worker_id="bench", slots=8))
    common = {"execution_id": "e", "workflow_id": WORKFLOW, "step_id": "s000", "attempt": 1}
    start = StepStarted(**common, worker_id="bench", dispatch_latency=0.001)
    finish = StepFinished(**common, worker_id="bench", outcome="completed", duration=0.0003)
    began = time.process_time()
    for _ in range(repeat):
        hooks.step_started(start)
        hooks.step_finished(finish)
    return (time.process_time() - began) / repeat * 1e6


def render_cost(collector: PrometheusCollector, repeat: int = 200) -> float:
    """Milliseconds of CPU one scrape's rendering takes."""
    began = time.process_time()
    for _ in range(repeat):
        collector.render()
    return (time.process_time() - began) / repeat * 1000


def report(result: Bench, args: argparse.Namespace) -> None:
    steps = args.executions * args.chain
    print(
        f"{args.executions} executions x {args.chain} no-op steps at once, embedded, pool "
        f"{args.workers} workers x {args.concurrency} slots; {args.rounds} rounds, interleaved"
    )
    print(
        f"{'configuration':<17} {'steps/s median':>14} {'min':>6} {'max':>6} {'time vs plain':>14}"
        f" {'CPU us/step':>12} {'CPU vs plain':>13}"
    )
    base = result.batches["plain"]
    for name, batches in result.batches.items():
        rates = [steps / b.wall for b in batches]
        cpu = statistics.median(b.cpu for b in batches) / steps * 1e6
        wall = paired_change(batches, base, lambda b: b.wall)
        cpu_change = paired_change(batches, base, lambda b: b.cpu)
        print(
            f"{name:<17} {statistics.median(rates):>14,.0f} {min(rates):>6,.0f} "
            f"{max(rates):>6,.0f} {wall:>+13.1f}% {cpu:>12,.0f} {cpu_change:>+12.1f}%"
        )
    for name, scrapes in result.scrapes.items():
        if not scrapes.seconds:
            continue
        print(
            f"{name}: {len(scrapes.seconds) / args.rounds:.0f} scrapes per batch; GET + parse "
            f"p50 {percentile(scrapes.seconds, 50) * 1000:.1f} ms, "
            f"p95 {percentile(scrapes.seconds, 95) * 1000:.1f} ms; "
            f"body {statistics.median(scrapes.sizes) / 1024:.1f} KiB"
        )
    print(
        f"in isolation: the hooks cost {result.hooks_us:.1f} us of CPU per step attempt; "
        f"rendering one scrape {result.render_ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--chain", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scraper", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scraper:
        scrape_on_command(args.scraper)
        return
    report(asyncio.run(bench(args)), args)


if __name__ == "__main__":
    main()
