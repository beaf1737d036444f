"""What metrics cost the engine: ``python benchmarks/metrics_overhead.py``.

Usage: python benchmarks/metrics_overhead.py [--executions 200] [--chain 5] [--rounds 7]
       [--workers 2 --concurrency 8]

Runs the same batch -- ``--executions`` executions of a chain of ``--chain`` no-op steps,
submitted at once -- in four configurations, each on an embedded runtime of its own (LevelDB in
a temporary directory + the in-process broker; one store each, so that every store grows
alike), ``--rounds`` times each, interleaved (plain, instrumented, scraped 1/s, scraped flat
out, plain, ...) so that drift of a shared machine hits all alike:

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
GET + parse, size); measured in isolation, the CPU the hooks take per step attempt and the CPU
one scrape's rendering takes; and in situ, the share of the process's CPU spent inside the
hooks (each call timed) over three more batches of the instrumented runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from distributed import (
    DistributedEngine,
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
    """Drives ``metrics_overhead.py --scraper`` (another process) over its stdin/stdout."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--scraper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _say(self, line: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return self._proc.stdout.readline()

    def go(self, url: str, pause: float) -> None:
        self._say(f"go {pause} {url}")

    def stop(self, into: Scrapes) -> None:
        seen = json.loads(self._say("stop"))
        into.seconds += seen["seconds"]
        into.sizes += seen["sizes"]

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=10)


def scrape_on_command() -> None:
    """The scraper process: ``go PAUSE URL`` starts scraping URL (GET + parse, PAUSE seconds
    apart) and answers ``scraping``; ``stop`` stops and answers what it saw, as JSON; end of
    input ends it."""
    running, stopped, scraping, seen = (
        threading.Event(),
        threading.Event(),
        threading.Lock(),
        Scrapes(),
    )
    pause, url = [0.0], [""]

    def loop() -> None:
        while True:
            running.wait()
            with scraping:
                began = time.perf_counter()
                with urllib.request.urlopen(url[0], timeout=10) as response:
                    body = response.read()
                list(text_string_to_metric_families(body.decode()))
                seen.seconds.append(time.perf_counter() - began)
                seen.sizes.append(len(body))
            stopped.wait(pause[0])  # a stop ends the pause at once

    threading.Thread(target=loop, daemon=True).start()
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "go":
            seen.seconds, seen.sizes, pause[0], url[0] = [], [], float(rest[0]), rest[1]
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
class Configuration:
    """One configuration, on a runtime of its own (its own LevelDB, so every configuration's
    store grows alike); ``url`` when instrumented, ``pause`` between scrapes when scraped."""

    name: str
    engine: DistributedEngine
    url: str | None = None
    pause: float | None = None
    batches: list[Batch] = field(default_factory=list)
    scrapes: Scrapes = field(default_factory=Scrapes)

    async def run(self, executions: int, scraper: Scraper) -> None:
        if self.pause is None or self.url is None:
            self.batches.append(await run_batch(self.engine, executions))
            return
        await asyncio.to_thread(scraper.go, self.url, self.pause)
        try:
            self.batches.append(await run_batch(self.engine, executions))
        finally:
            await asyncio.to_thread(scraper.stop, self.scrapes)


@dataclass
class Bench:
    """The configurations, and the costs measured in isolation."""

    configurations: list[Configuration]
    hooks_us: float = 0.0
    render_ms: float = 0.0
    hooks_percent: float = 0.0


def runtime(directory: str, args: argparse.Namespace) -> Runtime:
    worker = WorkerConfig(grace_period=5.0)
    pool = PoolConfig(worker_count=args.workers, concurrency=args.concurrency, worker=worker)
    built = Runtime.embedded(local_engine(args.chain), directory, pool=pool)
    # Poll often: wait() only decides when we look; the figures use the recorded finished_at.
    built.engine.config = EngineConfig(poll_interval=0.005, max_poll_interval=0.02)
    return built


