"""Code workflows (the Go-style API): sequential, parallel, conditional and function steps."""

from __future__ import annotations

import asyncio

import pytest

from orchestration import (
    Agent,
    BlueprintValidationError,
    ConditionalStep,
    Engine,
    FunctionStep,
    ParallelStep,
    ScriptedProvider,
    SequentialStep,
    StepInput,
    Workflow,
)


def _register(workflow: Workflow, provider: ScriptedProvider | None = None) -> Engine:
    engine = Engine(provider=provider)
    engine.register_workflow(workflow)
    return engine


def test_add_step_returns_the_workflow_so_calls_chain() -> None:
    workflow = Workflow("w", "W", "demo")
    assert workflow.add_step(FunctionStep("a", lambda s: 1)) is workflow


async def test_sequential_agent_steps_pass_results_through_the_state() -> None:
    provider = ScriptedProvider(by_node={"research": "facts about otters", "write": "An essay."})
    researcher = Agent("researcher", "You find facts.", model="m-1")
    writer = Agent("writer", "You write essays.")
    workflow = (
        Workflow("essay", "Essay")
        .add_step(
            SequentialStep("research", researcher, lambda s: f"Research {s['topic']}", "facts")
        )
        .add_step(SequentialStep("write", writer, lambda s: f"Write about {s['facts']}", "essay"))
    )
    result = await _register(workflow, provider).execute("essay", {"topic": "otters"})
    assert result.status == "completed"
    assert result.state["facts"] == "facts about otters"
    assert result.outputs == {"essay": "An essay."}
    assert provider.calls_for("write")[0].prompt == "Write about facts about otters"
    assert provider.calls_for("research")[0].model == "m-1"
    assert result.provider == "scripted"


async def test_parallel_steps_run_concurrently_and_the_next_step_joins_them() -> None:
    left_started, right_started = asyncio.Event(), asyncio.Event()

    async def left(state: StepInput) -> str:
        left_started.set()
        await right_started.wait()
        return "L"

    async def right(state: StepInput) -> str:
        right_started.set()
        await left_started.wait()
        return "R"

    workflow = (
        Workflow("par")
        .add_step(
            ParallelStep("both", steps=[FunctionStep("left", left), FunctionStep("right", right)])
        )
        .add_step(FunctionStep("merge", lambda s: s["left"] + s["right"]))
    )
    result = await _register(workflow).execute("par", {})
    assert result.status == "completed" and result.outputs == {"merge": "LR"}


@pytest.mark.parametrize(("amount", "branch"), [(500, "approve"), (5, "reject")])
async def test_a_conditional_step_runs_one_branch_and_skips_the_other(
    amount: int, branch: str
) -> None:
    workflow = (
        Workflow("cond")
        .add_step(
            ConditionalStep(
                "big_enough",
                "amount >= 100",
                if_true=FunctionStep("approve", lambda s: "approved", output_key="decision"),
                if_false=FunctionStep("reject", lambda s: "rejected", output_key="decision"),
            )
        )
        .add_step(FunctionStep("notify", lambda s: f"decision: {s['decision']}"))
    )
    result = await _register(workflow).execute("cond", {"amount": amount})
    other = {"approve": "reject", "reject": "approve"}[branch]
    assert result.status == "completed"
    assert result.steps[branch].status == "completed"
    assert result.steps[other].status == "skipped"
    assert result.outputs == {"notify": f"decision: {branch.removesuffix('e')}ed"}


async def test_a_conditional_without_else_continues_to_the_next_step() -> None:
    async def is_vip(state: StepInput) -> bool:
        return bool(state["vip"])

    workflow = (
        Workflow("vip")
        .add_step(
            ConditionalStep(
                "check", condition_fn=is_vip, if_true=FunctionStep("gift", lambda s: "gift")
            )
        )
        .add_step(FunctionStep("done", lambda s: s.get("gift", "no gift")))
    )
    engine = _register(workflow)
    assert (await engine.execute("vip", {"vip": True})).outputs == {"done": "gift"}
    assert (await engine.execute("vip", {"vip": False})).outputs == {"done": "no gift"}


async def test_function_steps_may_be_sync_or_async() -> None:
    async def double(state: StepInput) -> int:
        return int(state["n"]) * 2

    workflow = (
        Workflow("fn")
        .add_step(FunctionStep("double", double, output_key="n"))
        .add_step(FunctionStep("inc", lambda s: s["n"] + 1, output_key="n"))
    )
    result = await _register(workflow).execute("fn", {"n": 5})
    assert result.state["n"] == 11


async def test_depends_on_wires_steps_out_of_order() -> None:
    workflow = (
        Workflow("deps")
        .add_step(FunctionStep("a", lambda s: 1, output_key="a", depends_on=[]))
        .add_step(FunctionStep("b", lambda s: 2, output_key="b", depends_on=[]))
        .add_step(FunctionStep("sum", lambda s: s["a"] + s["b"], depends_on=["a", "b"]))
    )
    engine = _register(workflow)
    assert engine.graph("deps").start_nodes() == ("a", "b")
    assert (await engine.execute("deps", {})).outputs == {"sum": 3}


def test_depending_on_an_unknown_step_is_a_validation_error() -> None:
    workflow = Workflow("bad").add_step(FunctionStep("a", lambda s: 1, depends_on=["ghost"]))
    with pytest.raises(BlueprintValidationError, match="ghost"):
        Engine().register_workflow(workflow)


def test_a_code_workflow_compiles_to_the_same_graph_version_every_time() -> None:
    def build() -> Workflow:
        return Workflow("v").add_step(FunctionStep("a", len)).add_step(FunctionStep("b", len))

    assert (
        Engine().register_workflow(build()).version == Engine().register_workflow(build()).version
    )
