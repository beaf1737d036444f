"""Faults survived, one test each: a Redis restart, a frozen broker, store writes whose answer is
lost, a worker process crashing at each failpoint, a worker whose clock is 30 s off.

Each runs a mix of the ``chaos_app`` shapes (chain, diamond, fan-out + join, router + any-join)
through the fault, then checks with ``chaos_support.analyse`` what every chaos run checks: every
execution ``completed`` with one final status, every step result in place (lost: 0), each join
run once, no step run again after its result was committed. The services a test breaks are its
own (``fault_support``): a private ``redis-server`` and a private Tansu, never the shared ones.

Two of these faults exposed defects that are fixed: a lost answer to the final-status write no
longer silences ``execution_final`` (``claim_announcement``), and a worker clock 30 s behind no
longer has its steps re-run until they fail (leases lapse on the sweeper's own clock).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chaos_app import build_engine
from chaos_support import (
    ChaosReport,
    WorkerFleet,
    analyse,
    client_runtime,
    delete_namespace,
    inputs,
    read_run_log,
    unique_namespace,
)
from fault_support import LyingStore, PrivateRedis, PrivateTansu
from scenario_support import FAST_POOL, TANSU_OPTIONS, RuntimeFactory
from support import KAFKA_QUERY, assert_eventually, require_kafka, require_redis

from distributed import (
    ExecutionFinished,
    Hooks,
    KVPersistence,
    PoolConfig,
    RecoveryConfig,
    Runtime,
    WorkerPool,
)
from distributed.failpoints import FAILPOINTS
from distributed.settings import Settings
from store import KVStore, StoreUnavailable

T = TypeVar("T")
EXECUTIONS = 12  # per test: three of each shape
WAIT = 60.0  # seconds: a generous bound for what takes a few
LIES = 30  # writes done but reported as failed, per test


class Finals(Hooks):
    """Counts, in this process, the final statuses won per execution."""

    def __init__(self) -> None:
        self.won: Counter[str] = Counter()

    def execution_final(self, event: ExecutionFinished) -> None:
        self.won[event.execution_id] += 1


def pool(group: str, **worker: Any) -> PoolConfig:
    return replace(FAST_POOL, worker=replace(FAST_POOL.worker, group=group, **worker))


async def submit(runtime: Runtime, run_log: Path, delay: float) -> dict[str, tuple[str, str]]:
    ids = {}
    for index in range(EXECUTIONS):
        shape, values = inputs(index, run_log, delay)
        ids[await runtime.engine.execute_async(shape, values)] = (shape, values["route"])
    return ids


async def wait_all(runtime: Runtime, ids: dict[str, Any]) -> None:
    await asyncio.gather(*(runtime.engine.wait(eid, timeout=WAIT) for eid in ids))


async def through_stale_connections(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, again while it fails with ``StoreUnavailable``: after a Redis restart each
    pooled connection fails its first command (the store turns redis-py's retry off), so a
    client call may fail once after Redis is back; the workers' behaviour is what is tested."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return await call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def started(run_log: Path, count: int = 1) -> bool:
    return sum(line.kind == "start" for line in read_run_log(run_log)) >= count


def assert_survived(
    report: ChaosReport, finals: Finals | None = None, *, clocks_agree: bool = True
) -> None:
    """``clocks_agree=False``: a worker's clock is off, so a start logged on the real clock
    cannot be compared with a commit time that worker wrote; with no kill in play, every step
    must then have run exactly once."""
    summary = report.summary()
    assert dict(report.statuses) == {"completed": report.executions}, summary
    assert report.lost == [], summary
    assert report.double_joins == [], summary
    assert report.double_finals == [], summary
    if clocks_agree:
        assert report.reruns_after_commit == [], summary
    else:
        assert report.runs == report.steps, summary
    if finals is not None:
        assert set(finals.won.values()) == {1}, f"final statuses won: {finals.won}"
        assert len(finals.won) == report.executions, f"final statuses won: {finals.won}"


# -- Redis restarted mid-run --------------------------------------------------------------------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def private_tansu(tmp_path: Path) -> Iterator[PrivateTansu]:
    broker = PrivateTansu(tmp_path / "tansu")
    broker.start()
    yield broker
    broker.stop()


def cluster(store_url: str, broker: str, tag: str, hooks: Hooks | None = None) -> Runtime:
    return Runtime.from_urls(
        build_engine(),
        store_url=store_url,
        broker_url=f"kafka://{broker}",
        pool=pool(f"{tag}.workers"),
        namespace=f"{tag}/",
        topic=f"{tag}.tasks",
        broker_options=TANSU_OPTIONS,
        hooks=hooks,
    )


async def test_executions_complete_once_across_a_five_second_redis_restart(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    tag, run_log, finals = unique_namespace("redis-down"), tmp_path / "runs.log", Finals()
    async with cluster(private_redis.url, require_kafka(), tag, finals) as runtime:
        ids = await submit(runtime, run_log, delay=0.3)
        await assert_eventually(lambda: started(run_log, 3), timeout=WAIT, message="steps run")
        await private_redis.outage(5.0)
        await through_stale_connections(lambda: wait_all(runtime, ids))
        runs = read_run_log(run_log)
        report = await through_stale_connections(lambda: analyse(runtime, ids, runs, []))
    print(report.summary())
    assert private_redis.restarts == 1
    assert_survived(report, finals)


async def test_executions_complete_once_across_a_five_second_broker_freeze(
    private_tansu: PrivateTansu, tmp_path: Path
) -> None:
    redis_url = require_redis()
    tag, run_log, finals = unique_namespace("broker-down"), tmp_path / "runs.log", Finals()
    try:
        async with cluster(redis_url, private_tansu.bootstrap, tag, finals) as runtime:
            ids = await submit(runtime, run_log, delay=0.3)
            await assert_eventually(lambda: started(run_log, 3), timeout=WAIT, message="steps run")
            await private_tansu.outage(5.0)
            await wait_all(runtime, ids)
            report = await analyse(runtime, ids, read_run_log(run_log), [])
    finally:
        await delete_namespace(redis_url, tag)
    print(report.summary())
    assert private_tansu.pauses == 1
    assert_survived(report, finals)


# -- a write that happened, reported as failed (the Temporal case) -----------------------------

# The sweep re-enqueues a pending step that no message carries after ``requeue_after`` (60 s by
# default); many lies can leave such a step, so it is short here (the test after this one shows
# that the lost answers of a lease and of its reclaim cost seconds, not requeue_after).
LYING_POOL = replace(FAST_POOL, recovery=RecoveryConfig(requeue_after=2.0))


async def test_store_writes_whose_answer_is_lost_change_nothing(
    make_runtime: RuntimeFactory, tmp_path: Path
) -> None:
    liars: list[LyingStore] = []

    def lying(store: KVStore) -> KVStore:
        liars.append(LyingStore(store, every=5, budget=LIES))
        liars[-1].armed = False  # honest while the executions are submitted
        return liars[-1]  # type: ignore[return-value]

    run_log, finals = tmp_path / "runs.log", Finals()
    runtime = make_runtime(build_engine(), LYING_POOL, wrap_store=lying)
    runtime.engine.context.hooks.add(finals)
    async with runtime:
        ids = await submit(runtime, run_log, delay=0.05)
        liars[0].armed = True  # now every 5th write is done but reported as failed, LIES times
        await wait_all(runtime, ids)
        # a lie about a final-status write leaves its telling to whoever comes next
        heard = lambda: len(finals.won) == len(ids)  # noqa: E731
        await assert_eventually(heard, timeout=WAIT, message="a final status never told")
        report = await analyse(runtime, ids, read_run_log(run_log), [])
    print(report.summary(), f"lies told: {liars[0].lies}")
    assert liars[0].told == LIES, f"too few lies to prove anything: {liars[0].lies}"
    assert_survived(report, finals)


async def test_the_final_status_is_reported_once_even_when_the_answer_to_its_write_is_lost(
    tmp_path: Path,
) -> None:
    liars: list[LyingStore] = []
    script = (b'"status":"completed","outputs"',)  # a FinalStatus, not a step record

    def lying(store: KVStore) -> KVStore:
        liars.append(LyingStore(store, lie_on=("batch_if",), script=script))
        return liars[-1]  # type: ignore[return-value]

    finals = Finals()
    runtime = embedded(tmp_path, lying)
    runtime.engine.context.hooks.add(finals)
    async with runtime:
        eid = await runtime.engine.execute_async("chain", {"delay": 0})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
        # told by whoever finds the status set with the step still on the agenda
        await assert_eventually(lambda: finals.won, timeout=WAIT, message="no final heard")
        await asyncio.sleep(0.5)  # a few sweeps: none may tell it again
    assert liars[0].told == 1 and snapshot.status == "completed"
    assert finals.won == {eid: 1}, "the execution's final status was reported once"


def embedded(
    tmp_path: Path, wrap: Callable[[KVStore], KVStore] | None = None, pool: PoolConfig = FAST_POOL
) -> Runtime:
    """An embedded runtime (LevelDB + in-process broker: no redelivery timing of a broker in
    play) whose engine, workers and sweep share one (``wrap``ped) store."""
    runtime = Runtime.from_urls(
        build_engine(), store_url=f"leveldb://{tmp_path / 'db'}", broker_url="inproc://",
        pool=pool,
    )  # fmt: skip
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    if wrap is not None:
        persistence.store = wrap(persistence.store)
    return runtime


@pytest.mark.parametrize("eager", [True, False], ids=["leased-at-creation", "delivered"])
async def test_a_lost_answer_to_a_lease_and_to_its_reclaim_delays_a_step_by_seconds_only(
    eager: bool, tmp_path: Path
) -> None:
    liars: list[LyingStore] = []
    # 1. the first step's lease is taken but its taker hears it failed -- with eager workers,
    #    the engine, whose write recording the execution leased it to a slot of its process
    #    (execute_async raises, the slot is given back); without, the worker that took the
    #    delivered task: the step is left, and its lease expires; 2. the sweep's reclaim (it
    #    counts the expired lease) is done but the sweep hears it failed.
    script = (b'"status":"running"', b'"lease_expiries":1')

    def lying(store: KVStore) -> KVStore:
        lie_on = ("compare_and_set", "batch_if")
        liars.append(LyingStore(store, lie_on=lie_on, script=script))
        return liars[-1]  # type: ignore[return-value]

    pool = replace(FAST_POOL, worker=replace(FAST_POOL.worker, eager=eager))
    runtime = embedded(tmp_path, lying, pool)
    inputs, eid = {"run_log": str(tmp_path / "runs.log"), "delay": 0}, "lost-answers"
    async with runtime:
        if eager:
            with pytest.raises(StoreUnavailable):
                await runtime.engine.execute_async("chain", inputs, execution_id=eid)
        else:
            await runtime.engine.execute_async("chain", inputs, execution_id=eid)
        await assert_eventually(lambda: liars[0].told == 2, timeout=WAIT, message="two lies")
        # lease_ttl 2 s + a sweep interval: the step should run again within a few seconds
        snapshot = await runtime.engine.wait(eid, timeout=5)
    assert snapshot.status == "completed"
    ran = Counter(line.step for line in read_run_log(tmp_path / "runs.log") if line.kind == "start")
    assert ran == {f"c{i}": 1 for i in range(1, 6)}, "a step left by its taker ran twice"


# -- a worker process crashing at each failpoint ---------------------------------------------


@pytest.fixture
def embedded_fleet(tmp_path: Path) -> Iterator[WorkerFleet]:
    fleet = WorkerFleet(f"leveldb://{tmp_path / 'data'}", "inproc://", "faults", tmp_path)
    yield fleet
    fleet.stop()


# after-commit and after-schedule of an embedded process: test_cluster_processes.py
@pytest.mark.parametrize("point", ["after-lease", "before-commit", "before-ack"])
async def test_an_embedded_worker_process_killed_at_a_failpoint_loses_nothing(
    point: str, embedded_fleet: WorkerFleet, tmp_path: Path
) -> None:
    run_log = tmp_path / "runs.log"
    async with client_runtime(embedded_fleet) as client:  # submits, then lets go of LevelDB
        ids = await submit(client, run_log, delay=0.05)
    victim = embedded_fleet.spawn(FLOWLOOM_FAILPOINT=point)
    await assert_eventually(lambda: victim.poll() is not None, timeout=WAIT, message="it dies")
    assert victim.returncode == 137, f"the worker did not die at {point}"
    embedded_fleet.kills.append((victim.pid, time.time()))
    assert started(run_log) or point == "after-lease", "the victim ran nothing"

    settings = Settings(store_url=embedded_fleet.store_url, namespace="faults", lease_ttl=2.0)
    finals = Finals()
    async with Runtime.from_settings(build_engine(), settings, hooks=finals) as healthy:
        await wait_all(healthy, ids)
        report = await analyse(healthy, ids, read_run_log(run_log), embedded_fleet.kills)
    print(report.summary())
    assert_survived(report)
    assert set(finals.won.values()) <= {1}, f"final statuses won twice: {finals.won}"


TANSU_QUERY = f"?{KAFKA_QUERY}"


async def test_cluster_worker_processes_killed_at_every_failpoint_lose_nothing(
    tmp_path: Path,
) -> None:
    """The same on Redis + the broker: one victim per failpoint, each in its own namespace,
    side by side; then one healthy runtime per namespace finishes the work."""
    redis_url, broker_url = require_redis(), f"kafka://{require_kafka()}{TANSU_QUERY}"
    fleets = {
        point: WorkerFleet(redis_url, broker_url, unique_namespace("fp"), tmp_path / point)
        for point in sorted(FAILPOINTS - {"after-generation"})  # a recovery's: test_recovery
    }
    try:
        ids = {}
        for point, fleet in fleets.items():
            fleet.folder.mkdir()
            async with client_runtime(fleet) as client:
                ids[point] = await submit(client, fleet.folder / "runs.log", delay=0.05)
        victims = {point: fleet.spawn(FLOWLOOM_FAILPOINT=point) for point, fleet in fleets.items()}
        for point, victim in victims.items():
            await assert_eventually(victim.poll, timeout=WAIT, message=f"it dies at {point}")
            assert victim.returncode == 137, f"the worker did not die at {point}"
            fleets[point].kills.append((victim.pid, time.time()))
        reports = await asyncio.gather(
            *(heal(fleet, ids[point], redis_url, broker_url) for point, fleet in fleets.items())
        )
    finally:
        for fleet in fleets.values():
            fleet.stop()
            await delete_namespace(redis_url, fleet.namespace)
    for point, report in zip(fleets, reports, strict=True):
        print(point, report.summary())
        assert_survived(report)


async def heal(
    fleet: WorkerFleet, ids: dict[str, tuple[str, str]], redis_url: str, broker_url: str
) -> ChaosReport:
    settings = Settings(
        store_url=redis_url, broker_url=broker_url, namespace=fleet.namespace, lease_ttl=2.0
    )
    async with Runtime.from_settings(build_engine(), settings) as healthy:
        await wait_all(healthy, ids)
        return await analyse(healthy, ids, read_run_log(fleet.folder / "runs.log"), fleet.kills)


# -- a worker whose clock is off ------------------------------------------------------------


def skewed_pool(runtime: Runtime, skew: float) -> WorkerPool:
    """A second pool on the runtime's store and queue whose clock is ``skew`` seconds off."""
    assert runtime.pool is not None
    base = runtime.pool

    def clock() -> float:
        return time.time() + skew

    context = dataclasses.replace(base.context, clock=clock)
    return WorkerPool(base.queue, base.executor, base.config, context=context)


@pytest.mark.parametrize(
    "skew",
    [30.0, -30.0],
)
async def test_a_worker_whose_clock_is_thirty_seconds_off_breaks_nothing(
    skew: float, tmp_path: Path
) -> None:
    run_log, finals = tmp_path / "runs.log", Finals()
    runtime = embedded(tmp_path)
    runtime.engine.context.hooks.add(finals)
    off = skewed_pool(runtime, skew)
    async with runtime:  # its pool starts first: it holds the sweep's leader lease
        await off.start()
        try:
            ids = await submit(runtime, run_log, delay=0.3)
            await wait_all(runtime, ids)
        finally:
            await off.stop()
        report = await analyse(runtime, ids, read_run_log(run_log), [])
    print(report.summary())
    assert_survived(report, finals, clocks_agree=False)
