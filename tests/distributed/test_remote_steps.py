"""RemoteStep and DistributedParallelStep: parts of a local workflow run on the worker pool.

Run on both backend pairs (embedded and cluster) through the ``runtime`` fixture; the local
workflows run on the test's ``Engine``, which the runtime's workers share.
"""

from __future__ import annotations

import asyncio

import pytest
from scenario_support import Probe, blueprint
from support import assert_eventually

from distributed import (
    DistributedEngine,
    DistributedParallelStep,
    ExecutionSnapshot,
    KVPersistence,
    MQTaskQueue,
    RemoteStep,
    Runtime,
)
from mq import InProcBroker
from orchestration import (
    Agent,
    BlueprintValidationError,
    Engine,
    FunctionStep,
    NodeContext,
    ProviderError,
    RetryPolicy,
    ScriptedProvider,
    StepInput,
    Workflow,
)
from store import MemoryStore

WAIT = 60.0


async def executions_of(runtime: Runtime, workflow_id: str) -> list[ExecutionSnapshot]:
    return [s for s in await runtime.engine.list_executions() if s.workflow_id == workflow_id]


def register_local_workflow(engine: Engine, runtime: Runtime, remote_workflow: str) -> None:
    """``prepare`` -> ``crunch`` (remote) -> ``finish``."""
    engine.register_workflow(
        Workflow("with-remote")
        .add_step(FunctionStep("prepare", lambda s: s.get("n", 0) + 1, output_key="x"))
        .add_step(
            RemoteStep(
                "crunch",
                runtime.engine,
                remote_workflow,
                inputs=lambda s: {"x": s["x"]},
                output_key="crunched",
            )
        )
        .add_step(FunctionStep("finish", lambda s: f"done with {s['crunched']}"))
    )


# -- RemoteStep ------------------------------------------------------------------------------


async def test_a_remote_step_runs_its_workflow_on_the_pool_and_returns_its_output(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("remote-part", {"a": {}, "b": {}}, [("a", "b")]))
    register_local_workflow(engine, runtime, "remote-part")

    result = await engine.execute("with-remote", {"n": 6}, timeout=WAIT)

    assert result.status == "completed", result.error
    assert result.state["crunched"] == "b:7"
    assert result.outputs == {"finish": "done with b:7"}
    [remote] = await executions_of(runtime, "remote-part")
    assert remote.status == "completed"
    assert remote.outputs == {"b": "b:7"}
    assert remote.execution_id.startswith(result.execution_id)
    assert probe.runs_of(remote.execution_id) == {"a": 1, "b": 1}


async def test_a_remote_step_whose_remote_workflow_fails_fails_with_the_remote_root_cause(
    runtime: Runtime, engine: Engine
) -> None:
    engine.register_blueprint(
        blueprint("remote-broken", {"a": {}, "bad": {"fail": True}}, [("a", "bad")])
    )
    register_local_workflow(engine, runtime, "remote-broken")

    result = await engine.execute("with-remote", {}, timeout=WAIT)

    assert result.status == "failed"
    assert result.failed_step == "crunch"
    assert "SubflowFailed" in (result.error or "")
    assert "ended failed: bad: NonRetryableError: bad fails on purpose" in (result.error or "")
    [remote] = await executions_of(runtime, "remote-broken")
    assert remote.status == "failed" and remote.failed_step == "bad"
    assert "finish" not in result.route


async def test_cancelling_the_local_execution_cancels_the_remote_one_on_its_worker(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("remote-slow", {"long": {"delay": 60}}, []))
    register_local_workflow(engine, runtime, "remote-slow")
    handle = engine.start("with-remote", {})
    started = await assert_eventually(
        lambda: [eid for eid, node in probe.started if node == "long"], timeout=WAIT
    )

    handle.cancel()
    result = await handle.result()

    assert result.status == "cancelled"
    [remote_id] = started
    assert (await runtime.engine.get_execution_status(remote_id)).status == "cancelled"
    await assert_eventually(lambda: (remote_id, "long") in probe.cancelled, timeout=5.0)


async def test_a_remote_step_run_twice_for_one_execution_attaches_to_one_remote_execution(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("remote-once", {"a": {"delay": 0.2}}, []))
    register_local_workflow(engine, runtime, "remote-once")
    graph = engine.graph("with-remote")
    ctx = NodeContext("local-1", graph.nodes["crunch"], state={"x": 1}, outputs={})

    first, second = await asyncio.gather(
        engine.run_node(graph, "crunch", ctx), engine.run_node(graph, "crunch", ctx)
    )
    again = await engine.run_node(graph, "crunch", ctx)  # after the remote one completed

    assert first.output == second.output == again.output == "a:1"
    [remote] = await executions_of(runtime, "remote-once")
    assert probe.runs_of(remote.execution_id) == {"a": 1}


