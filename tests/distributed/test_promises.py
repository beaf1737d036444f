"""The README's promises about leases, recovery, cancellation and pause, measured on both backends.

Timing bounds are the configured intervals plus ``SCHEDULING_MARGIN`` (how late a task may run
on a loaded two-core CI machine); each test measures the elapsed time itself and reports it (as
a ``user_properties`` entry of the test and on stdout), so a failure says by how much it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from scenario_support import (
    FAST_POOL,
    SCHEDULING_MARGIN,
    Probe,
    Run,
    RuntimeFactory,
    blueprint,
    plain,
)
from support import assert_eventually, assert_never

from distributed import (
    ExecutionOptions,
    Hooks,
    KVPersistence,
    PoolConfig,
    Runtime,
    StepFinished,
    WorkerConfig,
)
from orchestration import Engine, Node, NodeContext, NodeResult
from store import Delete, Incr, KVStore, Put

WAIT = 60.0

# One worker: on the Kafka-protocol broker a second group member means a rebalance, which takes
# seconds on Tansu and would be measured as recovery time. The lease is short so that a step
# outlives it several times in a test that stays fast; the heartbeat leaves four beats per lease.
LEASE_POOL = PoolConfig(
    worker_count=1,
    concurrency=8,
    reaper_interval=0.2,
    worker=WorkerConfig(lease_ttl=1.0, heartbeat_interval=0.2, watch_interval=0.1, grace_period=5),
)
LEASE = LEASE_POOL.worker.lease_ttl
HEARTBEAT = LEASE_POOL.worker.heartbeat
SWEEP = 0.2  # LEASE_POOL's reaper_interval: how often expired leases are looked for


def report(record_property: Callable[[str, object], None], name: str, value: float) -> None:
    record_property(name, round(value, 3))
    print(f"{name} = {value:.3f}s")


async def step_record(runtime: Runtime, eid: str, node: str) -> Any:
    version = await runtime.engine.persistence.step(eid, node)
    return None if version is None else version.record


# -- heartbeats and leases ---------------------------------------------------------------------


async def test_a_step_running_several_lease_lengths_runs_once_under_one_heartbeated_lease(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    nodes = {"long": {"delay": 3.5 * LEASE}, "next": {}}
    engine.register_blueprint(blueprint("outlives-its-lease", nodes, [("long", "next")]))
    seen: list[tuple[str, int, float]] = []  # (owner, token, expires_at) while it ran

    async with make_runtime(engine, LEASE_POOL) as runtime:
        eid = await runtime.engine.execute_async("outlives-its-lease", {})

        async def finished() -> bool:
            record = await step_record(runtime, eid, "long")
            if record is not None and record.status == "running" and record.lease is not None:
                seen.append((record.lease.owner, record.lease.token, record.lease.expires_at))
            return record is not None and record.terminal

        await assert_eventually(finished, timeout=WAIT, interval=0.05)
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)

    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == {"long": 1, "next": 1}
    long = snapshot.steps["long"]
    assert long.attempts == 1 and long.lease_expiries == 0  # never reclaimed by the sweep
    assert len({(owner, token) for owner, token, _ in seen}) == 1  # one owner, one fencing token
    expiries = sorted({expires_at for *_, expires_at in seen})
    assert len(expiries) >= 3, f"the lease was extended only {len(expiries) - 1} times"
    assert expiries[-1] - expiries[0] >= 2 * LEASE  # extended far beyond its first expiry


class CutOffStore:
    """A real store, except for the first lease taken on one step record: every later write its
    holder attempts on that record (a heartbeat, a result) is refused, as when a partition
    keeps a worker from its store while its lease runs out. The sweep's reclaim of the expired
    lease (the write that counts a lease expiry) still lands, so the step can be recovered."""

    def __init__(self, inner: KVStore) -> None:
        self.inner = inner
        self.key = ""  # the step record's key, set once the runtime's namespace is known
        self.token: int | None = None
        self.acquired_at: float | None = None  # time.monotonic() of the cut-off lease's start
        self.refused: list[tuple[float, str]] = []  # (when, status its holder tried to write)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        if key == self.key and self._refuses(expected, new):
            return False
        swapped = await self.inner.compare_and_set(key, expected, new, ttl=ttl)
        if key == self.key and swapped:
            self._observe(new)
        return swapped

    async def batch_if(
        self, expected: Mapping[str, bytes | None], ops: Sequence[Put | Delete | Incr]
    ) -> bool:
        return await self.batch_if_get(expected, ops, ()) is not None

    async def batch_if_get(
        self,
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr],
        keys: Sequence[str],
    ) -> list[bytes | None] | None:
        new = next((op.value for op in ops if isinstance(op, Put) and op.key == self.key), None)
        if self.key in expected and new is not None and self._refuses(expected[self.key], new):
            return None
        read = await self.inner.batch_if_get(expected, ops, keys)
        if read is not None and new is not None:
            self._observe(new)
        return read

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr],
    ) -> tuple[bool, list[bytes | None]]:
        new = next((op.value for op in ops if isinstance(op, Put) and op.key == self.key), None)
        applied, read = await self.inner.get_and_batch_if(keys, expected, ops)
        if applied and new is not None:
            self._observe(new)
        return applied, read

    def _observe(self, written: bytes) -> None:
        record = json.loads(written)
        if self.token is None and record.get("status") == "running" and record.get("lease"):
            self.token = record["lease"]["token"]
            self.acquired_at = time.monotonic()

    def _refuses(self, expected: bytes | None, new: bytes) -> bool:
        if self.token is None or expected is None:
            return False
        before, after = json.loads(expected), json.loads(new)
        held = (before.get("lease") or {}).get("token") == self.token
        reclaim = after.get("lease_expiries", 0) > before.get("lease_expiries", 0)
        if held and not reclaim:
            self.refused.append((time.monotonic(), str(after.get("status"))))
            return True
        return False


async def test_a_worker_cut_off_from_the_store_stops_its_step_and_it_reruns_in_lease_plus_sweep(
    make_runtime: RuntimeFactory,
    engine: Engine,
    probe: Probe,
    record_property: Callable[[str, object], None],
) -> None:
    # attempt 1 is cut off (its code would run 2 leases if nobody stopped it); attempt 2 fails
    # and is retried; attempt 3 succeeds. Every run must see the same idempotency key.
    nodes = {"slow": {"delay": 2 * LEASE, "delay_attempts": 1, "fail_times": 2}, "after": {}}
    config = {"slow": {"maxRetries": 4, "retryDelay": 10}}
    engine.register_blueprint(blueprint("cut-off", nodes, [("slow", "after")], config))
    engine.register_blueprint(blueprint("warm-up", {"w": {}}, []))
    eid = "cut-off-execution"
    stores: list[CutOffStore] = []

    def cut_off(inner: KVStore) -> KVStore:
        stores.append(CutOffStore(inner))
        return stores[-1]  # type: ignore[return-value]

    runtime = make_runtime(engine, LEASE_POOL, wrap_store=cut_off)
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    (store,) = stores
    store.key = persistence.keys.step(eid, "slow")
    async with runtime:
        await runtime.engine.execute_sync("warm-up", {}, timeout=WAIT)  # the consumer is ready
        await runtime.engine.execute_async("cut-off", {}, execution_id=eid)
        await assert_eventually(lambda: len(probe.history_of(eid, "slow")) >= 2, timeout=WAIT)
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)

    first, second, *later = probe.history_of(eid, "slow")
    assert store.acquired_at is not None and store.refused, "the cut-off never happened"
    refused_first = store.refused[0][0]
    # the worker stops the step's code as soon as a heartbeat is refused, and commits nothing
    assert first.ended_at is None and first.cancelled_at is not None
    report(record_property, "code_stopped_after_refusal", first.cancelled_at - refused_first)
    assert first.cancelled_at - refused_first <= SCHEDULING_MARGIN
    assert {status for _, status in store.refused} == {"running"}, store.refused
    # the step runs again once its lease has expired, within one sweep of the expiry
    recovery = second.started_at - store.acquired_at
    report(record_property, "recovery", recovery)
    assert LEASE - 0.05 <= recovery <= LEASE + SWEEP + SCHEDULING_MARGIN
    assert snapshot.status == "completed", snapshot.error
    assert probe.runs_of(eid) == {"slow": 3, "after": 1}
    assert [run.attempt for run in (first, second, *later)] == [1, 2, 3]
    assert {run.idempotency_key for run in (first, second, *later)} == {f"{eid}/slow"}
    assert snapshot.steps["slow"].lease_expiries == 1


# -- cancellation --------------------------------------------------------------------------------


async def test_cancel_reaches_running_code_within_two_watch_intervals(
    runtime: Runtime,
    engine: Engine,
    probe: Probe,
    record_property: Callable[[str, object], None],
) -> None:
    engine.register_blueprint(
        blueprint("cancellable", {"long": {"delay": 30}, "next": {}}, [("long", "next")])
    )
    eid = await runtime.engine.execute_async("cancellable", {})
    await assert_eventually(lambda: (eid, "long") in probe.started, timeout=WAIT)
    (run,) = probe.history_of(eid, "long")
    bound = 2 * FAST_POOL.worker.watch_interval + SCHEDULING_MARGIN

    began = time.monotonic()
    assert await runtime.engine.cancel(eid) is True
    await assert_eventually(lambda: run.cancelled_at is not None, timeout=bound + 10)
    assert run.cancelled_at is not None
    report(record_property, "cancel_reached_code", run.cancelled_at - began)
    assert run.cancelled_at - began <= bound

    assert await runtime.engine.cancel(eid) is False  # already final: this call changed nothing
    snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "cancelled"
    assert "next" not in probe.runs_of(eid)


class Stubborn:
    """A node type whose code swallows its first cancel and returns on its own."""

    def __init__(self) -> None:
        self.swallowed = asyncio.Event()

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.swallowed.set()
        return NodeResult(output="returned anyway")


class SlowToSettle:
    """A ``KVStore`` that takes half a second to record a step as cancelled: several of the
    worker's watch intervals, in which it finds the execution final again."""

    def __init__(self, inner: KVStore) -> None:
        self.inner = inner

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        if b'"cancelled"' in new:
            await asyncio.sleep(0.5)
        return await self.inner.compare_and_set(key, expected, new, ttl=ttl)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PendingCancels(Hooks):
    """Records, as each attempt ends, the cancels its task still has pending: a step runs in
    its slot's task, which must go on as if the step's cancel had never reached it."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, int]] = {}  # step -> (outcome, task.cancelling())

    def step_finished(self, event: StepFinished) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.seen[event.step_id] = (event.outcome, task.cancelling())


async def test_a_cancelled_step_leaves_its_task_with_no_cancel_pending(
    engine: Engine, probe: Probe, tmp_path: Path
) -> None:
    stubborn, hooks = Stubborn(), PendingCancels()
    engine.node_types.register("stubborn", stubborn)
    engine.register_blueprint(blueprint("long", {"long": {"delay": 30}}, []))
    swallows = blueprint("swallows", {"swallows": {}}, [])
    swallows["nodes"][0]["uses"] = "stubborn"
    engine.register_blueprint(swallows)
    engine.register_blueprint(blueprint("after", plain("a", "b"), [("a", "b")]))
    store_url = f"leveldb://{tmp_path / 'leveldb'}"
    runtime = Runtime.from_urls(
        engine, store_url=store_url, broker_url="inproc://", pool=FAST_POOL, hooks=hooks
    )
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    persistence.store = SlowToSettle(persistence.store)  # type: ignore[assignment]
    async with runtime:
        long = await runtime.engine.execute_async("long", {})
        swallowing = await runtime.engine.execute_async("swallows", {})
        await assert_eventually(lambda: (long, "long") in probe.started, timeout=WAIT)
        await runtime.engine.cancel(long)
        await runtime.engine.cancel(swallowing)
        await asyncio.wait_for(stubborn.swallowed.wait(), timeout=WAIT)
        for eid in (long, swallowing):
            assert (await runtime.engine.wait(eid, timeout=WAIT)).status == "cancelled"
        await assert_eventually(lambda: {"swallows", "long"} <= hooks.seen.keys(), timeout=WAIT)
        settled = await step_record(runtime, long, "long")
        swallowed = await step_record(runtime, swallowing, "swallows")
        after = await runtime.engine.execute_sync("after", {}, timeout=WAIT)

    # recorded as cancelled, though the watch found the execution final again meanwhile
    assert hooks.seen["long"] == ("cancelled", 0) and settled.status == "cancelled"
    # it returned: the cancel is taken back, and what it returned is not recorded
    assert hooks.seen["swallows"] == ("cancelled", 0), hooks.seen
    assert swallowed.status == "cancelled", swallowed
    assert after.status == "completed" and (hooks.seen["a"], hooks.seen["b"]) == (
        ("completed", 0),
        ("completed", 0),
    )


class SwallowingStore:
    """A ``KVStore`` whose reads (``get``, ``get_many``), made by the ``victim`` task, answer
    late and swallow a cancellation that arrives meanwhile: what Python 3.11's
    ``asyncio.wait_for`` inside redis-py does when the cancel and the answer arrive together."""

    def __init__(self, inner: KVStore) -> None:
        self.inner = inner
        self.victim: asyncio.Future[Any] | None = None
        self.reading = asyncio.Event()

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        values = await self.inner.get_many(keys)
        if asyncio.current_task() is self.victim:
            self.reading.set()
            with contextlib.suppress(asyncio.CancelledError):  # swallowed
                await asyncio.sleep(1)
        return values

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_waiter_is_cancelled_even_when_the_store_client_swallows_the_cancel(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("waited-on", {"long": {"delay": 30}}, []))
    stores: list[SwallowingStore] = []

    def swallowing(inner: KVStore) -> KVStore:
        stores.append(SwallowingStore(inner))
        return stores[-1]  # type: ignore[return-value]

    async with make_runtime(engine, wrap_store=swallowing) as runtime:
        eid = await runtime.engine.execute_async("waited-on", {})
        await assert_eventually(lambda: (eid, "long") in probe.started, timeout=WAIT)
        [store] = stores
        waiter = asyncio.ensure_future(runtime.engine.wait(eid))
        store.victim = waiter
        await asyncio.wait_for(store.reading.wait(), timeout=WAIT)
        waiter.cancel()  # lands in the read, which swallows it
        done, _ = await asyncio.wait({waiter}, timeout=5)
        assert waiter in done and waiter.cancelled(), "the wait went on after its cancel"
        await runtime.engine.cancel(eid)


# -- pause and resume ----------------------------------------------------------------------------


async def test_pause_lets_the_running_step_finish_starts_nothing_new_and_resume_runs_the_rest_once(
    runtime: Runtime,
    engine: Engine,
    probe: Probe,
    record_property: Callable[[str, object], None],
) -> None:
    edges = [("a", "b"), ("b", "c")]
    engine.register_blueprint(blueprint("unpaused", {"a": {}, "b": {}, "c": {}}, edges))
    gated = {"a": {"gate": "a-may-finish"}, "b": {}, "c": {}}
    engine.register_blueprint(blueprint("pausable", gated, edges))
    control = await runtime.engine.execute_sync("unpaused", {}, timeout=WAIT)
    (control_a,) = probe.history_of(control.execution_id, "a")
    (control_b,) = probe.history_of(control.execution_id, "b")
    assert control_a.ended_at is not None
    dispatch = control_b.started_at - control_a.ended_at  # a successor starts this soon, unpaused
    hold = max(1.0, 10 * dispatch, 5 * SWEEP)
    report(record_property, "dispatch", dispatch)
    report(record_property, "held_for", hold)

    eid = await runtime.engine.execute_async("pausable", {})
    await assert_eventually(lambda: (eid, "a") in probe.started, timeout=WAIT)
    await runtime.engine.pause(eid)
    probe.open_gate("a-may-finish")  # the step that started before the pause finishes...
    await assert_eventually(
        lambda: _has_status(runtime, eid, "a", "completed"), timeout=WAIT, message="a completes"
    )
    await assert_never(  # ...and nothing new starts, for many dispatches and several sweeps
        lambda: (eid, "b") in probe.started, during=hold, message="b started while paused"
    )
    assert (await runtime.engine.get_execution_status(eid)).status == "paused"

    await runtime.engine.resume(eid)
    snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == {"a": 1, "b": 1, "c": 1}
    assert (eid, "a") not in probe.cancelled


async def _has_status(runtime: Runtime, eid: str, node: str, status: str) -> bool:
    record = await step_record(runtime, eid, node)
    return record is not None and record.status == status


# -- executions run in the client's process (ExecutionOptions(distributed=False)) ---------------

LOCAL = ExecutionOptions(distributed=False)
EMBEDDED_ONLY = pytest.mark.parametrize("make_runtime", ["embedded"], indirect=True)


def runs_of_node(probe: Probe, node: str) -> list[Run]:
    return [run for run in probe.history if run.node_id == node]


@EMBEDDED_ONLY
async def test_execute_sync_of_a_local_run_returns_its_final_snapshot(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("local", {"a": {}, "b": {}}, [("a", "b")]))
    async with make_runtime(engine, workers=False) as client:
        snapshot = await client.engine.execute_sync("local", {"x": 1}, LOCAL, timeout=WAIT)
    assert snapshot.status == "completed" and snapshot.outputs == {"b": "b:1"}


@EMBEDDED_ONLY
async def test_a_local_run_hands_its_steps_the_idempotency_key_of_its_execution(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("local-key", {"a": {}}, []))
    async with make_runtime(engine, workers=False) as client:
        eid = await client.engine.execute_async("local-key", {}, LOCAL)
        (run,) = await assert_eventually(lambda: runs_of_node(probe, "a"), timeout=WAIT)
    assert run.idempotency_key == f"{eid}/a"


@EMBEDDED_ONLY
async def test_pause_also_holds_new_steps_of_a_local_run(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    gated = {"a": {"gate": "a-may-finish"}, "b": {}, "c": {}}
    engine.register_blueprint(blueprint("pausable-locally", gated, [("a", "b"), ("b", "c")]))
    async with make_runtime(engine, workers=False) as client:
        eid = await client.engine.execute_async("pausable-locally", {}, LOCAL)
        await assert_eventually(lambda: runs_of_node(probe, "a"), timeout=WAIT)
        await assert_eventually(lambda: _has_record(client, eid), timeout=WAIT)
        await client.engine.pause(eid)
        probe.open_gate("a-may-finish")
        await assert_eventually(lambda: runs_of_node(probe, "a")[0].ended_at, timeout=WAIT)
        await assert_never(
            lambda: runs_of_node(probe, "b"), during=1.0, message="b started while paused"
        )
        await client.engine.resume(eid)
        await assert_eventually(lambda: runs_of_node(probe, "c"), timeout=WAIT)
    assert [len(runs_of_node(probe, node)) for node in "abc"] == [1, 1, 1]


async def _has_record(runtime: Runtime, eid: str) -> bool:
    return await runtime.engine.persistence.record(eid) is not None
