"""``InstrumentedEngine``: run workflows on both backends, scrape ``/metrics`` over real HTTP,
read it with prometheus-client's parser, and check every value equals what ran."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

import pytest
from cluster_app import STEPS, WORKFLOW, build_engine, cluster_runtime
from prometheus_client.parser import text_string_to_metric_families
from scenario_support import FAST_POOL, Probe, RuntimeFactory, blueprint, delete_prefix
from support import assert_eventually, require_kafka, require_redis

from distributed import (
    DistributedEngine,
    InstrumentedEngine,
    InvalidSettings,
    MQTaskQueue,
    RecoveryConfig,
    RecoveryManager,
    Runtime,
    Task,
)
from distributed.hooks import StepOutcomeName
from distributed.instrumented import dead_letter_reason
from distributed.lease import acquire_lease
from distributed.models import FinalStatusName
from metrics import METRICS, MetricsServer, PrometheusCollector, serve_metrics
from orchestration import Engine

WAIT = 60
HERE = Path(__file__).resolve().parent
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode("utf-8")


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    """How ``parse`` keys a sample: its name and its labels."""
    return name, frozenset(labels.items())


def parse(text: str) -> Samples:
    """Every sample of a scrape, read with prometheus-client's parser."""
    return {
        key(sample.name, **sample.labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass
class Observed:
    """A runtime whose engine is instrumented, and its ``/metrics`` endpoint."""

    runtime: Runtime
    engine: InstrumentedEngine
    server: MetricsServer

    async def scrape(self) -> Samples:
        """GET /metrics from a thread (the loop keeps running the workflows meanwhile)."""
        return parse(await asyncio.to_thread(fetch, self.server.url))

    async def value(self, name: str, **labels: str) -> float | None:
        return (await self.scrape()).get(key(name, **labels))


def total(samples: Samples, name: str) -> float:
    """The sum of a metric's series (queue_lag over partitions, say)."""
    return sum(v for (n, _), v in samples.items() if n == name)


@contextlib.asynccontextmanager
async def observed(runtime: Runtime, *, sample_interval: float = 0.1) -> AsyncIterator[Observed]:
    """Instrument ``runtime`` before it starts (so every worker is seen), serve, start it."""
    collector = PrometheusCollector()
    engine = InstrumentedEngine(
        runtime.engine, collector, pool=runtime.pool, sample_interval=sample_interval
    )
    with serve_metrics(collector, port=0) as server:
        async with runtime:
            try:
                yield Observed(runtime, engine, server)
            finally:
                await engine.close()  # stop sampling before the runtime closes its store


def register_demo(engine: Engine) -> None:
    """A success with a retry, a failure, a step held by a gate (to pause around), a slow one."""
    retrying = {"b": {"maxRetries": 2, "retryDelay": 10}}
    engine.register_blueprint(
        blueprint("ok", {"a": {}, "b": {"fail_times": 1}}, [("a", "b")], retrying)
    )
    engine.register_blueprint(blueprint("bad", {"a": {"fail": True}}, []))
    engine.register_blueprint(blueprint("held", {"a": {"gate": "held"}, "b": {}}, [("a", "b")]))
    engine.register_blueprint(blueprint("slow", {"a": {"delay": 30}}, []))


async def run_demo(seen: Observed, probe: Probe) -> None:
    """What the metrics below must count, on whichever backend."""
    engine = seen.engine
    assert (await engine.execute_sync("ok", {}, timeout=WAIT)).status == "completed"
    bad = await engine.execute_sync("bad", {}, timeout=WAIT)
    await seen.runtime.recovery.recover_failed_execution(bad.execution_id)  # fails again: gen 2
    assert (await engine.wait(bad.execution_id, timeout=WAIT)).generation == 2
    slow = await engine.execute_async("slow", {})
    await assert_eventually(lambda: (slow, "a") in probe.started, timeout=WAIT)
    assert [await engine.cancel(slow) for _ in range(3)] == [True, False, False]
    await engine.time_out(slow)  # too late: one final status, counted once
    await pause_and_resume_with_dead_letters(seen, probe)


async def pause_and_resume_with_dead_letters(seen: Observed, probe: Probe) -> None:
    engine = seen.engine
    held = await engine.execute_async("held", {})
    await assert_eventually(lambda: (held, "a") in probe.started, timeout=WAIT)
    await engine.pause(held)
    queue = engine.queue
    assert isinstance(queue, MQTaskQueue)
    await queue.enqueue(Task(execution_id="nobody", node_id="x"))  # unknown execution
    await queue.enqueue(Task(execution_id=held, node_id="no-such-step"))  # unknown step
    await seen.runtime.broker.publish(queue.topic, b"not a task")  # undecodable
    probe.open_gate("held")
    await assert_eventually(lambda: _completed(engine, held, "a"), timeout=WAIT)
    await engine.resume(held)
    assert (await engine.wait(held, timeout=WAIT)).status == "completed"


async def _completed(engine: InstrumentedEngine, execution_id: str, step: str) -> bool:
    snapshot = await engine.get_execution_status(execution_id)
    return step in snapshot.completed_steps


STARTED, COMPLETED = "workflow_execution_started_total", "workflow_execution_completed_total"
# Every task through the queue: a task started eagerly (distributed.dispatch) leaves its queued
# copy to be dropped, so the queue's lag would count copies, not what waits for a slot.
DELIVERED_ONLY = replace(FAST_POOL, worker=replace(FAST_POOL.worker, eager=False))
EXPECTED: Samples = {
    key(STARTED, workflow="ok"): 1,
    key(STARTED, workflow="bad"): 1,
    key(STARTED, workflow="slow"): 1,
    key(STARTED, workflow="held"): 1,
    key(COMPLETED, workflow="ok", status="completed"): 1,
    key(COMPLETED, workflow="bad", status="failed"): 2,  # once per generation
    key(COMPLETED, workflow="slow", status="cancelled"): 1,  # once, though cancelled 3 times
    key(COMPLETED, workflow="held", status="completed"): 1,
    key("workflow_pause_total"): 1,
    key("workflow_resume_total"): 1,
    key("workflow_recovered_total"): 1,
    key("step_retries_total"): 1,
    key("lease_expired_total"): 0,
    key("dead_letters_total", reason="undecodable"): 1,
    key("dead_letters_total", reason="unknown_execution"): 1,
    key("dead_letters_total", reason="unknown_step"): 1,
    key("step_dispatch_latency_seconds_count"): 8,  # one per attempt
    key("steps_in_flight"): 0,
    key("workers"): 2,
    key("worker_slots", state="busy"): 0,
    key("worker_slots", state="idle"): 16,
    key("executions_active"): 0,
}
ATTEMPTS = {  # step_duration_seconds_count by (workflow, step, outcome)
    ("ok", "a", "completed"): 1,
    ("ok", "b", "retry"): 1,
    ("ok", "b", "completed"): 1,
    ("bad", "a", "failed"): 2,
    ("slow", "a", "cancelled"): 1,
    ("held", "a", "completed"): 1,
    ("held", "b", "completed"): 1,
}


def _attempts(samples: Samples) -> dict[tuple[str, str, str], float]:
    return {
        (labels["workflow"], labels["step"], labels["outcome"]): v
        for (name, frozen), v in samples.items()
        if name == "step_duration_seconds_count"
        for labels in [dict(frozen)]
    }


async def _settled(seen: Observed) -> Samples | None:
    """The scrape, once the dead letters, the cancelled step and the samplers have caught up."""
    samples = await seen.scrape()
    caught_up = total(samples, "dead_letters_total") == 3 and _attempts(samples) == ATTEMPTS
    sampled = total(samples, "queue_lag") == 0 and samples[key("executions_active")] == 0
    return samples if caught_up and sampled else None


async def test_every_metric_equals_what_ran(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    register_demo(engine)
    async with observed(make_runtime(engine, DELIVERED_ONLY)) as seen:
        await run_demo(seen, probe)
        samples = await assert_eventually(lambda: _settled(seen), timeout=WAIT)
    assert {k: samples.get(k) for k in EXPECTED} == EXPECTED
    assert _attempts(samples) == ATTEMPTS
    assert samples[key("step_dispatch_latency_seconds_sum")] > 0
    assert any(name == "queue_lag" for name, _ in samples)  # the workers' consumers report it


async def test_a_dead_workers_lease_expiry_is_counted_where_the_sweep_ran(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    """A client process (no workers) serves metrics too; its sweep reclaims a dead worker's
    step (simulated: a lease taken as "doomed" that nobody heartbeats) until the step fails."""
    engine.register_blueprint(blueprint("poison", {"p": {}}, []))
    async with observed(make_runtime(engine, workers=False)) as seen:
        eid = await seen.engine.execute_async("poison", {})
        context = seen.engine.context
        recovery = RecoveryManager.from_context(context, RecoveryConfig(max_lease_expiries=3))
        await die_holding_the_lease(seen, recovery, eid)
        await die_holding_the_lease(seen, recovery, eid)
        await seen.engine.sample()
        alive = await seen.scrape()
        await die_holding_the_lease(seen, recovery, eid)  # the third death fails the step
        await seen.engine.sample()
        failed = await seen.scrape()
    assert alive[key("lease_expired_total")] == 2
    assert alive[key("executions_active")] == 1
    assert (alive[key("workers")], alive[key("steps_in_flight")]) == (0, 0)
    assert not [name for name, _ in alive if name == "queue_lag"]  # no consumer in a client
    assert failed[key("lease_expired_total")] == 3
    assert failed[key(COMPLETED, workflow="poison", status="failed")] == 1
    assert failed[key("executions_active")] == 0


async def die_holding_the_lease(seen: Observed, recovery: RecoveryManager, eid: str) -> None:
    persistence = seen.engine.persistence
    current = await persistence.step(eid, "p")
    lease = await acquire_lease(persistence, eid, "p", current, owner="doomed", ttl=0.01)
    assert lease is not None

    async def swept() -> bool:  # the sweeper sees the lease lapse on its own clock
        await recovery.sweep()
        moved = await persistence.step(eid, "p")
        return moved is not None and moved.record.status != "running"

    await assert_eventually(swept, message="the sweep reclaimed the dead worker's step")


async def test_in_flight_slots_lag_and_active_executions_follow_the_running_steps(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """One worker of 4 slots, 6 executions held at a gate: 4 run, 2 wait in the queue. The
    sampled gauges (lag, active executions) are read by the background sampler."""
    engine.register_blueprint(blueprint("gated", {"a": {"gate": "go"}}, []))
    pool = replace(DELIVERED_ONLY, worker_count=1, concurrency=4)
    async with observed(make_runtime(engine, pool)) as seen:
        ids = [await seen.engine.execute_async("gated", {}) for _ in range(6)]
        expected = {"steps_in_flight": 4, "busy": 4, "idle": 0, "lag": 6, "active": 6}
        await assert_eventually(lambda: _gauges_are(seen, expected), timeout=WAIT)
        probe.open_gate("go")
        for eid in ids:
            await seen.engine.wait(eid, timeout=WAIT)
        drained = {"steps_in_flight": 0, "busy": 0, "idle": 4, "lag": 0, "active": 0}
        await assert_eventually(lambda: _gauges_are(seen, drained), timeout=WAIT)
        assert seen.runtime.pool is not None
        await seen.runtime.pool.scale(2)
        assert await seen.value("workers") == 2
        assert await seen.value("worker_slots", state="idle") == 8


async def _gauges_are(seen: Observed, expected: Mapping[str, float]) -> bool:
    samples = await seen.scrape()
    found = {
        "steps_in_flight": samples[key("steps_in_flight")],
        "busy": samples[key("worker_slots", state="busy")],
        "idle": samples[key("worker_slots", state="idle")],
        "lag": total(samples, "queue_lag"),
        "active": samples[key("executions_active")],
    }
    return found == expected


async def test_scrapes_while_200_executions_run_count_every_one_of_them(
    engine: Engine, tmp_path: Path
) -> None:
    """A scraper hammers /metrics from a thread while 200 executions run; every scrape parses,
    the counters never go back, and the last one counts all 200 (how long the executions take
    with and without scrapes is measured in benchmarks/metrics_overhead.py, not here)."""
    engine.register_blueprint(blueprint("quick", {"a": {}, "b": {}}, [("a", "b")]))
    stop = threading.Event()
    async with observed(Runtime.embedded(engine, str(tmp_path), pool=FAST_POOL)) as seen:
        scraper = asyncio.ensure_future(asyncio.to_thread(_scrape_until, seen.server.url, stop))
        ids = [await seen.engine.execute_async("quick", {}) for _ in range(200)]
        statuses = {(await seen.engine.wait(eid, timeout=WAIT)).status for eid in ids}
        stop.set()
        scrapes = await scraper  # a scrape that failed to parse raises here
        last = await seen.scrape()
    assert statuses == {"completed"}
    done = key(COMPLETED, workflow="quick", status="completed")
    assert last[done] == 200
    assert (
        last[key("step_duration_seconds_count", workflow="quick", step="b", outcome="completed")]
        == 200
    )
    counts = [s.get(done, 0.0) for s in scrapes]
    assert len(scrapes) >= 2 and counts == sorted(counts)


def _scrape_until(url: str, stop: threading.Event) -> list[Samples]:
    scrapes = []
    while not stop.is_set():
        scrapes.append(parse(fetch(url)))
    return scrapes


async def test_two_instrumented_runtimes_in_one_process_count_only_their_own(
    engine: Engine, tmp_path: Path
) -> None:
    engine.register_blueprint(blueprint("one", {"a": {}}, []))
    first = Runtime.embedded(engine, str(tmp_path / "first"), pool=FAST_POOL)
    second = Runtime.embedded(engine, str(tmp_path / "second"), pool=FAST_POOL)
    async with observed(first) as a, observed(second) as b:
        await a.engine.execute_sync("one", {}, timeout=WAIT)
        for _ in range(2):
            await b.engine.execute_sync("one", {}, timeout=WAIT)
        assert a.server.port != b.server.port
        assert await a.value("workflow_execution_started_total", workflow="one") == 1
        assert await b.value("workflow_execution_started_total", workflow="one") == 2


async def test_the_instrumented_engine_is_the_engine_on_the_same_context(
    engine: Engine, tmp_path: Path
) -> None:
    """It goes wherever a DistributedEngine goes: a RecoveryManager built on it shares (and
    so reports through) the runtime's context."""
    runtime = Runtime.embedded(engine, str(tmp_path), pool=FAST_POOL)
    instrumented = InstrumentedEngine(runtime.engine, PrometheusCollector(), pool=runtime.pool)
    assert isinstance(instrumented, DistributedEngine)
    assert instrumented.context is runtime.engine.context
    assert instrumented.hooks in runtime.engine.context.hooks.hooks
    recovery = RecoveryManager(instrumented.persistence, instrumented.queue, instrumented)
    assert recovery.context is runtime.engine.context
    await instrumented.close()
    await runtime.close()


async def test_a_sample_interval_that_is_not_positive_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    runtime = Runtime.embedded(engine, str(tmp_path))
    with pytest.raises(InvalidSettings, match="sample_interval"):
        InstrumentedEngine(runtime.engine, PrometheusCollector(), sample_interval=0)
    await runtime.close()


def test_the_bounded_label_values_are_exactly_what_the_hooks_can_report() -> None:
    """A new step outcome or final status must be added to the catalog, or it would be
    refused (and logged) instead of counted."""
    allowed = {spec.name: spec.allowed for spec in METRICS}
    assert set(allowed["step_duration_seconds"]["outcome"]) == set(get_args(StepOutcomeName))
    statuses = set(allowed["workflow_execution_completed_total"]["status"])
    assert statuses == set(get_args(FinalStatusName))


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("not a task: ValidationError: 1 validation error for Task", "undecodable"),
        ("undecodable task", "undecodable"),
        ("unknown execution 'a1b2c3'", "unknown_execution"),
        ("workflow 'etl' has no step 'load'", "unknown_step"),
        ("delivery limit of 5 reached: consumers closed without ack", "delivery_limit"),
        ("the disk caught fire", "other"),
    ],
)
def test_a_dead_letters_free_text_reason_becomes_one_of_five_labels(
    reason: str, label: str
) -> None:
    assert dead_letter_reason(reason) == label


# -- several worker processes on one host: one port each, and the numbers add up -------------

WORKER_PROCESS = """
import asyncio, sys
from cluster_app import build_engine, cluster_runtime, pool_config
from distributed import InstrumentedEngine
from metrics import PrometheusCollector, serve_metrics

async def main(redis_url, prefix, broker_url, tag):
    runtime = cluster_runtime(
        build_engine(), redis_url, prefix, broker_url, tag, pool=pool_config(tag)
    )
    collector = PrometheusCollector()
    InstrumentedEngine(runtime.engine, collector, pool=runtime.pool, sample_interval=0.2)
    with serve_metrics(collector, port=0) as server:
        async with runtime:
            print(server.port, flush=True)
            await asyncio.to_thread(sys.stdin.read)  # until the test closes our stdin

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.fixture
def worker_processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; stopped (stdin closed, then killed) when it ends."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
    for proc in procs:
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def spawn_worker(procs: list[subprocess.Popen[str]], *args: str) -> subprocess.Popen[str]:
    """Start an instrumented worker process (it prints the port of its /metrics)."""
    paths = [HERE.parents[1], HERE, HERE.parent]  # the repository, these tests, tests/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in paths)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_PROCESS, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    procs.append(proc)
    return proc


async def metrics_url(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    port = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), WAIT)
    assert port.strip(), f"worker process {proc.pid} did not start (exit {proc.poll()})"
    return f"http://127.0.0.1:{int(port)}/metrics"


async def test_two_worker_processes_serve_on_their_own_ports_and_their_numbers_add_up(
    worker_processes: list[subprocess.Popen[str]],
) -> None:
    tag = f"flowloom-metrics-{uuid.uuid4().hex[:8]}"
    redis_url, broker_url = require_redis(), f"kafka://{require_kafka()}"
    args = (redis_url, f"{tag}:", broker_url, tag)
    procs = [spawn_worker(worker_processes, *args) for _ in range(2)]
    urls = [await metrics_url(proc) for proc in procs]
    try:
        client = cluster_runtime(build_engine(), *args, workers=False)
        async with observed(client) as seen:
            ids = await submit_until_both_worked(seen, urls)
            scrapes = await assert_eventually(lambda: _all_counted(urls, len(ids)), timeout=WAIT)
            mine = await seen.scrape()
    finally:
        await delete_prefix(f"{tag}:")
    n = len(ids)
    assert mine[key(STARTED, workflow=WORKFLOW)] == n  # counted where they were submitted
    assert all(s.get(key(STARTED, workflow=WORKFLOW)) is None for s in scrapes)
    assert mine.get(key(COMPLETED, workflow=WORKFLOW, status="completed")) is None
    assert sum(s[key("step_dispatch_latency_seconds_count")] for s in scrapes) == n * len(STEPS)
    assert [s[key("workers")] for s in scrapes] == [1, 1]
    assert all(s[key("step_duration_seconds_count", **_step("fan"))] > 0 for s in scrapes)


def _step(step: str) -> dict[str, str]:
    return {"workflow": WORKFLOW, "step": step, "outcome": "completed"}


async def submit_until_both_worked(seen: Observed, urls: list[str]) -> list[str]:
    """Submit rounds of 10 until 20 ran and both processes ran steps (a group join may land
    after the first round)."""
    ids: list[str] = []
    while len(ids) < 20 or not await _both_worked(urls):
        assert len(ids) < 200, "one worker process never ran a step"
        batch = [await seen.engine.execute_async(WORKFLOW, {}) for _ in range(10)]
        for eid in batch:
            assert (await seen.engine.wait(eid, timeout=WAIT)).status == "completed"
        ids += batch
    return ids


async def _both_worked(urls: list[str]) -> bool:
    scrapes = [parse(await asyncio.to_thread(fetch, url)) for url in urls]
    return all(total(s, "step_dispatch_latency_seconds_count") > 0 for s in scrapes)


async def _all_counted(urls: list[str], n: int) -> list[Samples] | None:
    """Both scrapes, once every final status and every step of ``n`` executions is counted
    (across the two processes: each once, by the process where it happened)."""
    scrapes = [parse(await asyncio.to_thread(fetch, url)) for url in urls]
    finals = sum(s.get(key(COMPLETED, workflow=WORKFLOW, status="completed"), 0) for s in scrapes)
    steps = [
        sum(s.get(key("step_duration_seconds_count", **_step(st)), 0) for s in scrapes)
        for st in STEPS
    ]
    return scrapes if finals == n and steps == [n] * len(STEPS) else None
