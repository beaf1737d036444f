"""Flowloom cells: a shape measured on an embedded runtime or on a cluster of worker processes.

``embedded``: LevelDB (temporary directory) + the in-process broker, a pool of 2 workers x 8
slots in this process; CPU and RSS are this process's. ``cluster-N``: N worker processes
(``python -m distributed worker benchmarks.workloads:build_engine``, 1 worker x 8 slots each,
log level WARNING, stderr in ``$TMPDIR/<tag>.log``, their Redis requests counted by
``round_trips``) on Redis + the Kafka-protocol broker, under
a unique namespace (keys, topic, group; its keys are deleted afterwards), and a client runtime
without workers here; executions run for ``SETTLE`` seconds before the cells, while the
processes join the consumer group. The client waits with the default ``EngineConfig``: final-status
notices wake it, its polls are the fallback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import redis.asyncio as aioredis

from distributed import PoolConfig, Runtime, WorkerConfig
from distributed.engine import DistributedEngine
from store import Delete, open_store

from . import procstats, round_trips
from .measure import Figures, Plan
from .redis_count import Monitor, redis_ports
from .workloads import Shape, local_engine

__all__ = ["Target", "cluster", "embedded", "measure_shape"]

ROOT = Path(__file__).resolve().parents[1]
APP = "benchmarks.workloads:build_engine"
TANSU = "session_timeout_ms=6000&heartbeat_interval_ms=500&fetch_max_wait_ms=20"
CONCURRENCY = 8  # slots per worker
SETTLE = 10.0  # seconds of warm-up after the worker processes start


@dataclass
class Target:
    """Where a cell runs: the client's engine, the worker processes, and how to count Redis."""

    engine: DistributedEngine
    pids: list[int]
    redis_url: str | None = None  # None: no Redis to count (embedded)
    marker: str = ""  # the run's key prefix, to attribute commands run inside Lua scripts
    processes: int = 1
    rss: Callable[[], float] = field(default=lambda: 0.0)
    data_dir: Path | None = None  # embedded: the LevelDB directory
    round_trips: Path | None = None  # where the worker processes count their Redis requests


@asynccontextmanager
async def embedded(shapes: list[Shape], retention: float | None = None) -> AsyncIterator[Target]:
    """An embedded runtime (LevelDB in a temporary directory, the in-process broker, 2 x 8
    slots); ``retention``: finished executions expire after that many seconds."""
    with tempfile.TemporaryDirectory(prefix="flowloom-bench-") as directory:
        pool = PoolConfig(
            worker_count=2, concurrency=CONCURRENCY, worker=WorkerConfig(grace_period=5.0)
        )
        runtime = Runtime.from_urls(
            local_engine(shapes),
            store_url=f"leveldb://{directory}/leveldb",
            broker_url="inproc://",
            pool=pool,
            retention=retention,
        )
        async with runtime:
            pid = os.getpid()
            rss = lambda: procstats.rss_mib(pid)  # noqa: E731
            yield Target(runtime.engine, [pid], rss=rss, data_dir=Path(directory))


