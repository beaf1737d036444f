"""Size limits: oversized inputs are refused at submission (nothing stored); a step whose
output, state updates or resulting state is over its limit fails for good, and so does its
execution, naming the step, the size and the limit -- and nothing oversized is stored."""

from __future__ import annotations

from typing import Any

import pytest
from scenario_support import Probe, RuntimeFactory, blueprint

from distributed import KVPersistence
from distributed.engine import DistributedEngine, EngineConfig
from distributed.errors import InputsTooLarge, LimitExceeded, StepResultTooLarge
from distributed.limits import Limits, json_size
from distributed.settings import Settings
from distributed.steps import StepExecutor
from orchestration import Engine, Node, NodeContext, NodeResult
from orchestration.attempts import GiveUp

WAIT = 30.0
KiB = 1024


class Returns:
    """A node type returning ``output`` characters of output and ``update`` of state update."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        output = "o" * int(node.params.get("output", 1))
        update = int(node.params.get("update", 0))
        return NodeResult(output=output, state_updates={"u": "u" * update} if update else {})


def _ctx(engine: Engine, workflow: str, state: dict[str, Any]) -> NodeContext:
    node = engine.graph(workflow).nodes["step"]
    return NodeContext(execution_id="e1", node=node, state=state, outputs={})


@pytest.mark.parametrize(
    ("params", "state", "what", "setting"),
    [
        ({"output": 2000}, {}, "returned an output of 2.0 KiB (2002 bytes)", "max_output_bytes"),
        (
            {"update": 2000},
            {},
            "returned state updates of 2.0 KiB (2008 bytes)",
            "max_output_bytes",
        ),
        (
            {"update": 800},
            {"big": "b" * 2500},
            "would leave an execution state of 3.2 KiB (3317 bytes)",
            "max_state_bytes",
        ),
    ],
    ids=["output", "state updates", "state"],
)
async def test_a_result_over_a_limit_is_a_failure_never_retried(
    params: dict[str, int], state: dict[str, Any], what: str, setting: str
) -> None:
    engine = Engine()
    engine.node_types.register("returns", Returns())
    retried = {"maxRetries": 5}
    engine.register_blueprint(_one_step("limited", params, retried))
    limits = Limits(max_output_bytes=1000, max_state_bytes=3000)
    outcome = await StepExecutor(engine, limits=limits).run(
        engine.graph("limited"), _ctx(engine, "limited", state)
    )
    assert outcome.result is None
    assert isinstance(outcome.error, StepResultTooLarge)
    assert isinstance(outcome.decision, GiveUp)
    text = outcome.describe_error()
    assert f"step 'step' {what}" in text, text
    assert text.endswith(f"set by {setting} / FLOWLOOM_{setting.upper()}"), text


async def test_results_within_the_limits_and_the_defaults_pass() -> None:
    engine = Engine()
    engine.node_types.register("returns", Returns())
    engine.register_blueprint(_one_step("fits", {"output": 1000, "update": 990}))
    limits = Limits(max_output_bytes=1002, max_state_bytes=1000)
    outcome = await StepExecutor(engine, limits=limits).run(
        engine.graph("fits"), _ctx(engine, "fits", {})
    )
    assert outcome.result is not None and outcome.error is None
    assert StepExecutor(engine).limits == Limits()  # defaults without configuration
    assert Limits().max_output_bytes == 512 * KiB and Limits().max_task_bytes == 64 * KiB


def test_settings_carry_the_limits_from_the_environment() -> None:
    settings = Settings.from_env({"FLOWLOOM_MAX_OUTPUT_BYTES": "2048"}, store_url="memory://")
    assert settings.limits == Limits(max_output_bytes=2048)
    assert Settings(store_url="memory://").limits == Limits()


async def test_a_step_returning_more_than_the_output_limit_fails_its_execution_cleanly(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    huge = "x" * (600 * KiB)
    nodes = {"huge": {"output": huge}, "after": {}}
    engine.register_blueprint(blueprint("oversized-chain", nodes, [("huge", "after")]))
    runtime = make_runtime(engine)
    async with runtime:
        snapshot = await runtime.engine.execute_sync("oversized-chain", {}, timeout=WAIT)
        eid = snapshot.execution_id
        persistence = runtime.engine.persistence
        assert isinstance(persistence, KVPersistence)
        stored = [
            (key, raw) async for key, raw in persistence.store.scan(persistence.keys.execution(eid))
        ]
        step = await persistence.step(eid, "huge")

    assert snapshot.status == "failed"
    assert snapshot.failed_step == "huge"
    error = snapshot.error or ""
    assert "step 'huge' returned an output of 600.0 KiB" in error, error
    assert "over the limit of 512 KiB set by max_output_bytes" in error, error
    assert probe.runs_of(eid) == {"huge": 1}  # not retried, nothing after it ran
    assert step is not None and step.record.status == "failed" and step.record.result is None
    biggest = max(len(raw) for _, raw in stored)
    assert biggest < 16 * KiB, [(key, len(raw)) for key, raw in stored]


async def test_inputs_and_signals_over_the_limit_are_refused_and_nothing_is_stored(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    engine.register_blueprint(blueprint("takes-inputs", {"a": {}}, []))
    runtime = make_runtime(engine, workers=False)
    async with runtime:
        with pytest.raises(InputsTooLarge) as refused:
            await runtime.engine.execute_async("takes-inputs", {"blob": "x" * (600 * KiB)})
        strict = DistributedEngine.from_context(
            runtime.engine.context, EngineConfig(limits=Limits(max_inputs_bytes=64))
        )
        with pytest.raises(InputsTooLarge, match="over the limit of 64 bytes"):
            await strict.execute_async("takes-inputs", {"blob": "x" * 100}, execution_id="s1")
        with pytest.raises(LimitExceeded, match=r"payload of signal 'approve' is 600\.0 KiB"):
            await runtime.engine.signal("any", "approve", payload="x" * (600 * KiB))
        persistence = runtime.engine.persistence
        assert isinstance(persistence, KVPersistence)
        listed = [eid async for eid in persistence.all_executions()]
        keys = [key async for key, _ in persistence.store.scan(persistence.keys.ns)]

    message = str(refused.value)
    assert "inputs of workflow 'takes-inputs' are 600.0 KiB" in message, message
    assert message.endswith(
        "over the limit of 512 KiB set by max_inputs_bytes / FLOWLOOM_MAX_INPUTS_BYTES"
    ), message
    assert refused.value.size == json_size({"blob": "x" * (600 * KiB)})
    assert listed == [] and keys == []


def _one_step(
    workflow: str, params: dict[str, int], config: dict[str, Any] | None = None
) -> dict[str, Any]:
    node = {"id": "step", "uses": "returns", "params": params, "config": config or {}}
    return {"id": workflow, "nodes": [node], "edges": []}
