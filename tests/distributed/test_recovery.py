"""Recovery as users call it, and the scheduling invariant, on both backends.

``recover_failed_execution`` re-runs a failed execution as a new generation without re-running
what completed; the agenda lets the sweep finish what a crash or a lost message interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from scenario_support import FAST_POOL, RuntimeFactory, set_retention
from support import assert_eventually

from distributed import (
    EngineConfig,
    ExecutionFinished,
    ExecutionNotFound,
    ExecutionOptions,
    ExecutionRecord,
    FinalStatus,
    Hooks,
    KVPersistence,
    NotRecoverable,
    PoolConfig,
    RecoveryConfig,
    Runtime,
    Task,
    TaskResult,
    WorkerConfig,
)
from distributed.lease import acquire_lease
from distributed.limits import Limits
from orchestration import Engine, Node, NodeContext, NodeResult
from store import MemoryStore, StoreUnavailable

WAIT = 60
ROOT = Path(__file__).resolve().parents[2]
# a sweep that re-enqueues lost work quickly, and a short wait for a compatible worker
QUICK = replace(
    FAST_POOL,
    recovery=RecoveryConfig(interval=0.1, requeue_after=0.5, settle_time=0.2, leader_ttl=2.0),
    worker=replace(FAST_POOL.worker, incompatible_grace=0.5),
)


class Switch:
    """A node type that fails while ``broken`` (a transient outage) and counts every run."""

    def __init__(self) -> None:
        self.broken = True
        self.slow = 0.0  # seconds a flaky node takes once the outage is over
        self.runs: Counter[tuple[str, str]] = Counter()

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        self.runs[(ctx.execution_id, node.id)] += 1
        if node.params.get("flaky") and self.broken:
            raise RuntimeError(f"{node.id}: service unavailable")
        if node.params.get("flaky"):
            await asyncio.sleep(self.slow)
        return NodeResult(output=f"{node.id} ok", state_updates={node.id: "ok"})


@pytest.fixture
def switch(engine: Engine) -> Switch:
    switch = Switch()
    engine.node_types.register("switch", switch)
    nodes = [
        {"id": "fetch", "uses": "switch", "params": {}},
        {"id": "left", "uses": "switch", "params": {}},
        {"id": "right", "uses": "switch", "params": {"flaky": True}},
        {"id": "join", "uses": "switch", "params": {}},
    ]
    edges = [("fetch", "left"), ("fetch", "right"), ("left", "join"), ("right", "join")]
    engine.register_blueprint(
        {"id": "flaky", "nodes": nodes, "edges": [{"source": s, "target": t} for s, t in edges]}
    )
    return switch


async def test_a_failed_execution_recovers_as_a_new_generation_without_rerunning_what_completed(
    runtime: Runtime, switch: Switch
) -> None:
    first = await runtime.engine.execute_sync("flaky", {}, timeout=WAIT)
    eid = first.execution_id
    assert first.status == "failed" and first.failed_step == "right"
    switch.broken = False  # the outage is over

    generation = await runtime.recovery.recover_failed_execution(eid)
    second = await runtime.engine.wait(eid, timeout=WAIT)

    assert generation == 2 and second.generation == 2
    assert second.status == "completed"
    assert second.outputs == {"join": "join ok"}
    runs = {node: n for (e, node), n in switch.runs.items() if e == eid}
    assert runs == {"fetch": 1, "left": 1, "right": 2, "join": 1}
    assert [h.status for h in second.history] == ["failed"]
    assert second.history[0].failed_step == "right"
    assert "service unavailable" in (second.history[0].error or "")
    assert second.history[0].generation == 1


async def test_a_recovered_generation_keeps_what_completed_past_the_retention_of_the_failure(
    runtime: Runtime, switch: Switch
) -> None:
    """Retention gives a failed execution's keys their expiry; recovering it takes that expiry
    back, so the steps it keeps do not expire under the new generation (which then ran them
    again, or lost their outputs), however long it runs."""
    set_retention(runtime, 1.0)
    first = await runtime.engine.execute_sync("flaky", {}, timeout=WAIT)
    eid = first.execution_id
    assert first.status == "failed"
    switch.broken, switch.slow = False, 2.0  # the retry outlives the first status's retention

    # at once: the first generation's final event, and the expiry of its log, may come after
    await runtime.recovery.recover_failed_execution(eid)
    second = await runtime.engine.wait(eid, timeout=WAIT)

    assert second.status == "completed", second.error
    assert second.outputs == {"join": "join ok"}
    runs = {node: n for (e, node), n in switch.runs.items() if e == eid}
    assert runs == {"fetch": 1, "left": 1, "right": 2, "join": 1}
    assert [h.status for h in second.history] == ["failed"]

    async def both_finals() -> bool:  # the first generation's events are kept
        events = runtime.engine.events(eid)
        found = [e.data["status"] async for e in events if e.type == "execution.final"]
        return found == ["failed", "completed"]

    await assert_eventually(both_finals, message="the events of both generations")


async def test_a_recovery_takes_the_retention_back_from_the_children_it_keeps(
    runtime: Runtime, engine: Engine, switch: Switch
) -> None:
    """The root's failure gave its children the root's expiry; a recovery takes it back from
    every child, the completed one it keeps as well as the failed one it recovers."""
    for kid, params in (("kid-ok", {}), ("kid-flaky", {"flaky": True})):
        nodes = [{"id": "inner", "uses": "switch", "params": params}]
        engine.register_blueprint({"id": kid, "nodes": nodes, "edges": []})
    nodes = [
        {"id": name, "uses": "subflow", "params": {"blueprintId": kid, "inputs": {}}}
        for name, kid in (("ok", "kid-ok"), ("bad", "kid-flaky"))
    ]
    edges = [{"source": "ok", "target": "bad"}]
    engine.register_blueprint({"id": "nest", "nodes": nodes, "edges": edges})
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    set_retention(runtime, 1.0)
    first = await runtime.engine.execute_sync("nest", {}, timeout=WAIT)
    eid = first.execution_id
    assert first.status == "failed" and first.failed_step == "bad"
    switch.broken, switch.slow = False, 3.0  # the second run outlives the retention

    await runtime.recovery.recover_failed_execution(eid)
    await asyncio.sleep(1.6)  # past the expiry the failure gave, while "bad" runs again
    kept = await persistence.record(f"{eid}.ok")
    assert kept is not None, "the completed child expired under the new generation"
    assert await runtime.store.log_read(persistence.keys.events(f"{eid}.ok"))
    second = await runtime.engine.wait(eid, timeout=WAIT)

    assert second.status == "completed", second.error
    runs = {e: n for (e, node), n in switch.runs.items() if e.startswith(eid)}
    assert runs == {f"{eid}.ok": 1, f"{eid}.bad": 2}


async def test_a_child_recovered_alone_after_its_root_ended_expires_at_its_own_end(
    runtime: Runtime, engine: Engine, switch: Switch
) -> None:
    """A recovery takes the expiry of its root's end back from a failed child recovered on
    its own; at the child's end nothing waits for it (its root ended), so its records and
    event log expire then, as a root's would (they were kept for good before)."""
    nodes = [{"id": "inner", "uses": "switch", "params": {"flaky": True}}]
    engine.register_blueprint({"id": "kid-flaky", "nodes": nodes, "edges": []})
    subflow = {"blueprintId": "kid-flaky", "inputs": {}}
    nodes = [{"id": "bad", "uses": "subflow", "params": subflow}]
    engine.register_blueprint({"id": "holder", "nodes": nodes, "edges": []})
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    set_retention(runtime, 1.0)
    root = await runtime.engine.execute_sync("holder", {}, timeout=WAIT)
    assert root.status == "failed"
    child = f"{root.execution_id}.bad"
    switch.broken = False

    await runtime.recovery.recover_failed_execution(child)
    assert (await runtime.engine.wait(child, timeout=WAIT)).status == "completed"
    await runtime.engine.context.flush_events()

    async def child_gone() -> bool:
        record = await persistence.record(child)
        return record is None and not await runtime.store.log_read(persistence.keys.events(child))

    await assert_eventually(child_gone, timeout=10, message="the child expired at its end")


