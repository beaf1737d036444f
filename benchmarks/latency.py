"""``python -m benchmarks.latency``: where one execution's time goes, from submit to the client.

Usage: python -m benchmarks.latency [--mode cluster-1] [--shape chain-10] [--count 20]
       [--concurrency 8] [--redis-url URL] [--kafka HOST:PORT]

Runs ``--count`` executions of ``--shape`` one at a time (embedded, or on N worker processes as
``python -m benchmarks`` starts them, with ``--concurrency`` slots each) and splits each into
four parts, from the execution's record and step records (wall clocks of one machine): the
submit call (``execute_async`` returns), the first step's start after the execution's creation
(the broker's delivery of the first task), the steps (first start to the final status), and the
final status to ``wait`` returning (how the client learns it). Prints the p50 and maximum of
each part, then the CPU each process spent per execution over the run: the worker processes,
this client, and on a cluster the broker and Redis (the processes listening on their ports),
since on a small machine they all share the cores one execution's latency waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlparse

from . import procstats
from .flowloom_run import CONCURRENCY, Target, cluster, embedded
from .workloads import shape

__all__ = ["PARTS", "Parts", "main", "measure", "processes"]

PARTS = ("submit call", "first task delivered", "steps", "final status to wait returning")


@dataclass(frozen=True)
class Parts:
    """One execution's parts, in seconds (``PARTS`` order)."""

    submit: float
    delivery: float
    steps: float
    told: float

    def values(self) -> tuple[float, float, float, float]:
        return (self.submit, self.delivery, self.steps, self.told)


async def measure(target: Target, workflow: str, count: int) -> list[Parts]:
    """``count`` executions of ``workflow``, one at a time, split into their parts."""
    found = []
    for _ in range(count):
        begun = time.time()
        eid = await target.engine.execute_async(workflow)
        submitted = time.time()
        snapshot = await target.engine.wait(eid, timeout=60)
        returned = time.time()
        first = min(s.started_at for s in snapshot.steps.values() if s.started_at is not None)
        finished = snapshot.finished_at
        if snapshot.status != "completed" or finished is None:
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        parts = Parts(
            submitted - begun, first - snapshot.created_at, finished - first, returned - finished
        )
        found.append(parts)
    return found


def _target(args: argparse.Namespace) -> AbstractAsyncContextManager[Target]:
    shapes = [shape(args.shape)]
    if args.mode == "embedded":
        return embedded(shapes)
    processes = int(args.mode.removeprefix("cluster-"))
    return cluster(shapes, processes, args.redis_url, args.kafka, concurrency=args.concurrency)


def processes(target: Target, kafka: str) -> dict[str, Callable[[], float]]:
    """How to read the CPU seconds of each process of this machine an execution of
    ``target`` spends (this one exactly; the others in ``/proc``'s clock ticks), by name: the
    broker and Redis are the processes listening on their ports."""
    if target.pids == [os.getpid()]:
        return {"this process (workers and client)": time.process_time}
    workers = target.pids
    found: dict[str, Callable[[], float]] = {
        f"worker processes ({len(workers)})": partial(procstats.cpu_seconds, workers),
        "client (this process)": time.process_time,
    }
    services = {"broker": kafka.rpartition(":")[2]}
    if target.redis_url is not None:
        services["redis"] = str(urlparse(target.redis_url).port or 6379)
    for name, port in services.items():
        pid = procstats.listener_pid(int(port))
        if pid is not None:
            found[name] = partial(procstats.cpu_seconds, [pid])
    return found


async def cpu_table(
    target: Target, kafka: str, workflow: str, count: int
) -> tuple[list[Parts], str]:
    """``measure``, and the CPU milliseconds each process spent per execution meanwhile."""
    readers = processes(target, kafka)
    before = {name: read() for name, read in readers.items()}
    found = await measure(target, workflow, count)
    spent = {name: read() - before[name] for name, read in readers.items()}
    lines = ["| process | CPU ms per execution |", "| --- | ---: |"]
    lines += [f"| {name} | {seconds / count * 1000:.2f} |" for name, seconds in spent.items()]
    return found, "\n".join(lines)


def table(found: list[Parts]) -> str:
    lines = ["| part | p50 ms | max ms |", "| --- | ---: | ---: |"]
    for i, name in enumerate(PARTS):
        values = [parts.values()[i] * 1000 for parts in found]
        lines.append(f"| {name} | {statistics.median(values):.2f} | {max(values):.2f} |")
    return "\n".join(lines)


async def run(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--mode", default="cluster-1", help="embedded or cluster-N")
    parser.add_argument("--shape", default="chain-10")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="slots per process")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    parser.add_argument("--kafka", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092"))
    args = parser.parse_args(argv)
    async with _target(args) as target:
        found, cpu = await cpu_table(target, args.kafka, args.shape, args.count)
    return table(found) + "\n\n" + cpu


def main(argv: list[str] | None = None) -> int:
    print(asyncio.run(run(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
