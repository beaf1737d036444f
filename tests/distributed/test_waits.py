"""Waits for people and events, on both backends: signals route by action, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import crash_app
import pytest
import wait_app
from scenario_support import FAST_POOL, Probe, RuntimeFactory, delete_prefix
from support import REDIS_URL, assert_eventually, require_kafka, require_redis

from distributed import ExecutionFinal, ExecutionSnapshot, RecoveryConfig, Runtime
from orchestration import Engine, SignalRefused

WAIT = 60
SNAPPY = replace(FAST_POOL, recovery=RecoveryConfig(interval=0.1, settle_time=0.2))


def review_flow(*, draft: dict[str, Any] | None = None, **wait: Any) -> dict[str, Any]:
    """draft -> review (a wait) -approve-> publish | -reject-> revise | -timeout-> escalate."""
    params = {"event": "review", "outputKey": "decision", **wait}
    nodes = [
        {"id": "draft", "uses": "probe", "params": draft or {}},
        {"id": "review", "uses": "wait", "params": params},
        {"id": "publish", "uses": "probe", "params": {}},
        {"id": "revise", "uses": "probe", "params": {}},
        {"id": "escalate", "uses": "probe", "params": {}},
    ]
    edges = [
        {"source": "draft", "target": "review"},
        {"source": "review", "target": "publish", "action": "approve"},
        {"source": "review", "target": "revise", "action": "reject"},
        {"source": "review", "target": "escalate", "action": "timeout"},
    ]
    return {"id": "review-flow", "nodes": nodes, "edges": edges}


async def awaiting(runtime: Runtime, eid: str, *events: str) -> ExecutionSnapshot:
    async def check() -> ExecutionSnapshot | None:
        snapshot = await runtime.engine.get_execution_status(eid)
        return snapshot if sorted(snapshot.awaiting) == sorted(events) else None

    return await assert_eventually(check, timeout=WAIT, message=f"awaiting {events}")


@pytest.mark.parametrize(
    ("action", "taken", "skipped"),
    [("approve", "publish", "revise"), ("reject", "revise", "publish")],
)
async def test_a_signal_completes_the_wait_and_routes_by_its_action(
    runtime: Runtime, engine: Engine, probe: Probe, action: str, taken: str, skipped: str
) -> None:
    engine.register_blueprint(review_flow())
    eid = await runtime.engine.execute_async("review-flow", {})
    parked = await awaiting(runtime, eid, "review")
    assert parked.status == "awaiting" and parked.steps["review"].status == "waiting"

    await runtime.engine.signal(eid, "review", payload={"by": "ada"}, action=action)
    done = await runtime.engine.wait(eid, timeout=WAIT)

    assert done.status == "completed"
    review = done.steps["review"]
    assert review.result is not None
    assert (review.result.output, review.result.action) == ({"by": "ada"}, action)
    assert review.result.state_updates == {"decision": {"by": "ada"}}
    assert done.steps[taken].status == "completed" and done.steps[skipped].status == "skipped"
    assert probe.runs_of(eid) == {"draft": 1, taken: 1}


async def test_two_waits_on_parallel_branches_are_open_at_once(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = [
        {"id": "start", "uses": "probe", "params": {}},
        {"id": "legal", "uses": "wait", "params": {"event": "legal-ok"}},
        {"id": "tech", "uses": "wait", "params": {"event": "tech-ok"}},
        {"id": "ship", "uses": "probe", "params": {}},
    ]
    edges = [("start", "legal"), ("start", "tech"), ("legal", "ship"), ("tech", "ship")]
    engine.register_blueprint(
        {"id": "two-waits", "nodes": nodes, "edges": [{"source": s, "target": t} for s, t in edges]}
    )
    eid = await runtime.engine.execute_async("two-waits", {})
    await awaiting(runtime, eid, "legal-ok", "tech-ok")
    await runtime.engine.signal(eid, "tech-ok", payload="lgtm")
    await awaiting(runtime, eid, "legal-ok")
    await runtime.engine.signal(eid, "legal-ok", payload="approved")
    done = await runtime.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed" and probe.runs_of(eid) == {"start": 1, "ship": 1}


async def test_a_signal_sent_before_the_wait_is_reached_is_kept_for_it(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(review_flow(draft={"delay": 0.3}))
    eid = await runtime.engine.execute_async("review-flow", {})
    await runtime.engine.signal(eid, "review", payload="early", action="approve")
    done = await runtime.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed"
    assert done.steps["review"].result is not None
    assert done.steps["review"].result.output == "early"
    assert probe.runs_of(eid) == {"draft": 1, "publish": 1}


async def test_a_second_signal_for_the_same_wait_is_refused(
    runtime: Runtime, engine: Engine
) -> None:
    flow = review_flow()
    flow["nodes"][2]["params"] = {"delay": 5}  # publish runs long: the execution stays open
    engine.register_blueprint(flow)
    eid = await runtime.engine.execute_async("review-flow", {})
    await awaiting(runtime, eid, "review")
    await runtime.engine.signal(eid, "review", action="approve")
    with pytest.raises(SignalRefused, match="already"):
        await runtime.engine.signal(eid, "review", action="reject")
    with pytest.raises(SignalRefused, match=r"no wait for it \(waits: review\)"):
        await runtime.engine.signal(eid, "lunch")
    await runtime.engine.cancel(eid)
    with pytest.raises(ExecutionFinal):
        await runtime.engine.signal(eid, "review")


async def test_a_wait_that_times_out_routes_to_its_timeout_action(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(review_flow(timeout=300, onTimeout="timeout"))
    eid = await runtime.engine.execute_async("review-flow", {})
    done = await runtime.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed"
    assert probe.runs_of(eid) == {"draft": 1, "escalate": 1}
    with pytest.raises(ExecutionFinal):
        await runtime.engine.signal(eid, "review", action="approve")


async def test_a_wait_that_times_out_without_an_action_fails_the_execution(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(review_flow(timeout=300))
    done = await runtime.engine.execute_sync("review-flow", {}, timeout=WAIT)
    assert done.status == "failed" and done.failed_step == "review"
    assert done.error == "WaitTimedOut: wait 'review' got no 'review' signal within 0.3s"


async def test_waiting_executions_hold_no_worker_slot(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(review_flow())
    one_slot = replace(SNAPPY, worker_count=1, concurrency=1)
    async with make_runtime(engine, one_slot) as runtime:
        parked = [await runtime.engine.execute_async("review-flow", {}) for _ in range(3)]
        for eid in parked:
            await awaiting(runtime, eid, "review")
        flow = review_flow()
        flow["id"], flow["nodes"] = "no-wait", flow["nodes"][:1]
        flow["edges"] = []
        engine.register_blueprint(flow)
        other = await runtime.engine.execute_sync("no-wait", {}, timeout=WAIT)
        assert other.status == "completed"  # the one slot was free while three waits were open
        for eid in parked:
            await runtime.engine.signal(eid, "review", action="approve")
        finals = [await runtime.engine.wait(eid, timeout=WAIT) for eid in parked]
    assert [f.status for f in finals] == ["completed"] * 3


async def test_a_wait_survives_a_client_restart_between_start_and_signal(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(review_flow())
    async with make_runtime(engine, SNAPPY) as first:
        eid = await first.engine.execute_async("review-flow", {})
        await awaiting(first, eid, "review")
    async with make_runtime(engine, SNAPPY) as second:  # a new process, as far as state goes
        await awaiting(second, eid, "review")
        await second.engine.signal(eid, "review", action="approve")
        done = await second.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed" and probe.runs_of(eid) == {"draft": 1, "publish": 1}


async def test_a_local_run_waits_and_takes_signals_too(runtime: Runtime, engine: Engine) -> None:
    from distributed import ExecutionOptions

    flow = review_flow()
    flow["nodes"][3]["params"] = {"delay": 1}  # revise runs a while: the run is still open
    engine.register_blueprint(flow)
    local = ExecutionOptions(distributed=False)
    eid = await runtime.engine.execute_async("review-flow", {}, local)
    handle = await assert_eventually(lambda: engine.handle(eid), timeout=WAIT)
    await assert_eventually(lambda: handle.snapshot().steps["review"].status == "waiting")
    await runtime.engine.signal(eid, "review", payload="ok", action="reject")
    with pytest.raises(SignalRefused):
        await runtime.engine.signal(eid, "review", action="approve")
    done = await runtime.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed" and done.steps["revise"].status == "completed"


def spawn_waiter(*args: str) -> subprocess.Popen[str]:
    here = Path(__file__).resolve().parent
    root = here.parents[1]
    paths = os.pathsep.join([str(root), str(here), str(root / "tests")])
    return subprocess.Popen(
        [sys.executable, str(here / "wait_app.py"), *args],
        env={**os.environ, "PYTHONPATH": paths},
        stdout=subprocess.PIPE,
        text=True,
    )


def killed_while_waiting(victim: subprocess.Popen[str]) -> str:
    """The id the victim parked on its wait; the victim is SIGKILLed before returning."""
    try:
        assert victim.stdout is not None
        eid = victim.stdout.readline().strip()
        assert eid, "the victim printed no execution id"
        return eid
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)


async def test_an_embedded_wait_survives_its_process_being_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    eid = killed_while_waiting(spawn_waiter("embedded", str(data)))
    async with Runtime.embedded(wait_app.build_engine(), str(data), pool=SNAPPY) as restarted:
        await awaiting(restarted, eid, "review")
        await restarted.engine.signal(eid, "review", action="approve")
        done = await restarted.engine.wait(eid, timeout=WAIT)
    assert done.status == "completed"
    assert done.steps["publish"].status == "completed"
    assert done.steps["draft"].attempts == 1  # committed before the kill: never re-run


async def test_a_cluster_wait_survives_its_worker_being_killed() -> None:
    require_redis()
    broker = f"kafka://{require_kafka()}"
    tag = f"flowloom-wait-{uuid.uuid4().hex[:8]}"
    prefix = f"{tag}:"
    try:
        eid = killed_while_waiting(spawn_waiter("cluster", REDIS_URL, prefix, broker, tag))
        survivor = crash_app.cluster_runtime(
            wait_app.build_engine(), REDIS_URL, prefix, broker, tag, pool=crash_app.pool_config(tag)
        )
        async with survivor:
            await awaiting(survivor, eid, "review")
            await survivor.engine.signal(eid, "review", action="reject")
            done = await survivor.engine.wait(eid, timeout=WAIT)
        assert done.status == "completed"
        assert done.steps["revise"].status == "completed"
        assert done.steps["draft"].attempts == 1
    finally:
        await delete_prefix(prefix)