async def test_a_recovery_killed_right_after_its_write_leaves_the_new_generation_nothing_to_expire(
    engine: Engine, switch: Switch, tmp_path: Path
) -> None:
    """``flowloom recover`` killed (the ``after-generation`` failpoint) once it wrote the new
    generation, before it took the retention's expiry back a second time: it took it back
    before the write too, so the steps the new generation keeps outlive the retention."""
    data = tmp_path / "data"
    urls = {"store_url": f"leveldb://{data}", "broker_url": "inproc://"}
    retention = 4.0  # long enough for the command to start on a slow machine before it runs out
    async with Runtime.from_urls(engine, **urls, pool=QUICK, retention=retention) as runtime:
        first = await runtime.engine.execute_sync("flaky", {}, timeout=WAIT)
    expired_at = time.monotonic() + retention
    eid = first.execution_id
    assert first.status == "failed"
    env = {
        **os.environ,
        "FLOWLOOM_STORE_URL": urls["store_url"],
        "FLOWLOOM_RETENTION": str(retention),
        "FLOWLOOM_FAILPOINT": "after-generation",
    }
    command = [sys.executable, "-m", "distributed", "recover", eid]
    run = functools.partial(subprocess.run, capture_output=True, text=True, timeout=WAIT)
    killed = await asyncio.to_thread(run, command, env=env, cwd=ROOT)
    assert killed.returncode == 137, killed.stderr

    await asyncio.sleep(max(0.0, expired_at - time.monotonic()) + 0.5)  # past the failure's expiry
    switch.broken = False
    async with Runtime.from_urls(engine, **urls, pool=QUICK, retention=retention) as healed:
        second = await healed.engine.wait(eid, timeout=WAIT)
    assert second.status == "completed" and second.generation == 2, second.error
    runs = {node: n for (e, node), n in switch.runs.items() if e == eid}
    assert runs == {"fetch": 1, "left": 1, "right": 2, "join": 1}


