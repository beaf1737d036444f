"""Celery cells: the same shapes as ``chain`` and ``chord(group, callback)`` of no-op tasks.

``chain-10`` is ``chain(noop.si() x 10)``; ``diamond`` and ``fanout-50`` are
``noop.si() | chord([noop.si()] x N, noop.si())``. A worker (``celery -A benchmarks.celery_app
worker -P POOL -c N``, without gossip, mingle and heartbeat, log level WARNING) runs them with
Redis as broker and result backend, in a database of its own that must be empty at the start
(its keys are removed at the end). Ends are when ``AsyncResult.get()`` returns (the result
backend's pub/sub), so unlike Flowloom's figures they include the client seeing the result.
Dispatch latency is not measured for Celery (its tasks keep no start and end times).
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import redis

from . import procstats, round_trips
from .measure import Figures, Plan
from .redis_count import Monitor, redis_ports
from .workloads import Shape

__all__ = ["POOLS", "CeleryTarget", "celery_worker", "check_empty", "measure_celery"]

POOLS = {"prefork-2": ("prefork", 2), "threads-8": ("threads", 8)}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class CeleryTarget:
    url: str
    queue: str
    pid: int
    tasks: Any  # the benchmarks.celery_app module, imported with the run's URL and queue
    round_trips: Path  # where the worker's processes count their Redis requests


def check_empty(url: str) -> None:
    """The Celery database must be empty: its keys are all removed at the end."""
    client = redis.Redis.from_url(url)
    try:
        if client.dbsize():
            raise RuntimeError(f"{url} is not empty: give --celery-url a free Redis database")
    finally:
        client.close()


def clear(url: str) -> None:
    """Remove the run's keys (the database was empty before it, see ``check_empty``)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])
    finally:
        client.close()


def _tasks(url: str, queue: str) -> Any:
    os.environ["FLOWLOOM_BENCH_CELERY_URL"] = url
    os.environ["FLOWLOOM_BENCH_CELERY_QUEUE"] = queue
    from . import celery_app

    celery_app.app.conf.update(broker_url=url, result_backend=url, task_default_queue=queue)
    return celery_app


@contextmanager
def celery_worker(pool: str, url: str) -> Iterator[CeleryTarget]:
    kind, concurrency = POOLS[pool]
    queue = f"flbench-{uuid.uuid4().hex[:10]}"
    env = dict(os.environ, FLOWLOOM_BENCH_CELERY_URL=url, FLOWLOOM_BENCH_CELERY_QUEUE=queue)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    module = ["celery", "-A", "benchmarks.celery_app", "worker"]
    module += ["-P", kind, "-c", str(concurrency), "-Q", queue, "-n", f"{queue}@%h"]
    module += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"]
    counted = Path(tempfile.mkdtemp(prefix=f"{queue}-round-trips-"))
    command = round_trips.command(counted, module)
    log = open(os.path.join(tempfile.gettempdir(), f"{queue}.log"), "ab")  # noqa: SIM115
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        target = CeleryTarget(url, queue, proc.pid, _tasks(url, queue), counted)
        yield target
        gc.collect()  # results that are gone unsubscribe now, not at interpreter exit
        # Results the collector meets only at interpreter exit unsubscribe then, when redis-py
        # can no longer connect (a traceback per result): with no pub/sub they have none to end.
        consumer = target.tasks.app.backend.result_consumer
        consumer.stop()
        consumer._pubsub = None  # the next session's first result subscribes anew
    finally:
        log.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(counted, ignore_errors=True)


def signature(tasks: Any, item: Shape) -> Any:
    from celery import chain, chord

    noop = tasks.noop
    preds = item.predecessors()
    if all(len(p) <= 1 for p in preds.values()):  # a chain
        return chain(*(noop.si() for _ in item.nodes))
    width = item.steps - 2
    return noop.si() | chord([noop.si() for _ in range(width)], noop.si())


def run_batch(sig: Any, count: int, timeout: float) -> float:
    started = time.time()
    results = [sig.apply_async() for _ in range(count)]
    for result in results:
        result.get(timeout=timeout, disable_sync_subtasks=False)
    return time.time() - started


def count_commands(
    target: CeleryTarget, sig: Any, item: Shape, plan: Plan, figures: Figures
) -> None:
    url = urlparse(target.url)
    db = int((url.path or "/15").lstrip("/") or 15)
    executions = plan.executions(plan.count_steps, item.steps)
    before = _requests(target)
    with Monitor(target.url, db, target.queue) as monitor:
        run_batch(sig, executions, plan.timeout)
        workers = redis_ports(procstats.tree(target.pid), url.port or 6379)
        client = redis_ports([os.getpid()], url.port or 6379)
    made = _requests(target) - before
    figures.set_counts(monitor.count, workers, client, executions * item.steps, made)


def _requests(target: CeleryTarget) -> int:
    """The Redis round trips the worker's processes made so far, once their counts are
    written."""
    time.sleep(2.5 * round_trips.INTERVAL)
    return round_trips.total(target.round_trips)


def measure_celery(target: CeleryTarget, item: Shape, plan: Plan) -> Figures:
    """Warm up, the load batch (steps/s, CPU), singles (end to end), the command count."""
    sig = signature(target.tasks, item)
    run_batch(sig, 2, max(plan.timeout, 60.0))  # the worker may still be starting
    figures = Figures(processes=len(procstats.tree(target.pid)))
    executions = plan.executions(plan.load_steps, item.steps)
    cpu = procstats.cpu_seconds(procstats.tree(target.pid))
    seconds = run_batch(sig, executions, plan.timeout)
    cpu = procstats.cpu_seconds(procstats.tree(target.pid)) - cpu
    figures.steps_per_s = executions * item.steps / seconds
    figures.executions_per_s = executions / seconds
    figures.cpu_ms_per_step = cpu * 1000 / (executions * item.steps)
    for _ in range(plan.singles):
        figures.e2e.append(run_batch(sig, 1, plan.timeout))
    count_commands(target, sig, item, plan, figures)
    figures.peak_rss_mib = max(procstats.peak_rss_mib(pid) for pid in procstats.tree(target.pid))
    return figures
