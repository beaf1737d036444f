"""``python -m benchmarks.rss``: RSS of an embedded runtime over a long run (is it flat?).

Usage: python -m benchmarks.rss [--steps 1000000] [--every 50000] [--shape chain-10]
       [--in-flight 32] [--max-seconds S] [--retention S] [--python-heap]
       [--mode embedded|cluster] [--redis-url URL] [--kafka HOST:PORT]

Runs executions of ``--shape`` (no-op steps) on an embedded runtime (LevelDB in a temporary
directory + the in-process broker, 2 workers x 8 slots, in this process), keeping
``--in-flight`` executions submitted at all times, until ``--steps`` steps are done (or
``--max-seconds`` have passed). Every ``--every`` steps it prints a row: steps so far,
seconds, steps/s over the interval, this process's RSS and peak RSS, the LevelDB
directory's size, and the CPU per step of the event loop's thread and of the others (LevelDB
compacts in one of its own); at the end, LevelDB's compaction statistics. Executions are kept
(no retention), as the default runtime keeps them, so the store grows; the question is whether
the process does. ``--retention S`` expires finished executions after ``S`` seconds, as a
long-running deployment would: then the store should stay bounded too.

``--python-heap`` also traces Python's allocations (``tracemalloc``; slower): a column with the
memory Python objects hold, and at the end the ten places whose allocations grew most between
the first and the last sample -- whether a growth is Python's or native (LevelDB's).

``--mode cluster`` runs the same loop as a client of one worker process (Redis and the
Kafka-protocol broker, ``flowloom worker`` with 8 slots): the rows are then the worker
process's RSS and CPU (its event loop's thread and the others), and there is no LevelDB column
(0). Without ``--retention`` every execution stays in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

from store import LevelDBStore

from . import procstats
from .flowloom_run import Target, cluster, embedded
from .workloads import Shape, shape

__all__ = ["main"]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.rss", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=1_000_000, help="steps to run in all")
    parser.add_argument("--every", type=int, default=50_000, help="steps between two samples")
    parser.add_argument("--shape", default="chain-10")
    parser.add_argument("--in-flight", type=int, default=32, help="executions submitted at once")
    parser.add_argument("--max-seconds", type=float, help="stop earlier after this long")
    parser.add_argument(
        "--retention", type=float, help="finished executions expire after this many seconds"
    )
    parser.add_argument(
        "--python-heap", action="store_true", help="trace Python's allocations (slower)"
    )
    parser.add_argument("--mode", choices=("embedded", "cluster"), default="embedded")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    args = parser.parse_args(argv)
    if args.steps <= 0 or args.every <= 0 or args.in_flight <= 0:
        parser.error("--steps, --every and --in-flight must be positive")
    args.shape = shape(args.shape)
    return args


def _size_mib(directory: Path | None) -> float:
    if directory is None:
        return 0.0
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file()) / 2**20


class Sampler:
    """Prints a row each time ``every`` more steps are done: of process ``pid``."""

    def __init__(self, every: int, pid: int, directory: Path | None) -> None:
        self.every, self.pid, self.directory = every, pid, directory
        self.done = 0
        self.started = self.last_time = time.monotonic()
        self.last_steps = 0
        self.rows: list[tuple[int, float, float]] = []  # (steps, RSS MiB, anonymous RSS MiB)
        self.cpu = procstats.thread_cpu_seconds(pid)
        self.compaction = ""  # LevelDB's statistics at the end
        self.snapshots: list[tracemalloc.Snapshot] = []  # first and last, with --python-heap

    def add(self, steps: int) -> None:
        self.done += steps
        if self.done - self.last_steps >= self.every:
            self.sample()

    def sample(self) -> None:
        now, pid = time.monotonic(), self.pid
        rate = (self.done - self.last_steps) / max(now - self.last_time, 1e-9)
        rss, anon = procstats.rss_mib(pid), procstats.anon_rss_mib(pid)
        self.rows.append((self.done, rss, anon))
        loop_us, others_us = self._cpu_per_step(pid)
        heap = ""
        if tracemalloc.is_tracing():
            heap = f" {tracemalloc.get_traced_memory()[0] / 2**20:.1f} |"
            self.snapshots[1:] = [tracemalloc.take_snapshot()]
        print(
            f"| {self.done:,} | {now - self.started:,.0f} | {rate:,.0f} | {rss:.1f} "
            f"| {anon:.1f} | {procstats.peak_rss_mib(pid):.1f} "
            f"| {_size_mib(self.directory):.1f} | {loop_us:.0f} | {others_us:.0f} |{heap}",
            flush=True,
        )
        self.last_time, self.last_steps = now, self.done

    def _cpu_per_step(self, pid: int) -> tuple[float, float]:
        """CPU microseconds per step since the last sample: of the event loop's thread (the
        main one) and of the others (LevelDB's compaction)."""
        cpu = procstats.thread_cpu_seconds(pid)
        spent = {tid: seconds - self.cpu.get(tid, 0.0) for tid, seconds in cpu.items()}
        self.cpu = cpu
        steps = max(self.done - self.last_steps, 1)
        loop = spent.pop(pid, 0.0)
        return loop * 1e6 / steps, sum(spent.values()) * 1e6 / steps


async def _loop(
    engine: object, item: Shape, budget: list[int], sampler: Sampler, deadline: float
) -> None:
    from distributed.engine import DistributedEngine

    assert isinstance(engine, DistributedEngine)
    while budget[0] > 0 and time.monotonic() < deadline:
        budget[0] -= item.steps
        snapshot = await engine.wait(await engine.execute_async(item.name), timeout=120)
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {snapshot.execution_id} ended {snapshot.status}")
        sampler.add(item.steps)


@contextlib.asynccontextmanager
async def _target(args: argparse.Namespace) -> AsyncIterator[Target]:
    if args.mode == "embedded":
        async with embedded([args.shape], retention=args.retention) as target:
            yield target
    else:
        shapes, retention = [args.shape], args.retention
        async with cluster(shapes, 1, args.redis_url, args.kafka, retention) as target:
            yield target


async def run(args: argparse.Namespace) -> Sampler:
    async with _target(args) as target:
        sampler = Sampler(args.every, target.pids[0], target.data_dir)
        budget = [args.steps]
        deadline = time.monotonic() + (args.max_seconds or float("inf"))
        await asyncio.gather(
            *(
                _loop(target.engine, args.shape, budget, sampler, deadline)
                for _ in range(args.in_flight)
            )
        )
        if sampler.done != sampler.last_steps:
            sampler.sample()
        store = getattr(target.engine.persistence, "store", None)
        if isinstance(store, LevelDBStore):
            sampler.compaction = store.compaction_stats()
        return sampler


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    print(
        f"{args.shape.name}, {args.mode}, {args.in_flight} executions in flight, "
        f"a sample every {args.every:,} steps\n"
    )
    columns = ["steps", "seconds", "steps/s", "RSS MiB", "anon RSS MiB", "peak RSS MiB"]
    columns += ["LevelDB MiB", "loop CPU us/step", "other threads CPU us/step"]
    columns += ["Python heap MiB"] if args.python_heap else []
    print("| " + " | ".join(columns) + " |")
    print("|" + " ---: |" * len(columns), flush=True)
    if args.python_heap:
        tracemalloc.start()
    try:
        sampler = asyncio.run(run(args))
    finally:  # a caller in the same process (a test) must not inherit the tracing
        if args.python_heap:
            tracemalloc.stop()
    if len(sampler.rows) >= 2:
        (s0, r0, a0), (s1, r1, a1) = sampler.rows[0], sampler.rows[-1]
        for name, first, last in (("RSS", r0, r1), ("anonymous RSS", a0, a1)):
            per = (last - first) * 1024 / max(s1 - s0, 1) * 1000
            print(
                f"\n{name} {first:.1f} -> {last:.1f} MiB from step {s0:,} to {s1:,}: "
                f"{per:.2f} KiB per 1,000 steps"
            )
    if sampler.compaction:
        print(f"\nLevelDB at the end:\n{sampler.compaction.strip()}")
    if len(sampler.snapshots) == 2:
        print("\nPython allocations that grew most from the first sample to the last:")
        for stat in sampler.snapshots[1].compare_to(sampler.snapshots[0], "lineno")[:10]:
            print(f"  {stat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