def _worker_env(
    redis_url: str, kafka: str, tag: str, retention: float | None = None
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FLOWLOOM_STORE_URL=redis_url,
        FLOWLOOM_BROKER_URL=f"kafka://{kafka}?{TANSU}",
        FLOWLOOM_NAMESPACE=tag,
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    if retention is not None:
        env["FLOWLOOM_RETENTION"] = str(retention)
    return env


def start_workers(
    processes: int,
    redis_url: str,
    kafka: str,
    tag: str,
    retention: float | None = None,
    concurrency: int = CONCURRENCY,
    *,
    counted: Path,
) -> list[subprocess.Popen[bytes]]:
    """``processes`` worker processes, their Redis round trips counted in ``counted``
    (``round_trips``)."""
    module = ["distributed", "worker", APP]
    module += ["--workers", "1", "--concurrency", str(concurrency), "--log-level", "WARNING"]
    command = round_trips.command(counted, module)
    env = _worker_env(redis_url, kafka, tag, retention)
    with open(worker_log(tag), "ab") as log:  # the workers' warnings and errors
        return [
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
            for _ in range(processes)
        ]


def worker_log(tag: str) -> Path:
    """Where the worker processes of a run write their stderr."""
    return Path(tempfile.gettempdir()) / f"{tag}.log"


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def delete_keys(redis_url: str, prefix: str) -> None:
    """Remove what the run wrote to the shared Redis (only under its own prefix): its keys
    through the store, so that they leave the store's key and expiry indexes too (unlinked
    raw, they stayed there: 2.6 M members, 450 MB, after a day of runs), then whatever is
    left under the prefix (the keys and indexes of a store opened with that prefix, as
    ``commit_bench``'s) and its event logs (``\\x00log:`` + the key), raw."""
    store = open_store(redis_url)
    try:
        keys = [key async for key, _ in store.scan(prefix)]
        for start in range(0, len(keys), 500):
            await store.batch([Delete(key) for key in keys[start : start + 500]])
    finally:
        await store.close()
    client = aioredis.Redis.from_url(redis_url)
    try:
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
        for pattern in (escaped + "*", "\x00log:" + escaped + "*"):
            batch: list[bytes] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await client.unlink(*batch)
                    batch.clear()
            if batch:
                await client.unlink(*batch)
    finally:
        await client.aclose()


@asynccontextmanager
async def cluster(
    shapes: list[Shape],
    processes: int,
    redis_url: str,
    kafka: str,
    retention: float | None = None,
    *,
    concurrency: int = CONCURRENCY,
) -> AsyncIterator[Target]:
    """``processes`` worker processes of ``concurrency`` slots and a client without workers
    in this process, on Redis and the broker; ``retention``: finished executions expire after
    that long. The worker processes count their Redis round trips (``round_trips``)."""
    tag = f"flbench-{uuid.uuid4().hex[:10]}"
    counted = Path(tempfile.mkdtemp(prefix=f"{tag}-round-trips-"))
    procs = start_workers(processes, redis_url, kafka, tag, retention, concurrency, counted=counted)
    runtime = Runtime.from_urls(
        local_engine(shapes),
        store_url=redis_url,
        broker_url=f"kafka://{kafka}?{TANSU}",
        workers=False,
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        retention=retention,
    )
    try:
        async with runtime:
            await settle(runtime.engine, shapes[0], processes)
            pids = [p.pid for p in procs]
            yield Target(
                runtime.engine,
                pids,
                redis_url=redis_url,
                marker=f"{tag}/",
                processes=processes,
                rss=lambda: max(procstats.peak_rss_mib(pid) for pid in pids),
                round_trips=counted,
            )
    finally:
        stop_workers(procs)
        shutil.rmtree(counted, ignore_errors=True)
        await delete_keys(redis_url, f"{tag}/")


async def settle(engine: DistributedEngine, item: Shape, processes: int) -> None:
    """Run executions for ``SETTLE`` seconds after the workers start, so every process has
    joined the consumer group (each join rebalances it) before anything is measured."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        await run_batch(engine, item.name, 2 * processes, timeout=60.0)


# -- measuring --------------------------------------------------------------------------------


async def run_batch(
    engine: DistributedEngine, workflow: str, count: int, timeout: float
) -> tuple[float, list[str]]:
    """Submit ``count`` executions at once; (seconds from the first submit to the last final
    status's ``finished_at``, their ids)."""
    started = time.time()
    ids = await asyncio.gather(*(engine.execute_async(workflow) for _ in range(count)))
    return await _finish(engine, ids, started, timeout), ids


async def _finish(
    engine: DistributedEngine, ids: list[str], started: float, timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    last = started
    for eid in ids:
        snapshot = await engine.wait(eid, timeout=max(deadline - time.monotonic(), 0.1))
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        last = max(last, snapshot.finished_at or time.time())
    return last - started


async def dispatch_times(engine: DistributedEngine, ids: list[str], item: Shape) -> list[float]:
    """Per step: its latest predecessor's ``finished_at`` (the execution's ``created_at`` for the
    root) to its ``started_at`` (lease taken), from the step records."""
    predecessors = item.predecessors()
    delays: list[float] = []
    for eid in ids:
        snapshot = await engine.get_execution_status(eid)
        ends = {r.node_id: r.finished_at for r in snapshot.steps.values()}
        for record in snapshot.steps.values():
            before = [ends.get(p) for p in predecessors.get(record.node_id, [])]
            ready = max((t for t in before if t is not None), default=snapshot.created_at)
            if record.started_at is not None:
                delays.append(record.started_at - ready)
    return delays


async def singles(engine: DistributedEngine, workflow: str, plan: Plan) -> list[float]:
    """End to end, one execution at a time: from the submit until ``wait`` returns the final
    status, what the client sees (as Celery's until ``get()`` returns)."""
    latencies = []
    for _ in range(plan.singles):
        started = time.time()
        eid = await engine.execute_async(workflow)
        snapshot = await engine.wait(eid, timeout=plan.timeout)
        if snapshot.status != "completed":
            raise RuntimeError(f"execution {eid} ended {snapshot.status}: {snapshot.error}")
        latencies.append(time.time() - started)
    return latencies


async def at_rate(
    engine: DistributedEngine, workflow: str, rate: float, seconds: float, timeout: float
) -> list[str]:
    """Submit executions at ``rate`` per second for ``seconds`` (open loop); wait for them."""
    count = max(2, round(rate * seconds))
    begin = time.monotonic()
    tasks = []
    for i in range(count):
        await asyncio.sleep(max(0.0, begin + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(engine.execute_async(workflow)))
    ids = list(await asyncio.gather(*tasks))
    await _finish(engine, ids, time.time(), timeout)
    return ids


async def count_commands(target: Target, item: Shape, plan: Plan, figures: Figures) -> None:
    """Run ``plan.count_steps`` steps under ``MONITOR``; commands per step by client process."""
    assert target.redis_url is not None
    url = urlparse(target.redis_url)
    db = int((url.path or "/0").lstrip("/") or 0)
    executions = plan.executions(plan.count_steps, item.steps)
    before = await _requests(target)
    with Monitor(target.redis_url, db, target.marker) as monitor:
        await run_batch(target.engine, item.name, executions, plan.timeout)
        workers = redis_ports(target.pids, url.port or 6379)
        client = redis_ports([os.getpid()], url.port or 6379)
    after = await _requests(target)
    made = None if before is None or after is None else after - before
    figures.set_counts(monitor.count, workers, client, executions * item.steps, made)


async def _requests(target: Target) -> int | None:
    """The Redis round trips the worker processes made so far (once their counts are
    written), or None where they are not counted."""
    if target.round_trips is None:
        return None
    await asyncio.sleep(2.5 * round_trips.INTERVAL)
    return round_trips.total(target.round_trips)


async def measure_shape(target: Target, item: Shape, plan: Plan) -> Figures:
    """Warm up, then: the load batch (steps/s, CPU), singles (end to end), half of peak load
    (dispatch), and on Redis the command count."""
    engine, figures = target.engine, Figures(processes=target.processes)
    await run_batch(engine, item.name, 2 * target.processes, plan.timeout)
    executions = plan.executions(plan.load_steps, item.steps)
    cpu = procstats.cpu_seconds(target.pids)
    seconds, _ = await run_batch(engine, item.name, executions, plan.timeout)
    cpu = procstats.cpu_seconds(target.pids) - cpu
    figures.steps_per_s = executions * item.steps / seconds
    figures.executions_per_s = executions / seconds
    figures.cpu_ms_per_step = cpu * 1000 / (executions * item.steps)
    figures.e2e = await singles(engine, item.name, plan)
    ids = await at_rate(
        engine, item.name, figures.executions_per_s / 2, plan.half_seconds, plan.timeout
    )
    figures.dispatch = await dispatch_times(engine, ids, item)
    if target.redis_url is not None:
        await count_commands(target, item, plan, figures)
    figures.peak_rss_mib = target.rss()
    return figures
