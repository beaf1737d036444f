"""Bounded loops on both backends and in memory: each iteration a durable child execution."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from support import assert_eventually

from distributed import Runtime
from orchestration import Engine, Node, NodeContext, NodeResult

WAIT = 60


class Improve:
    """The loop body's one node: score + 3, and a "!" more on the draft. Counts runs per
    child execution; fails while ``broken`` once the score reached ``fail_from``."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.broken = False
        self.fail_from = 3

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        self.runs[ctx.execution_id] += 1
        score = int(ctx.state.get("score") or 0)
        if self.broken and score >= self.fail_from:
            raise RuntimeError("critic unavailable")
        delay = float(node.params.get("delay", 0))
        if delay:
            import asyncio

            await asyncio.sleep(delay)
        draft = f"{ctx.state.get('draft', 'draft')}!"
        return NodeResult(output=score + 3, state_updates={"score": score + 3, "draft": draft})


def loop_flow(
    limit: int, condition: str | None = "score < 8", delay: float = 0
) -> list[dict[str, Any]]:
    body = {
        "id": "revise",
        "nodes": [{"id": "improve", "uses": "improve", "params": {"delay": delay}}],
    }
    params: dict[str, Any] = {
        "body": "revise",
        "maxIterations": limit,
        "inputs": {"score": "score", "draft": "draft"},
        "outputs": {"score": "score", "draft": "draft"},
    }
    if condition is not None:
        params["while"] = condition
    parent = {
        "id": "polish",
        "nodes": [
            {"id": "polish", "uses": "loop", "params": params},
            {"id": "done", "uses": "output", "params": {"inputs": {"v": "draft"}}},
            {
                "id": "escalate",
                "uses": "output",
                "params": {"inputs": {"v": "score"}, "outputKey": "escalated"},
            },
        ],
        "edges": [
            {"source": "polish", "target": "done"},
            {"source": "polish", "target": "escalate", "action": "exhausted"},
        ],
    }
    return [body, parent]


@pytest.fixture
def improve(engine: Engine) -> Improve:
    improve = Improve()
    engine.node_types.register("improve", improve)
    return improve


def register(engine: Engine, flows: list[dict[str, Any]]) -> None:
    for flow in flows:
        engine.register_blueprint(flow)


async def test_a_loop_repeats_while_its_condition_holds_and_stops_on_it(
    runtime: Runtime, engine: Engine, improve: Improve
) -> None:
    register(engine, loop_flow(limit=5))
    local = await engine.execute("polish", {"score": 0, "draft": "d"})
    done = await runtime.engine.execute_sync("polish", {"score": 0, "draft": "d"}, timeout=WAIT)

    assert local.status == done.status == "completed"
    assert local.outputs == done.outputs == {"final_output": "d!!!"}
    loop = done.steps["polish"]
    assert loop.result is not None
    assert loop.result.output == {"output": {"score": 9, "draft": "d!!!"}, "iterations": 3}
    assert loop.result.action is None and done.steps["escalate"].status == "skipped"
    eid = done.execution_id
    assert [improve.runs[f"{eid}.polish.{n}"] for n in (1, 2, 3, 4)] == [1, 1, 1, 0]


async def test_a_loop_stops_at_max_iterations_and_says_so(
    runtime: Runtime, engine: Engine, improve: Improve
) -> None:
    register(engine, loop_flow(limit=2, condition="score < 100"))
    local = await engine.execute("polish", {"score": 0})
    done = await runtime.engine.execute_sync("polish", {"score": 0}, timeout=WAIT)
    assert local.status == done.status == "completed"
    assert local.outputs == done.outputs == {"escalated": 6}
    assert done.steps["polish"].result is not None
    assert done.steps["polish"].result.action == "exhausted"
    assert done.steps["polish"].result.output["iterations"] == 2


async def test_a_counted_loop_without_a_condition_runs_max_iterations(
    runtime: Runtime, engine: Engine, improve: Improve
) -> None:
    register(engine, loop_flow(limit=4, condition=None))
    done = await runtime.engine.execute_sync("polish", {"score": 0, "draft": "d"}, timeout=WAIT)
    assert done.status == "completed" and done.outputs == {"final_output": "d!!!!"}


async def test_cancelling_during_an_iteration_cancels_it(
    runtime: Runtime, engine: Engine, improve: Improve
) -> None:
    register(engine, loop_flow(limit=3, delay=5))
    eid = await runtime.engine.execute_async("polish", {"score": 0})
    first = f"{eid}.polish.1"
    await assert_eventually(lambda: improve.runs[first] == 1, timeout=WAIT)
    assert await runtime.engine.cancel(eid)
    child = await runtime.engine.wait(first, timeout=WAIT)
    assert child.status == "cancelled"
    assert improve.runs[f"{eid}.polish.2"] == 0


async def test_a_loop_whose_iteration_failed_recovers_without_rerunning_done_iterations(
    runtime: Runtime, engine: Engine, improve: Improve
) -> None:
    register(engine, loop_flow(limit=5))
    improve.broken = True  # iteration 2 (score 3) fails
    failed = await runtime.engine.execute_sync("polish", {"score": 0, "draft": "d"}, timeout=WAIT)
    eid = failed.execution_id
    assert failed.status == "failed" and failed.failed_step == "polish"
    assert "critic unavailable" in (failed.error or "")

    improve.broken = False
    assert await runtime.recovery.recover_failed_execution(eid) == 2
    done = await runtime.engine.wait(eid, timeout=WAIT)

    assert done.status == "completed" and done.outputs == {"final_output": "d!!!"}
    runs = [improve.runs[f"{eid}.polish.{n}"] for n in (1, 2, 3)]
    assert runs == [1, 2, 1]  # iteration 1 kept; 2 failed once, then ran again; 3 ran once


async def test_a_loop_without_max_iterations_is_refused(engine: Engine, improve: Improve) -> None:
    bad = loop_flow(limit=1)
    bad[1]["nodes"][0]["params"].pop("maxIterations")
    engine.register_blueprint(bad[0])
    with pytest.raises(Exception, match="maxIterations is required"):
        engine.register_blueprint(bad[1])


async def test_a_loop_naming_an_unknown_body_is_refused(engine: Engine) -> None:
    bad = loop_flow(limit=1)[1]
    with pytest.raises(Exception, match="loop names unknown blueprint 'revise'"):
        engine.register_blueprint(bad)