async def test_recovery_refuses_what_it_cannot_recover(runtime: Runtime, switch: Switch) -> None:
    switch.broken = False
    done = await runtime.engine.execute_sync("flaky", {}, timeout=WAIT)
    with pytest.raises(NotRecoverable, match="completed"):
        await runtime.recovery.recover_failed_execution(done.execution_id)
    with pytest.raises(ExecutionNotFound):
        await runtime.recovery.recover_failed_execution("no-such-execution")


async def test_a_cancelled_execution_is_recovered_only_when_forced(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    async with make_runtime(engine, workers=False) as client:
        eid = await client.engine.execute_async("flaky", {})
        with pytest.raises(NotRecoverable, match="running"):
            await client.recovery.recover_failed_execution(eid)
        assert await client.engine.cancel(eid)
        assert not await client.engine.cancel(eid)  # already final: nothing to cancel
        with pytest.raises(NotRecoverable, match="force=True"):
            await client.recovery.recover_failed_execution(eid)
        assert await client.recovery.recover_failed_execution(eid, force=True) == 2
        snapshot = await client.engine.get_execution_status(eid)
    assert snapshot.status == "pending" and snapshot.generation == 2
    assert [h.status for h in snapshot.history] == ["cancelled"]


async def test_a_task_of_an_older_generation_is_dropped(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    nodes = [{"id": n, "uses": "switch", "params": {}} for n in ("p", "q")]
    engine.register_blueprint({"id": "pair", "nodes": nodes, "edges": []})
    serial = replace(QUICK, worker_count=1, concurrency=1)  # tasks handled strictly in order
    async with make_runtime(engine, serial) as runtime:
        graph = engine.graph("pair")
        record = ExecutionRecord(
            execution_id="regenerated",
            workflow_id="pair",
            graph_version=graph.version,
            inputs={},
            generation=2,
        )
        assert await runtime.engine.persistence.create_execution(record, [])
        queue = runtime.engine.queue
        await queue.enqueue(Task(execution_id="regenerated", node_id="p", generation=1))
        await queue.enqueue(Task(execution_id="regenerated", node_id="q", generation=2))
        await assert_eventually(lambda: switch.runs[("regenerated", "q")] == 1, timeout=WAIT)
    assert switch.runs[("regenerated", "p")] == 0


async def test_a_committed_step_whose_successors_were_never_scheduled_still_advances(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    """The hang of a worker dying between its commit and scheduling the successors (or of the
    last message being acked as a duplicate elsewhere): no message is left, only the agenda."""
    switch.broken = False
    graph = engine.graph("flaky")
    record = ExecutionRecord(
        execution_id="orphaned", workflow_id="flaky", graph_version=graph.version, inputs={}
    )
    async with make_runtime(engine, workers=False) as client:
        persistence = client.engine.persistence
        assert await persistence.create_execution(record, ["fetch"])  # nothing enqueued
        lease = await acquire_lease(persistence, "orphaned", "fetch", None, owner="dead", ttl=5)
        assert lease is not None
        taken = tuple(e.key for e in graph.outgoing("fetch"))
        result = TaskResult(output="fetch ok", state_updates={"fetch": "ok"}, taken=taken, seq=1)
        await lease.swap(lease.record.complete(result, time.time()))  # ...and the worker died
    async with make_runtime(engine, QUICK) as runtime:
        snapshot = await runtime.engine.wait("orphaned", timeout=WAIT)
    assert snapshot.status == "completed"
    assert switch.runs[("orphaned", "fetch")] == 0  # committed by the dead worker: never re-run
    assert {n: switch.runs[("orphaned", n)] for n in ("left", "right", "join")} == {
        "left": 1,
        "right": 1,
        "join": 1,
    }


async def test_a_scheduled_step_whose_message_was_lost_is_enqueued_again(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    switch.broken = False
    graph = engine.graph("flaky")
    record = ExecutionRecord(
        execution_id="lost", workflow_id="flaky", graph_version=graph.version, inputs={}
    )
    async with make_runtime(engine, QUICK) as runtime:
        assert await runtime.engine.persistence.create_execution(record, ["fetch"])
        snapshot = await runtime.engine.wait("lost", timeout=WAIT)
    assert snapshot.status == "completed"
    assert all(switch.runs[("lost", n)] == 1 for n in graph.nodes)


async def test_a_record_the_sweep_cannot_decode_does_not_stop_the_sweep(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    """Found by fuzzing: inputs nested too deep to read back (before execute_async refused
    them) were stored, and the sweep then failed on every interval, for every execution."""
    switch.broken = False
    graph = engine.graph("flaky")
    records = [
        ExecutionRecord(
            execution_id=eid,
            workflow_id="flaky",
            graph_version=graph.version,
            inputs={},
            options=ExecutionOptions(timeout=0.01 if eid == "unreadable" else None),
        )
        for eid in ("unreadable", "lost")
    ]
    async with make_runtime(engine, QUICK) as runtime:
        persistence = runtime.engine.persistence
        assert isinstance(persistence, KVPersistence)
        for record in records:  # on the agenda, nothing enqueued
            assert await persistence.create_execution(record, ["fetch"])
        # past its deadline, and on the agenda, with a record nobody can read back
        await persistence.store.put(persistence.keys.execution("unreadable"), b"[[[[")
        await runtime.recovery.sweep()
        snapshot = await runtime.engine.wait("lost", timeout=WAIT)
    assert snapshot.status == "completed"
    assert switch.runs[("unreadable", "fetch")] == 0


@pytest.mark.parametrize("known", [False, True], ids=["unknown-workflow", "other-version"])
async def test_an_execution_no_worker_can_run_fails_with_the_reason(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch, known: bool
) -> None:
    record = ExecutionRecord(
        execution_id="unrunnable",
        workflow_id="flaky" if known else "only-the-client-knows",
        graph_version="v-old",
        inputs={},
    )
    async with make_runtime(engine, QUICK) as runtime:
        assert await runtime.engine.persistence.create_execution(record, ["fetch"])
        await runtime.engine.scheduler.enqueue(record, ["fetch"])
        snapshot = await runtime.engine.wait("unrunnable", timeout=WAIT)
    assert snapshot.status == "failed"
    if known:
        version = engine.graph("flaky").version
        assert "v-old" in (snapshot.error or "") and version in (snapshot.error or "")
    else:
        assert "no worker holds workflow 'only-the-client-knows'" in (snapshot.error or "")
    assert switch.runs[("unrunnable", "fetch")] == 0
    assert "fetch" not in snapshot.steps, "a lease taken on delivery was left behind"


def test_settings_are_validated_when_built() -> None:
    with pytest.raises(ValueError, match="lease_ttl"):
        WorkerConfig(lease_ttl=0)
    with pytest.raises(ValueError, match="concurrency"):
        replace(FAST_POOL, concurrency=0)
    with pytest.raises(ValueError, match="interval"):
        RecoveryConfig(interval=-1)


@pytest.mark.parametrize("config", [PoolConfig, WorkerConfig, RecoveryConfig, EngineConfig, Limits])
def test_a_setting_the_config_does_not_have_is_refused_not_ignored(config: Any) -> None:
    with pytest.raises(ValueError, match="workers"):  # PoolConfig's is worker_count
        config(workers=2)


async def test_a_zero_retention_is_refused_when_the_runtime_is_built(engine: Engine) -> None:
    with pytest.raises(ValueError, match="retention must be > 0"):
        Runtime.from_urls(engine, store_url="memory://", broker_url="inproc://", retention=0)


async def test_recovery_finishes_the_advance_of_a_step_cut_short_by_the_failure(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    """A step committed just as a sibling failed the execution, and its worker died before
    scheduling the successors; the sweep then cleared the final execution's agenda."""
    switch.broken = False
    graph = engine.graph("flaky")
    record = ExecutionRecord(
        execution_id="cut-short", workflow_id="flaky", graph_version=graph.version, inputs={}
    )
    async with make_runtime(engine, QUICK) as runtime:
        persistence = runtime.engine.persistence
        assert await persistence.create_execution(record, ["fetch"])
        lease = await acquire_lease(persistence, "cut-short", "fetch", None, owner="dead", ttl=5)
        assert lease is not None
        taken = tuple(e.key for e in graph.outgoing("fetch"))
        result = TaskResult(output="fetch ok", state_updates={"fetch": "ok"}, taken=taken, seq=1)
        await lease.swap(lease.record.complete(result, time.time()))
        failed = FinalStatus.failed("RuntimeError: elsewhere", "other")
        settled = time.time() - runtime.recovery.config.settle_time  # a while ago
        await runtime.engine.scheduler.finalize(
            record, failed.model_copy(update={"finished_at": settled})
        )
        await runtime.recovery.sweep()  # clears the agenda of the final execution
        assert [e async for e in persistence.agenda("cut-short")] == []

        assert await runtime.recovery.recover_failed_execution("cut-short") == 2
        snapshot = await runtime.engine.wait("cut-short", timeout=WAIT)
    assert snapshot.status == "completed"
    assert switch.runs[("cut-short", "fetch")] == 0
    assert all(switch.runs[("cut-short", n)] == 1 for n in ("left", "right", "join"))


async def test_a_commit_that_succeeded_while_the_client_saw_an_error_is_advanced_once(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    """The store applied the commit but the connection dropped before the reply: the worker
    sees an error, yet the step must neither run again nor be left unadvanced."""
    switch.broken = False
    async with make_runtime(engine, QUICK) as runtime:
        persistence = runtime.engine.persistence
        real_commit = persistence.commit_step
        failed_once: list[str] = []

        async def commit_then_lose_the_reply(
            eid: str, expected: Any, new: Any, **kwargs: Any
        ) -> Any:
            version = await real_commit(eid, expected, new, **kwargs)
            if new.node_id == "fetch" and not failed_once:
                failed_once.append(eid)
                raise StoreUnavailable("redis://127.0.0.1:6379", "connection reset by peer")
            return version

        persistence.commit_step = commit_then_lose_the_reply  # type: ignore[method-assign]
        snapshot = await runtime.engine.execute_sync("flaky", {}, timeout=WAIT)
    assert failed_once == [snapshot.execution_id]
    assert snapshot.status == "completed"
    assert {
        node: switch.runs[(snapshot.execution_id, node)] for node in engine.graph("flaky").nodes
    } == {
        "fetch": 1,
        "left": 1,
        "right": 1,
        "join": 1,
    }


class Told(Hooks):
    """The final statuses told to this process's hooks, in order."""

    def __init__(self) -> None:
        self.finals: list[str] = []

    def execution_final(self, event: ExecutionFinished) -> None:
        self.finals.append(event.execution_id)


async def test_a_final_status_is_told_by_its_winner_and_by_the_sweep_only_if_the_winner_died(
    make_runtime: RuntimeFactory, engine: Engine, switch: Switch
) -> None:
    """The winner of the final status claims its announcement in the same write: another
    finalizer (here: this runtime's) does not tell it first. If the winner dies before telling,
    the sweep tells it, once, after ``settle_time`` -- not while the winner may still be at it."""
    graph = engine.graph("flaky")
    record = ExecutionRecord(
        execution_id="untold", workflow_id="flaky", graph_version=graph.version, inputs={}
    )
    told = Told()
    async with make_runtime(engine, QUICK) as runtime:
        runtime.engine.context.hooks.add(told)
        persistence = runtime.engine.persistence
        assert await persistence.create_execution(record, ["fetch"])
        failed = FinalStatus.failed("RuntimeError: elsewhere", "fetch")
        # a winner in another process, which dies before telling (its claim stays)
        assert (await persistence.set_final("untold", failed, "dead-process"))[1]
        assert not (await runtime.engine.scheduler.finalize(record, FinalStatus.cancelled()))[1]
        await runtime.recovery.sweep()
        assert told.finals == [], "told before the winner had time to"
        assert [e.node_id async for e in persistence.agenda("untold")] == ["fetch"]

        await assert_eventually(lambda: told.finals, timeout=WAIT)
        assert [e async for e in persistence.agenda("untold")] == []
        await runtime.recovery.sweep()
        await runtime.engine.scheduler.finalize(record, FinalStatus.cancelled())
    assert told.finals == ["untold"]


async def test_an_execution_recorded_in_the_full_json_of_an_older_version_recovers() -> None:
    """Records are written without their default fields; one written with every field (as an
    earlier version wrote them) reads the same, and a new generation starts on it: the
    compare-and-set expects the bytes as stored, not this version's spelling of them."""
    persistence = KVPersistence(MemoryStore())
    record = ExecutionRecord(execution_id="e1", workflow_id="w", graph_version="v1", inputs={})
    final = FinalStatus.failed("boom", "a")
    assert await persistence.create_execution(record, ["a"])
    await persistence.set_final("e1", final, "tester")
    keys = persistence.keys
    for key, model in ((keys.execution("e1"), record), (keys.final("e1"), final)):
        assert len(model.to_bytes()) < len(model.model_dump_json())
        await persistence.store.put(key, model.model_dump_json().encode())

    moved = record.model_copy(update={"workflow_id": "other"})
    assert not await persistence.start_generation(moved, final, moved, [], ["a"])
    new = record.next_generation(time.time())
    assert await persistence.start_generation(record, final, new, [], ["a"])
    assert await persistence.record("e1") == new and await persistence.final("e1") is None
    assert await persistence.history("e1") == [final]


class EndsTheGenerationItWrites:
    """A real store on which the new generation ends (its final status stored, as by a fast
    worker in another process) right after the write of ``start_generation`` that starts it,
    before that call takes the retention's expiry back a second time."""

    def __init__(self, inner: MemoryStore, other: KVPersistence, new: ExecutionRecord) -> None:
        self.inner, self.other, self.new = inner, other, new
        self.ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def batch_if(self, expected: Any, ops: Any) -> bool:
        written = await self.inner.batch_if(expected, ops)
        new_generation = self.new.to_bytes() in [getattr(op, "value", None) for op in ops]
        if written and new_generation and not self.ended:  # the first: the generation's write
            self.ended = True
            ended = FinalStatus.completed({}, generation=self.new.generation)
            await self.other.set_final(self.new.execution_id, ended, "fast-worker")
        return written


async def test_a_generation_that_ends_before_its_recovery_call_returns_still_expires() -> None:
    """``start_generation`` takes the retention's expiry back from the execution's records after
    its write too; if the new generation ended meanwhile (its end gave them their expiry), it
    gives it again, else its final status, history and ledger would be kept for good."""
    inner = MemoryStore()
    persistence, other = KVPersistence(inner, retention=0.5), KVPersistence(inner, retention=0.5)
    record = ExecutionRecord(execution_id="e1", workflow_id="w", graph_version="v1", inputs={})
    failed = FinalStatus.failed("boom", "a")
    assert await persistence.create_execution(record, ["a"])
    await persistence.set_final("e1", failed, "tester")
    new = record.next_generation(time.time())
    persistence.store = EndsTheGenerationItWrites(inner, other, new)  # type: ignore[assignment]
    assert await persistence.start_generation(record, failed, new, [], ["a"])
    assert (await persistence.final("e1")) is not None, "the new generation did not end"

    async def records_gone() -> bool:
        return [key async for key, _ in inner.scan(persistence.keys.execution("e1"))] == []

    message = "the ended execution's records outlived its retention"
    await assert_eventually(records_gone, timeout=5, message=message)
