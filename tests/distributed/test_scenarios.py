"""The execution model, scenario by scenario, on both backend pairs (embedded and cluster)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from scenario_support import FAST_POOL, Probe, RuntimeFactory, blueprint, plain, set_retention
from support import assert_eventually

from distributed import (
    ExecutionNotFound,
    ExecutionOptions,
    KVPersistence,
    LeaseLost,
    RecoveryConfig,
    RecoveryManager,
    Runtime,
    Task,
    TaskResult,
)
from distributed.lease import acquire_lease
from orchestration import Engine

WAIT = 60.0


async def run(runtime: Runtime, workflow: str, inputs: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    return await runtime.engine.execute_sync(workflow, inputs or {}, timeout=WAIT)


async def test_a_linear_workflow_completes_with_every_step_run_once(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(
        blueprint("linear", {"a": {}, "b": {}, "c": {}}, [("a", "b"), ("b", "c")])
    )
    snapshot = await run(runtime, "linear", {"x": 7})
    assert snapshot.status == "completed"
    assert snapshot.outputs == {"c": "c:7"}
    assert probe.runs_of(snapshot.execution_id) == {"a": 1, "b": 1, "c": 1}
    assert set(snapshot.completed_steps) == {"a", "b", "c"}


async def test_a_diamond_joins_once_after_both_branches(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"a": {}, "b": {"delay": 0.05}, "c": {}, "d": {}}
    engine.register_blueprint(
        blueprint("diamond", nodes, [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    )
    snapshot = await run(runtime, "diamond")
    assert snapshot.status == "completed"
    assert probe.runs_of(snapshot.execution_id) == {"a": 1, "b": 1, "c": 1, "d": 1}


async def test_a_fan_out_of_fifty_joins_once(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    branches = [f"b{i}" for i in range(50)]
    nodes = plain("start", *branches, "join")
    edges = [("start", b) for b in branches] + [(b, "join") for b in branches]
    engine.register_blueprint(blueprint("fanout", nodes, edges))
    snapshot = await run(runtime, "fanout")
    assert snapshot.status == "completed"
    runs = probe.runs_of(snapshot.execution_id)
    assert runs["join"] == 1 and len(runs) == 52 and set(runs.values()) == {1}


async def test_an_any_join_fires_once_on_the_fastest_predecessor(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"s": {}, "fast": {}, "mid": {"delay": 0.2}, "slow": {"delay": 0.4}, "j": {}}
    edges = [("s", "fast"), ("s", "mid"), ("s", "slow"), ("fast", "j"), ("mid", "j"), ("slow", "j")]
    engine.register_blueprint(blueprint("anyjoin", nodes, edges, {"j": {"joinStrategy": "any"}}))
    snapshot = await run(runtime, "anyjoin")
    assert snapshot.status == "completed"
    assert probe.runs_of(snapshot.execution_id) == {"s": 1, "fast": 1, "mid": 1, "slow": 1, "j": 1}


async def test_a_quorum_of_two_out_of_three_fires_once(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"s": {}, "p1": {}, "p2": {"delay": 0.05}, "p3": {"delay": 0.3}, "q": {}}
    edges = [("s", "p1"), ("s", "p2"), ("s", "p3"), ("p1", "q"), ("p2", "q"), ("p3", "q")]
    engine.register_blueprint(blueprint("quorum", nodes, edges, {"q": {"quorum": 2}}))
    snapshot = await run(runtime, "quorum")
    assert snapshot.status == "completed"
    assert probe.runs_of(snapshot.execution_id)["q"] == 1


@pytest.mark.parametrize("route", ["yes", "no"])
async def test_exclusive_branches_skip_the_untaken_path_and_the_join_below_fires_once(
    runtime: Runtime, engine: Engine, probe: Probe, route: str
) -> None:
    nodes: dict[str, dict[str, object]] = {
        "decide": {},
        "yes": {},
        "no": {},
        "after_no": {},
        "join": {},
    }
    edges = [
        ("decide", "yes", "yes"),
        ("decide", "no", "no"),
        ("no", "after_no"),
        ("yes", "join"),
        ("after_no", "join"),
    ]
    engine.register_blueprint(blueprint(f"branch-{route}", nodes, edges))
    snapshot = await run(runtime, f"branch-{route}", {"route_decide": route})
    assert snapshot.status == "completed"
    runs = probe.runs_of(snapshot.execution_id)
    taken = {"yes"} if route == "yes" else {"no", "after_no"}
    assert runs == {"decide": 1, "join": 1, **{n: 1 for n in taken}}
    skipped = {n for n, s in snapshot.steps.items() if s.status == "skipped"}
    assert skipped == {"yes", "no", "after_no"} - taken


async def test_an_action_with_no_matching_edge_fails_naming_the_node_and_action(
    runtime: Runtime, engine: Engine
) -> None:
    edges = [("r", "a", "left"), ("r", "b", "right")]
    engine.register_blueprint(
        blueprint("unroutable", {"r": {"action": "up"}, "a": {}, "b": {}}, edges)
    )
    snapshot = await run(runtime, "unroutable")
    assert snapshot.status == "failed"
    assert snapshot.failed_step == "r"
    assert "up" in (snapshot.error or "")


async def test_a_failing_step_fails_the_execution_and_no_successor_runs(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"a": {}, "bad": {"fail": True, "wait_for": "slow"}, "slow": {"delay": 5}, "after": {}}
    edges = [("a", "bad"), ("a", "slow"), ("bad", "after"), ("slow", "after")]
    engine.register_blueprint(blueprint("failing", nodes, edges))
    snapshot = await run(runtime, "failing")
    assert snapshot.status == "failed"
    assert snapshot.failed_step == "bad"
    assert "fails on purpose" in (snapshot.error or "")
    eid = snapshot.execution_id
    await assert_eventually(lambda: (eid, "slow") in probe.cancelled, message="sibling cancelled")
    assert "after" not in probe.runs_of(eid)
    assert await runtime.engine.cancel(eid) is False  # a later writer cannot change it
    assert (await runtime.engine.get_execution_status(eid)).status == "failed"


# Cancel, pause and resume, with timing bounds: test_promises.py.


async def _status_of(runtime: Runtime, eid: str, node: str, status: str) -> bool:
    step = await runtime.engine.persistence.step(eid, node)
    return step is not None and step.record.status == status


async def test_a_duplicate_delivery_of_a_finished_step_changes_nothing(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"r": {"action": "go"}, "fast": {}, "slow": {"delay": 0.5}, "j": {}}
    edges = [("r", "fast", "go"), ("r", "slow", "go"), ("fast", "j"), ("slow", "j")]
    engine.register_blueprint(blueprint("dupes", nodes, edges))
    eid = await runtime.engine.execute_async("dupes", {})
    await assert_eventually(lambda: _status_of(runtime, eid, "fast", "completed"), timeout=WAIT)
    duplicates = [Task(execution_id=eid, node_id=n) for n in ("r", "fast", "r", "fast")]
    await runtime.engine.queue.enqueue_many(duplicates)
    snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == {"r": 1, "fast": 1, "slow": 1, "j": 1}
    router = snapshot.steps["r"].result
    assert router is not None and router.action == "go"


async def test_a_worker_whose_lease_was_taken_over_cannot_commit(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("fenced", {"a": {}}, []))
    async with make_runtime(engine, workers=False) as client:
        persistence = client.engine.persistence
        eid = "fenced-execution"
        first = await acquire_lease(persistence, eid, "a", None, owner="old", ttl=0.01)
        assert first is not None
        # the takeover needs an expired lease
        await assert_eventually(lambda: first.record.lease_expired(time.time()))
        current = await persistence.step(eid, "a")
        assert current is not None and current.record.lease_expired(time.time())
        reclaimed = current.record.reclaim("lease of old expired", time.time())
        current = await persistence.swap_step(eid, current, reclaimed)
        second = await acquire_lease(persistence, eid, "a", current, owner="new", ttl=10)
        assert second is not None and second.record.token > first.record.token
        done = first.record.complete(TaskResult(), time.time())
        with pytest.raises(LeaseLost):
            await first.swap(done)
        with pytest.raises(LeaseLost):
            await first.extend()
        after = await persistence.step(eid, "a")
        assert after is not None and after.record.lease is not None
        assert after.record.status == "running" and after.record.lease.owner == "new"


async def test_two_hundred_concurrent_executions_stay_isolated(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("isolated", {"a": {}, "b": {}}, [("a", "b")]))
    ids = await asyncio.gather(
        *(runtime.engine.execute_async("isolated", {"x": i}) for i in range(200))
    )
    snapshots = await asyncio.gather(*(runtime.engine.wait(eid, timeout=120) for eid in ids))
    assert [s.status for s in snapshots] == ["completed"] * 200
    assert [s.outputs for s in snapshots] == [{"b": f"b:{i}"} for i in range(200)]


async def test_scaling_one_to_eight_to_two_mid_run_loses_nothing(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    nodes = {"a": {"delay": 0.05}, "b": {"delay": 0.05}, "c": {"delay": 0.05}}
    engine.register_blueprint(blueprint("scaled", nodes, [("a", "b"), ("b", "c")]))
    pool = FAST_POOL.__class__(
        worker_count=1, concurrency=4, reaper_interval=0.2, worker=FAST_POOL.worker
    )
    async with make_runtime(engine, pool) as runtime:
        assert runtime.pool is not None
        ids = [await runtime.engine.execute_async("scaled", {"x": i}) for i in range(40)]
        await runtime.pool.scale(8)
        assert runtime.pool.size == 8
        await assert_eventually(lambda: len(probe.runs) >= 40, timeout=WAIT)
        await runtime.pool.scale(2)
        assert runtime.pool.size == 2
        snapshots = [await runtime.engine.wait(eid, timeout=WAIT) for eid in ids]
    assert {s.status for s in snapshots} == {"completed"}
    for eid in ids:
        assert probe.runs_of(eid) == {"a": 1, "b": 1, "c": 1}


async def test_retries_count_attempts_and_a_delayed_retry_completes(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    config = {"flaky": {"maxRetries": 3, "retryDelay": 50}}
    engine.register_blueprint(blueprint("flaky", {"flaky": {"fail_times": 2}}, [], config))
    snapshot = await run(runtime, "flaky")
    assert snapshot.status == "completed"
    assert snapshot.steps["flaky"].attempts == 3
    assert probe.runs_of(snapshot.execution_id) == {"flaky": 3}


async def test_a_step_out_of_retries_fails_with_the_last_error(
    runtime: Runtime, engine: Engine
) -> None:
    config = {"flaky": {"maxRetries": 2, "retryDelay": 10}}
    engine.register_blueprint(blueprint("flaky2", {"flaky": {"fail_times": 5}}, [], config))
    snapshot = await run(runtime, "flaky2")
    assert snapshot.status == "failed"
    assert snapshot.failed_step == "flaky"
    assert "attempt 2 fails" in (snapshot.error or "")


async def test_an_execution_past_its_deadline_times_out(runtime: Runtime, engine: Engine) -> None:
    engine.register_blueprint(blueprint("late", {"slow": {"delay": 30}}, []))
    eid = await runtime.engine.execute_async("late", {}, ExecutionOptions(timeout=0.5))
    snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "timed_out"


async def test_a_fallback_stands_in_for_a_failed_primary(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"primary": {"fail": True}, "backup": {"output": "from backup"}, "next": {}}
    config = {"primary": {"fallback": "backup"}}
    engine.register_blueprint(blueprint("fallback", nodes, [("primary", "next")], config))
    snapshot = await run(runtime, "fallback")
    assert snapshot.status == "completed"
    assert snapshot.steps["primary"].result is not None
    assert snapshot.steps["primary"].result.output == "from backup"


async def test_undecodable_and_unknown_tasks_go_to_the_dead_letter_topic_with_a_reason(
    runtime: Runtime, engine: Engine
) -> None:
    topic = runtime.engine.queue.topic  # type: ignore[attr-defined]
    await runtime.broker.publish(topic, b"\x80not json at all")
    await runtime.engine.queue.enqueue(Task(execution_id="no-such-execution", node_id="a"))
    reasons: list[str] = []
    async with (
        runtime.broker.consume(f"{topic}.dlq", "dlq-reader") as dlq,
        asyncio.timeout(WAIT),  # a missing dead letter fails here, not at the global timeout
    ):
        async for delivery in dlq:
            reasons.append(delivery.headers.get("x-dead-letter-reason", ""))
            await delivery.ack()
            if len(reasons) == 2:
                break
    assert any("not a task" in r for r in reasons)
    assert any("unknown execution" in r for r in reasons)


async def test_a_subflow_runs_as_a_child_execution_and_maps_its_outputs(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("child", {"inner": {"output": "from child"}}, []))
    parent = blueprint("parent", {"before": {}, "after": {}}, [])
    parent["nodes"].insert(
        1,
        {
            "id": "sub",
            "uses": "subflow",
            "params": {"blueprintId": "child", "inputs": {}, "outputs": {"mapped": "inner"}},
        },
    )
    parent["edges"] = [{"source": "before", "target": "sub"}, {"source": "sub", "target": "after"}]
    engine.register_blueprint(parent)
    snapshot = await run(runtime, "parent")
    assert snapshot.status == "completed"
    assert snapshot.steps["sub"].result is not None
    assert snapshot.steps["sub"].result.output == "from child"
    assert probe.runs_of(f"{snapshot.execution_id}.sub") == {"inner": 1}


async def test_a_step_returning_non_json_fails_with_an_error_naming_the_step(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("nonjson", {"bad": {"non_json": True}}, []))
    snapshot = await run(runtime, "nonjson")
    assert snapshot.status == "failed"
    assert snapshot.failed_step == "bad"
    assert "bad" in (snapshot.error or "") and "JSON" in (snapshot.error or "")


async def test_a_finished_execution_can_be_purged_and_leaves_no_keys(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("purged", {"a": {}, "b": {}}, [("a", "b")]))
    snapshot = await run(runtime, "purged")
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    await runtime.engine.context.flush_events()
    events = persistence.keys.events(snapshot.execution_id)
    assert await runtime.store.log_read(events)  # the event log is there before the purge
    await persistence.purge(snapshot.execution_id)
    assert await persistence.record(snapshot.execution_id) is None
    leftovers = [key async for key, _ in runtime.store.scan(persistence.keys.ns)]
    assert not [key for key in leftovers if snapshot.execution_id in key]
    assert await runtime.store.log_read(events) == []


async def test_purging_an_execution_purges_its_child_executions_too(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("kid", {"inner": {}}, []))
    parent = blueprint("parent-of-one", {}, [])
    subflow = {"blueprintId": "kid", "inputs": {}, "outputs": {}}
    parent["nodes"] = [{"id": "sub", "uses": "subflow", "params": subflow}]
    engine.register_blueprint(parent)
    snapshot = await run(runtime, "parent-of-one")
    eid, child = snapshot.execution_id, f"{snapshot.execution_id}.sub"
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    await runtime.engine.context.flush_events()
    assert await persistence.record(child) is not None
    await persistence.purge(eid)
    assert await _gone(runtime, eid), "a key of the execution or of its child is left"
    for execution_id in (eid, child):
        assert await runtime.store.log_read(persistence.keys.events(execution_id)) == []


async def test_retention_expires_a_finished_execution(runtime: Runtime, engine: Engine) -> None:
    engine.register_blueprint(blueprint("retained", plain("a", "b"), [("a", "b")]))
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    persistence.retention = 1.5
    snapshot = await run(runtime, "retained")
    eid = snapshot.execution_id
    assert snapshot.status == "completed"
    assert [key async for key in _keys_of(runtime, eid)], "the execution is stored until then"
    await assert_eventually(
        lambda: _gone(runtime, eid), timeout=10, message="retention expired the execution"
    )


async def test_a_child_execution_is_kept_until_its_root_ends_then_expires_with_it(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    """A child's records and event log do not expire at the child's end, when its parent
    has yet to take its result (its task lost, the workers down longer than the retention:
    the parent then waited forever); they expire with the root's."""
    engine.register_blueprint(blueprint("kid", {"inner": {}}, []))
    parent = blueprint("holder", {"after": {"gate": "hold"}}, [])
    subflow = {"blueprintId": "kid", "inputs": {}, "outputs": {}}
    parent["nodes"].insert(0, {"id": "sub", "uses": "subflow", "params": subflow})
    parent["edges"] = [{"source": "sub", "target": "after"}]
    engine.register_blueprint(parent)
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    set_retention(runtime, 0.5)
    eid = await runtime.engine.execute_async("holder")
    child = f"{eid}.sub"

    async def after_started() -> bool:  # the child is final and its parent took its result
        return (eid, "after") in probe.started

    await assert_eventually(after_started, timeout=WAIT, message="the parent went on")
    await runtime.engine.context.flush_events()

    await asyncio.sleep(1.0)  # twice the retention after the child's end: its parent runs
    assert await persistence.record(child) is not None, "the child's record expired"
    assert await runtime.store.log_read(persistence.keys.events(child)), "its log expired"

    probe.open_gate("hold")
    assert (await runtime.engine.wait(eid, timeout=WAIT)).status == "completed"

    async def all_gone() -> bool:  # child ids begin with the root's: one scan finds both
        logs = [persistence.keys.events(e) for e in (eid, child)]
        return await _gone(runtime, eid) and not any(
            [await runtime.store.log_read(log) for log in logs]
        )

    await assert_eventually(all_gone, timeout=10, message="the root's end expired both")