async def configuration(
    stack: contextlib.AsyncExitStack, directory: str, name: str, args: argparse.Namespace
) -> Configuration:
    """Open the runtime of configuration ``name`` (instrumented and served unless ``plain``)."""
    built = runtime(f"{directory}/{name}", args)
    if name == "plain":
        await stack.enter_async_context(built)
        return Configuration(name, built.engine)
    collector = PrometheusCollector()
    engine = InstrumentedEngine(built.engine, collector, pool=built.pool)
    server = stack.enter_context(serve_metrics(collector, port=0))
    await stack.enter_async_context(built)
    stack.push_async_callback(engine.close)
    pause = {"scraped 1/s": 1.0, "scraped flat out": 0.0}.get(name)
    return Configuration(name, engine, server.url, pause)


async def bench(args: argparse.Namespace) -> Bench:
    names = ("plain", "instrumented", "scraped 1/s", "scraped flat out")
    scraper = Scraper()
    with tempfile.TemporaryDirectory(prefix="flowloom-metrics-bench-") as directory:
        async with contextlib.AsyncExitStack() as stack:
            configurations = [await configuration(stack, directory, n, args) for n in names]
            for config in configurations:  # warm-up
                await run_batch(config.engine, 20)
            for _ in range(args.rounds):
                for config in configurations:
                    await config.run(args.executions, scraper)
            instrumented = configurations[1].engine
            assert isinstance(instrumented, InstrumentedEngine)
            share = await hooks_share(instrumented, args.executions)
    scraper.close()
    cost = hooks_cost(PrometheusCollector())
    return Bench(configurations, cost, render_cost(configurations), share)


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


async def hooks_share(engine: InstrumentedEngine, executions: int, batches: int = 3) -> float:
    """In situ: the share (%) of this process's CPU spent inside the metrics hooks while the
    instrumented runtime runs ``batches`` batches (each hook call timed; a ratio within one
    process, so a busy machine changes it less than it changes absolute times)."""
    spent = [0.0]

    def timed(hook: Callable[[Any], None]) -> Callable[[Any], None]:
        def call(event: Any) -> None:
            began = time.perf_counter()
            hook(event)
            spent[0] += time.perf_counter() - began

        return call

    hooks = engine.hooks
    for name in ("execution_submitted", "execution_final", "step_started", "step_finished"):
        setattr(hooks, name, timed(getattr(hooks, name)))
    cpu = sum([(await run_batch(engine, executions)).cpu for _ in range(batches)])
    for name in ("execution_submitted", "execution_final", "step_started", "step_finished"):
        delattr(hooks, name)
    return spent[0] / cpu * 100


def render_cost(configurations: list[Configuration], repeat: int = 200) -> float:
    """Milliseconds of CPU one scrape's rendering takes (of the last instrumented runtime)."""
    engine = configurations[-1].engine
    assert isinstance(engine, InstrumentedEngine)
    began = time.process_time()
    for _ in range(repeat):
        engine.collector.render()
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
    base = result.configurations[0].batches
    for config in result.configurations:
        name, batches = config.name, config.batches
        rates = [steps / b.wall for b in batches]
        cpu = statistics.median(b.cpu for b in batches) / steps * 1e6
        wall = paired_change(batches, base, lambda b: b.wall)
        cpu_change = paired_change(batches, base, lambda b: b.cpu)
        print(
            f"{name:<17} {statistics.median(rates):>14,.0f} {min(rates):>6,.0f} "
            f"{max(rates):>6,.0f} {wall:>+13.1f}% {cpu:>12,.0f} {cpu_change:>+12.1f}%"
        )
    for config in result.configurations:
        scrapes = config.scrapes
        if not scrapes.seconds:
            continue
        print(
            f"{config.name}: {len(scrapes.seconds) / args.rounds:.0f} scrapes per batch; "
            f"GET + parse p50 {percentile(scrapes.seconds, 50) * 1000:.1f} ms, "
            f"p95 {percentile(scrapes.seconds, 95) * 1000:.1f} ms; "
            f"body {statistics.median(scrapes.sizes) / 1024:.1f} KiB"
        )
    print(
        f"in isolation: the hooks cost {result.hooks_us:.1f} us of CPU per step attempt; "
        f"rendering one scrape {result.render_ms:.2f} ms"
    )
    print(f"in situ: {result.hooks_percent:.1f}% of the process's CPU is spent in the hooks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=200)
    parser.add_argument("--chain", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--scraper", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scraper:
        scrape_on_command()
        return
    report(asyncio.run(bench(args)), args)


if __name__ == "__main__":
    main()
