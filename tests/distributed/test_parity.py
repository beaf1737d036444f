"""One result vocabulary across modes: a workflow reads the same in memory and distributed."""

from __future__ import annotations

import asyncio
from typing import Any

from scenario_support import VIEWS, Probe, blueprint, step_completed, views_blueprint

from distributed import Runtime
from orchestration import Engine

WAIT = 60


def local_view(engine: Engine, result: Any, node: str) -> dict[str, Any]:
    step = result.steps[node]
    return {
        "status": step.status,
        "attempts": step.attempts,
        "error": step.error,
        "fallback": step.fallback,
        "output": step.output,
    }


def distributed_view(snapshot: Any, node: str) -> dict[str, Any]:
    step = snapshot.steps[node]
    return {
        "status": step.status,
        "attempts": step.attempts,
        "error": step.error,
        "fallback": step.fallback,
        "output": step.result.output if step.result else None,
    }


async def test_a_fallback_is_recorded_the_same_in_both_modes(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"primary": {"fail": True}, "backup": {"output": "from backup"}, "next": {}}
    config = {"primary": {"fallback": "backup", "maxRetries": 2, "retryDelay": 10}}
    engine.register_blueprint(blueprint("fallback", nodes, [("primary", "next")], config))

    local = await engine.execute("fallback", {})
    remote = await runtime.engine.execute_sync("fallback", {}, timeout=WAIT)

    assert local.status == remote.status == "completed"
    expected = {
        "status": "completed",
        "attempts": 1,  # NonRetryableError: the primary is not retried
        "error": "NonRetryableError: primary fails on purpose",
        "fallback": "backup",
        "output": "from backup",
    }
    assert local_view(engine, local, "primary") == expected
    assert distributed_view(remote, "primary") == expected
    assert local.outputs == remote.outputs


async def test_a_fallback_that_fails_too_fails_the_same_in_both_modes(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    nodes = {"primary": {"fail": True}, "backup": {"fail": True}}
    engine.register_blueprint(
        blueprint("both-fail", nodes, [], {"primary": {"fallback": "backup"}})
    )

    local = await engine.execute("both-fail", {})
    remote = await runtime.engine.execute_sync("both-fail", {}, timeout=WAIT)

    assert (local.status, local.failed_step, local.error) == (
        remote.status,
        remote.failed_step,
        remote.error,
    )
    assert remote.error == "NonRetryableError: backup fails on purpose"
    assert local_view(engine, local, "primary") == distributed_view(remote, "primary")


async def test_a_failed_subflow_reads_the_same_in_both_modes(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("child", {"inner": {"fail": True}}, []))
    parent = blueprint("parent", {"before": {}}, [])
    parent["nodes"].append({"id": "sub", "uses": "subflow", "params": {"blueprintId": "child"}})
    parent["edges"].append({"source": "before", "target": "sub"})
    engine.register_blueprint(parent)

    local = await engine.execute("parent", {})
    remote = await runtime.engine.execute_sync("parent", {}, timeout=WAIT)

    assert local.status == remote.status == "failed"
    assert local.failed_step == remote.failed_step == "sub"
    assert local.error == remote.error
    assert local.error == (
        "SubflowFailed: subflow 'sub' ended failed: NonRetryableError: inner fails on purpose"
    )
    assert local.children["sub"].execution_id == f"{local.execution_id}.sub"
    assert remote.steps["sub"].child_id == f"{remote.execution_id}.sub"


async def _ended(probe: Probe, node_id: str) -> None:
    async with asyncio.timeout(WAIT):
        while True:
            if any(run.node_id == node_id and run.ended_at for run in probe.history):
                return
            await asyncio.sleep(0.01)


async def test_a_step_sees_its_ancestors_and_never_a_parallel_branch_in_both_modes(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    """``reader`` starts once ``fast`` has completed, and does not see it: ``fast`` is not
    upstream of it (whether it finished first is a race a result must not depend on). The
    join sees every branch."""
    engine.register_blueprint(views_blueprint("views-local", gate="local"))
    engine.register_blueprint(views_blueprint("views-remote", gate="remote"))

    handle = engine.start("views-local", {"x": 1})
    await _ended(probe, "fast")
    await asyncio.sleep(0.05)  # its result lands at the run's next turn
    probe.open_gate("local")
    local = await handle.result()

    eid = await runtime.engine.execute_async("views-remote", {"x": 1})
    await step_completed(runtime, eid, "fast", timeout=WAIT)
    probe.open_gate("remote")
    remote = await runtime.engine.wait(eid, timeout=WAIT)

    assert local.steps["reader"].output == VIEWS["reader"]
    assert local.steps["join"].output == VIEWS["join"]
    assert distributed_view(remote, "reader")["output"] == VIEWS["reader"]
    assert distributed_view(remote, "join")["output"] == VIEWS["join"]
