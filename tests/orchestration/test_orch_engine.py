"""The local engine: joins, failures, retries, timeouts, fallbacks, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from support import assert_eventually

from orchestration import (
    Engine,
    FunctionStep,
    JoinPolicy,
    Node,
    NodeContext,
    NodeResult,
    NodeTypeRegistry,
    NonRetryableError,
    NotJSONSerializable,
    OfflineProvider,
    OrchestrationError,
    ParallelStep,
    ProviderError,
    RetryPolicy,
    ScriptedProvider,
    Services,
    StepInput,
    UnknownWorkflow,
    Workflow,
    current_context,
)

NO_WAIT = RetryPolicy(max_attempts=3, initial_interval=0.0)


def _engine(*steps: FunctionStep | ParallelStep, workflow_id: str = "wf") -> Engine:
    workflow = Workflow(workflow_id)
    for step in steps:
        workflow.add_step(step)
    engine = Engine()
    engine.register_workflow(workflow)
    return engine


def _const(value: Any, log: list[str] | None = None, name: str = "") -> Callable[[StepInput], Any]:
    def step(state: StepInput) -> Any:
        if log is not None:
            log.append(name)
        return value

    return step


async def test_a_diamond_runs_its_join_once_with_both_branches_outputs() -> None:
    log: list[str] = []
    engine = _engine(
        FunctionStep("top", _const(1, log, "top"), output_key="n"),
        FunctionStep("left", lambda s: s["n"] + 1, depends_on=["top"]),
        FunctionStep("right", lambda s: s["n"] + 2, depends_on=["top"]),
        FunctionStep("bottom", lambda s: [s["left"], s["right"]], depends_on=["left", "right"]),
    )
    result = await engine.execute("wf", {})
    assert result.status == "completed"
    assert result.outputs == {"bottom": [2, 3]}
    assert result.route.count("bottom") == 1 and log == ["top"]


async def test_an_any_join_fires_once_on_the_fastest_of_three_predecessors() -> None:
    release = asyncio.Event()
    runs: list[str] = []

    async def slow(state: StepInput) -> str:
        await release.wait()
        return "slow"

    def join(state: StepInput) -> str:
        runs.append("join")
        release.set()
        return f"first: {state.get('fast')}"

    engine = _engine(
        FunctionStep("fast", _const("fast"), depends_on=[]),
        FunctionStep("slow1", slow, depends_on=[]),
        FunctionStep("slow2", slow, depends_on=[]),
        FunctionStep("join", join, depends_on=["fast", "slow1", "slow2"], join=JoinPolicy("any")),
    )
    result = await engine.execute("wf", {})
    assert result.status == "completed"
    assert runs == ["join"]
    join_started = result.steps["join"].started_at
    assert join_started is not None and join_started <= (result.steps["slow1"].finished_at or 0)
    assert result.node_outputs["join"] == "first: fast"


async def test_a_quorum_of_two_fires_before_the_third_predecessor_finishes() -> None:
    release = asyncio.Event()

    async def straggler(state: StepInput) -> str:
        await release.wait()
        return "late"

    def join(state: StepInput) -> list[Any]:
        release.set()
        return sorted(k for k in ("a", "b", "c") if k in state)

    engine = _engine(
        FunctionStep("a", _const(1), depends_on=[]),
        FunctionStep("b", _const(2), depends_on=[]),
        FunctionStep("c", straggler, depends_on=[]),
        FunctionStep("join", join, depends_on=["a", "b", "c"], join=JoinPolicy("quorum", 2)),
    )
    result = await engine.execute("wf", {})
    assert result.status == "completed"
    assert result.node_outputs["join"] == ["a", "b"]
    assert result.route.count("join") == 1


async def test_a_failing_predecessor_fails_the_run_and_the_all_join_never_runs() -> None:
    joined: list[str] = []

    async def hangs(state: StepInput) -> None:
        await asyncio.Event().wait()

    def boom(state: StepInput) -> None:
        raise NonRetryableError("disk on fire")

    engine = _engine(
        FunctionStep("bad", boom, depends_on=[]),
        FunctionStep("busy", hangs, depends_on=[]),
        FunctionStep("join", lambda s: joined.append("x"), depends_on=["bad", "busy"]),
    )
    result = await engine.execute("wf", {})
    assert result.status == "failed"
    assert result.failed_step == "bad" and "disk on fire" in (result.error or "")
    assert result.steps["busy"].status == "cancelled"
    assert result.steps["join"].status == "pending" and joined == []


async def test_retries_count_every_attempt_exactly() -> None:
    calls: list[int] = []

    def flaky(state: StepInput) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "ok"

    result = await _engine(FunctionStep("flaky", flaky, retry=NO_WAIT)).execute("wf", {})
    assert result.status == "completed"
    assert result.steps["flaky"].attempts == 3 and len(calls) == 3


async def test_a_step_that_keeps_failing_stops_after_max_attempts() -> None:
    calls: list[int] = []

    def broken(state: StepInput) -> None:
        calls.append(1)
        raise ConnectionError("down")

    result = await _engine(FunctionStep("broken", broken, retry=NO_WAIT)).execute("wf", {})
    assert result.status == "failed" and result.failed_step == "broken"
    assert result.steps["broken"].attempts == 3 and len(calls) == 3
    assert result.error == "ConnectionError: down"


@pytest.mark.parametrize(
    ("error", "policy"),
    [
        (NonRetryableError("no"), NO_WAIT),
        (KeyError("no"), RetryPolicy(3, 0.0, non_retryable_error_types=("KeyError",))),
    ],
)
async def test_non_retryable_errors_fail_on_the_first_attempt(
    error: Exception, policy: RetryPolicy
) -> None:
    def fails(state: StepInput) -> None:
        raise error

    result = await _engine(FunctionStep("once", fails, retry=policy)).execute("wf", {})
    assert result.status == "failed" and result.steps["once"].attempts == 1


async def test_a_50ms_timeout_fails_a_300ms_step() -> None:
    async def slow(state: StepInput) -> str:
        await asyncio.sleep(0.3)
        return "too late"

    result = await _engine(FunctionStep("slow", slow, timeout=0.05)).execute("wf", {})
    assert result.status == "failed"
    assert result.error is not None and result.error.startswith("StepTimeout")


async def test_a_timed_out_attempt_is_retried_and_can_then_succeed() -> None:
    attempts: list[int] = []

    async def slow_then_fast(state: StepInput) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            await asyncio.sleep(0.3)
        return "fast"

    step = FunctionStep("step", slow_then_fast, timeout=0.05, retry=NO_WAIT)
    result = await _engine(step).execute("wf", {})
    assert result.status == "completed" and result.steps["step"].attempts == 2


async def test_the_fallback_runs_only_when_the_primary_fails() -> None:
    used: list[str] = []

    def from_backup(state: StepInput) -> str:
        used.append("backup")
        return "from backup"

    backup = FunctionStep("backup", from_backup)

    def primary_ok(state: StepInput) -> str:
        return "primary"

    def primary_bad(state: StepInput) -> str:
        raise NonRetryableError("primary down")

    ok = await _engine(FunctionStep("main", primary_ok, fallback=backup)).execute("wf", {})
    assert ok.outputs == {"main": "primary"} and used == []
    assert "backup" not in ok.steps
    bad = await _engine(FunctionStep("main", primary_bad, fallback=backup)).execute("wf", {})
    assert bad.status == "completed" and bad.outputs == {"main": "from backup"}
    assert used == ["backup"]
    assert bad.steps["main"].fallback == "backup" and "primary down" in str(bad.steps["main"].error)
    assert bad.steps["main"].fallback_attempts == 1 and bad.steps["backup"].attempts == 1


async def test_a_cancelled_execution_keeps_its_partial_state() -> None:
    started = asyncio.Event()

    async def forever(state: StepInput) -> None:
        started.set()
        await asyncio.Event().wait()

    engine = _engine(
        FunctionStep("first", _const("done"), output_key="first"),
        FunctionStep("second", forever),
        FunctionStep("third", _const("never")),
    )
    handle = engine.start("wf", {"seed": 1})
    await started.wait()
    assert engine.cancel(handle.execution_id)
    result = await handle.result()
    assert result.status == "cancelled"
    assert result.state == {"seed": 1, "first": "done"}
    assert [result.steps[n].status for n in ("first", "second", "third")] == [
        "completed",
        "cancelled",
        "pending",
    ]


async def test_cancelling_the_caller_of_execute_cancels_the_running_steps() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever(state: StepInput) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    engine = _engine(FunctionStep("forever", forever))
    caller = asyncio.create_task(engine.execute("wf", {}))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert cancelled.is_set()


async def test_an_execution_past_its_deadline_is_timed_out() -> None:
    async def forever(state: StepInput) -> None:
        await asyncio.Event().wait()

    engine = _engine(FunctionStep("done", _const(1), output_key="x"), FunctionStep("hang", forever))
    result = await engine.execute("wf", {}, timeout=0.05)
    assert result.status == "timed_out"
    assert result.state["x"] == 1 and result.steps["hang"].status == "cancelled"


async def test_concurrent_executions_do_not_share_state() -> None:
    async def echo(state: StepInput) -> Any:
        await asyncio.sleep(0)
        return state["n"] * 10

    engine = _engine(FunctionStep("times_ten", echo, output_key="result"))
    results = await asyncio.gather(*(engine.execute("wf", {"n": n}) for n in range(20)))
    assert [r.state for r in results] == [{"n": n, "result": n * 10} for n in range(20)]
    assert len({r.execution_id for r in results}) == 20


async def test_a_step_returning_a_non_json_value_fails_naming_the_step() -> None:
    result = await _engine(FunctionStep("weird", _const(object()))).execute("wf", {})
    assert result.status == "failed" and result.failed_step == "weird"
    assert "NotJSONSerializable" in (result.error or "") and "'weird'" in (result.error or "")
    assert result.steps["weird"].attempts == 1


async def test_run_node_runs_one_attempt_and_returns_json_normal_form() -> None:
    engine = _engine(FunctionStep("pair", _const((1, 2)), output_key="pair"))
    graph = engine.graph("wf")
    ctx = NodeContext("exec-1", graph.nodes["pair"], {}, {})
    result = await engine.run_node(graph, "pair", ctx)
    assert result.output == [1, 2] and result.state_updates == {"pair": [1, 2]}
    assert ctx.idempotency_key == "exec-1/pair"


async def test_every_attempt_of_a_local_step_gets_the_key_execution_id_slash_step_id() -> None:
    seen: list[tuple[str, int]] = []

    def flaky(state: StepInput) -> str:
        ctx = current_context.get()
        assert ctx is not None
        seen.append((ctx.idempotency_key, ctx.attempt))
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return "done"

    engine = _engine(FunctionStep("charge", flaky, retry=NO_WAIT))
    result = await engine.execute("wf", {})
    assert result.status == "completed"
    assert seen == [(f"{result.execution_id}/charge", attempt) for attempt in (1, 2, 3)]


async def test_run_node_rejects_non_json_with_a_named_error() -> None:
    engine = _engine(FunctionStep("bad", _const({1, 2})))
    graph = engine.graph("wf")
    with pytest.raises(NotJSONSerializable) as caught:
        await engine.run_node(graph, "bad", NodeContext("e", graph.nodes["bad"], {}, {}))
    assert caught.value.node_id == "bad"


async def test_run_node_refuses_subflow_nodes() -> None:
    engine = Engine()
    engine.register_blueprint({"id": "child", "nodes": [{"id": "o", "uses": "output"}]})
    engine.register_blueprint(
        {
            "id": "parent",
            "nodes": [{"id": "s", "uses": "subflow", "params": {"blueprintId": "child"}}],
        }
    )
    graph = engine.graph("parent")
    with pytest.raises(OrchestrationError):
        await engine.run_node(graph, "s", NodeContext("e", graph.nodes["s"], {}, {}))


async def test_an_unknown_workflow_is_a_clear_error() -> None:
    with pytest.raises(UnknownWorkflow, match="nope"):
        await Engine().execute("nope", {})


async def test_a_running_execution_is_visible_until_it_finishes() -> None:
    gate = asyncio.Event()

    async def wait_gate(state: StepInput) -> str:
        await gate.wait()
        return "open"

    engine = _engine(FunctionStep("gate", wait_gate))
    handle = engine.start("wf", {})
    await assert_eventually(lambda: handle.snapshot().steps["gate"].status == "running")
    assert not handle.done()
    gate.set()
    assert (await handle.result()).outputs == {"gate": "open"}


async def test_a_failed_child_execution_fails_the_subflow_node() -> None:
    provider = ScriptedProvider(by_node={"work": ProviderError("model unavailable")})
    engine = Engine(provider=provider)
    engine.register_blueprint(
        {
            "id": "child",
            "nodes": [{"id": "work", "uses": "llm-process", "params": {"promptTemplate": "do it"}}],
        }
    )
    subflow = {"id": "delegate", "uses": "subflow", "params": {"blueprintId": "child"}}
    engine.register_blueprint({"id": "parent", "nodes": [subflow]})
    result = await engine.execute("parent", {})
    assert result.status == "failed" and result.failed_step == "delegate"
    assert "SubflowFailed" in (result.error or "") and "model unavailable" in (result.error or "")
    assert result.children["delegate"].failed_step == "work"


async def test_a_user_registered_node_type_runs_from_a_blueprint() -> None:
    class Shout:
        async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
            return NodeResult(output=str(ctx.state["word"]).upper(), action="loud")

    registry = NodeTypeRegistry()
    registry.register("shout", Shout())
    engine = Engine(node_types=registry)
    engine.register_blueprint(
        {
            "id": "custom",
            "nodes": [
                {"id": "s", "uses": "shout"},
                {"id": "o", "uses": "output", "params": {"promptTemplate": "{{s}}!"}},
            ],
            "edges": [{"source": "s", "target": "o", "action": "loud"}],
        }
    )
    result = await engine.execute("custom", {"word": "hey"})
    assert result.outputs == {"final_output": "HEY!"}


async def test_the_offline_provider_labels_itself_offline() -> None:
    completion = await OfflineProvider().complete(
        [{"role": "user", "content": "Tell me a joke."}], model="gpt-4o"
    )
    assert (completion.provider, completion.model) == ("offline", "offline-rules")
    assert completion.text.startswith("[offline]")