async def test_a_retry_after_the_remote_execution_failed_starts_a_fresh_one(
    runtime: Runtime, engine: Engine
) -> None:
    calls: list[int] = []

    def flaky(data: StepInput) -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first remote run breaks")
        return "fine"

    engine.register_workflow(Workflow("remote-flaky").add_step(FunctionStep("flaky", flaky)))
    engine.register_workflow(
        Workflow("retrying").add_step(
            RemoteStep(
                "crunch",
                runtime.engine,
                "remote-flaky",
                retry=RetryPolicy(max_attempts=2, initial_interval=0.0),
            )
        )
    )

    result = await engine.execute("retrying", {}, timeout=WAIT)

    assert result.status == "completed", result.error
    assert result.outputs == {"crunch": "fine"}
    assert result.steps["crunch"].attempts == 2
    remotes = await executions_of(runtime, "remote-flaky")
    assert sorted(r.status for r in remotes) == ["completed", "failed"]


async def test_a_remote_step_also_runs_inside_a_distributed_execution(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("remote-part", {"a": {}}, []))
    register_local_workflow(engine, runtime, "remote-part")

    outer = await runtime.engine.execute_sync("with-remote", {"n": 1}, timeout=WAIT)

    assert outer.status == "completed", outer.error
    assert outer.outputs == {"finish": "done with a:2"}
    [remote] = await executions_of(runtime, "remote-part")
    assert remote.status == "completed"
    assert remote.execution_id.startswith(f"{outer.execution_id}.crunch")


# -- DistributedParallelStep -----------------------------------------------------------------


def panel(provider: ScriptedProvider) -> dict[str, Agent]:
    return {
        "optimist": Agent("Olive", "See the bright side.", provider=provider),
        "critic": Agent("Cyril", "Find the flaws.", provider=provider),
        "judge": Agent("Judith", "Weigh both sides.", provider=provider),
    }


async def test_a_distributed_parallel_step_puts_each_agents_reply_under_its_key(
    runtime: Runtime, engine: Engine
) -> None:
    provider = ScriptedProvider(
        by_node={
            "optimist": lambda prompt: f"yes: {prompt}",
            "critic": lambda prompt: f"no: {prompt}",
            "judge": lambda prompt: f"maybe: {prompt}",
        }
    )
    engine.register_workflow(
        Workflow("review")
        .add_step(
            DistributedParallelStep(
                "panel", runtime.engine, panel(provider), prompt="Is {{topic}} good?"
            )
        )
        .add_step(FunctionStep("verdict", lambda s: s["judge"]))
    )

    result = await engine.execute("review", {"topic": "tea"}, timeout=WAIT)

    assert result.status == "completed", result.error
    replies = {
        "optimist": "yes: Is tea good?",
        "critic": "no: Is tea good?",
        "judge": "maybe: Is tea good?",
    }
    assert {key: result.state[key] for key in replies} == replies
    assert result.node_outputs["panel"] == replies
    assert result.outputs == {"verdict": "maybe: Is tea good?"}
    children = [await executions_of(runtime, f"panel.{key}") for key in replies]
    assert [len(runs) for runs in children] == [1, 1, 1]
    assert len({runs[0].execution_id for runs in children}) == 3
    for key, [child] in zip(replies, children, strict=True):
        assert child.status == "completed"
        assert child.completed_steps == (key,)
        assert child.outputs == {key: replies[key]}


async def test_a_failing_agent_fails_the_parallel_step_naming_the_agent(
    runtime: Runtime, engine: Engine
) -> None:
    provider = ScriptedProvider(
        by_node={"optimist": "yes", "critic": ProviderError("model is down"), "judge": "maybe"}
    )
    engine.register_workflow(
        Workflow("review").add_step(
            DistributedParallelStep("panel", runtime.engine, panel(provider), prompt="Tea?")
        )
    )

    result = await engine.execute("review", {}, timeout=WAIT)

    assert result.status == "failed"
    assert result.failed_step == "panel"
    assert "agent 'critic' (Cyril)" in (result.error or "")
    assert "model is down" in (result.error or "")


def test_constructing_a_parallel_step_again_registers_the_same_workflows_once() -> None:
    local = Engine()
    client = DistributedEngine(local, MQTaskQueue(InProcBroker()), KVPersistence(MemoryStore()))
    agents = {"solo": Agent("Sol", provider=ScriptedProvider(by_node={"solo": "hi"}))}

    DistributedParallelStep("ask", client, agents, prompt="hello")
    DistributedParallelStep("ask", client, agents, prompt="hello")

    assert [w for w in local.workflows() if w.startswith("ask.")] == ["ask.solo"]
    with pytest.raises(BlueprintValidationError, match="different definition"):
        DistributedParallelStep("ask", client, {"solo": Agent("Other")}, prompt="hello")
    DistributedParallelStep("ask", client, {"solo": Agent("Other")}, prompt="x", prefix="ask2")
    assert "ask2.solo" in local.workflows()