async def _keys_of(runtime: Runtime, eid: str) -> AsyncIterator[str]:
    async for key, _ in runtime.store.scan(runtime.engine.persistence.keys.ns):
        if eid in key:
            yield key


async def _gone(runtime: Runtime, eid: str) -> bool:
    """No key of the execution is left: its records, steps, edges, agenda and indexes."""
    return not [key async for key in _keys_of(runtime, eid)]


async def test_waiting_for_an_unknown_execution_says_so(runtime: Runtime) -> None:
    with pytest.raises(ExecutionNotFound):
        await runtime.engine.wait("no-such-execution", timeout=5)


async def test_a_step_whose_worker_keeps_dying_fails_instead_of_crash_looping(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("poison", {"p": {}}, []))
    async with make_runtime(engine, workers=False) as client:
        assert client.pool is None  # nobody but this test takes the step (on both backends)
        persistence = client.engine.persistence
        eid = await client.engine.execute_async("poison", {})
        recovery = RecoveryManager.from_context(
            client.engine.context, RecoveryConfig(max_lease_expiries=3)
        )
        statuses = []
        for _ in range(3):  # a worker takes the step and dies with it, three times
            current = await persistence.step(eid, "p")
            lease = await acquire_lease(persistence, eid, "p", current, owner="doomed", ttl=0.01)
            assert lease is not None

            async def swept() -> bool:  # the sweeper sees the lease lapse on its own clock
                await recovery.sweep()
                moved = await persistence.step(eid, "p")
                return moved is not None and moved.record.status != "running"

            await assert_eventually(swept, message="the sweep reclaimed the dead worker's step")
            after = await persistence.step(eid, "p")
            assert after is not None
            statuses.append(after.record.status)
        snapshot = await client.engine.get_execution_status(eid)
    assert statuses == ["pending", "pending", "failed"]
    assert snapshot.status == "failed" and snapshot.failed_step == "p"
    assert "keeps killing or hanging its worker" in (snapshot.error or "")
