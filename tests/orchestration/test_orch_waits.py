"""Waits in the local engine: the code twin, early and duplicate signals, timeouts."""

from __future__ import annotations

import pytest
from support import assert_eventually

from orchestration import (
    BlueprintValidationError,
    ConditionalStep,
    Engine,
    FunctionStep,
    LoopStep,
    SignalRefused,
    WaitStep,
    Workflow,
)


def approval_workflow(timeout: float | None = None, on_timeout: str | None = None) -> Workflow:
    return (
        Workflow("approval")
        .add_step(FunctionStep("draft", lambda s: "a draft", output_key="text"))
        .add_step(
            WaitStep(
                "review", "review", timeout=timeout, on_timeout=on_timeout, output_key="verdict"
            )
        )
        .add_step(
            ConditionalStep(
                "approved?",
                condition_fn=lambda s: s.get("verdict") == "yes",
                if_true=FunctionStep("publish", lambda s: f"published {s['text']}"),
                if_false=FunctionStep("shelve", lambda s: "shelved"),
            )
        )
    )


async def test_a_code_wait_step_takes_its_signal_and_the_workflow_goes_on() -> None:
    engine = Engine()
    engine.register_workflow(approval_workflow())
    handle = engine.start("approval", {})
    await assert_eventually(lambda: handle.snapshot().steps["review"].status == "waiting")
    handle.signal("review", payload="yes")
    result = await handle.result()
    assert result.status == "completed" and result.outputs == {"publish": "published a draft"}
    assert result.steps["review"].output == "yes"


async def test_a_signal_before_the_wait_is_kept_and_a_second_one_is_refused() -> None:
    engine = Engine()
    engine.register_workflow(approval_workflow())
    handle = engine.start("approval", {})
    handle.signal("review", payload="no")
    with pytest.raises(SignalRefused, match="already took a signal"):
        handle.signal("review", payload="yes")
    with pytest.raises(SignalRefused, match=r"no wait for it \(waits: review\)"):
        handle.signal("lunch")
    result = await handle.result()
    assert result.outputs == {"shelve": "shelved"}


async def test_a_timed_out_wait_takes_its_action_or_fails() -> None:
    engine = Engine()
    engine.register_workflow(approval_workflow(timeout=0.05))
    failed = await engine.execute("approval", {})
    assert failed.status == "failed" and failed.failed_step == "review"
    assert failed.error == "WaitTimedOut: wait 'review' got no 'review' signal within 0.05s"


async def test_a_signal_for_an_execution_not_running_here_is_refused() -> None:
    with pytest.raises(SignalRefused, match="no such execution is running here"):
        Engine().signal("nope", "review")


def test_a_wait_node_without_an_event_is_a_blueprint_problem() -> None:
    bad = {"id": "bad", "nodes": [{"id": "w", "uses": "wait", "params": {"timeout": -1}}]}
    with pytest.raises(BlueprintValidationError, match=r"params\.event"):
        Engine().register_blueprint(bad)


async def test_a_code_loop_step_repeats_a_code_workflow_while_its_condition_holds() -> None:
    engine = Engine()
    engine.register_workflow(
        Workflow("step-up").add_step(
            FunctionStep("bump", lambda s: int(s.get("n") or 0) + 2, output_key="n")
        )
    )
    engine.register_workflow(
        Workflow("climb").add_step(
            LoopStep(
                "climb",
                "step-up",
                max_iterations=10,
                condition="n < 5",
                inputs={"n": "n"},
                outputs={"n": "n"},
            )
        )
    )
    result = await engine.execute("climb", {"n": 0})
    assert result.status == "completed"
    assert result.steps["climb"].output == {"output": 6, "iterations": 3}
    assert result.state["n"] == 6
