"""The public surface of ``orchestration`` and its pure state rules."""

from __future__ import annotations

import orchestration
from orchestration import (
    Edge,
    Engine,
    ExecutionResult,
    FunctionStep,
    Graph,
    Node,
    NodeResult,
    StepRecord,
    Workflow,
    apply_updates,
    final_outputs,
    format_result,
    render_template,
)
from orchestration.subflow import child_result

EXPECTED_ALL = {
    "DEFAULT_OUTPUT_KEY",
    "JSON",
    "Agent",
    "Blueprint",
    "BlueprintEdge",
    "BlueprintNode",
    "BlueprintValidationError",
    "ChildOutcome",
    "CompiledWorkflow",
    "Completion",
    "Condition",
    "ConditionError",
    "ConditionalStep",
    "Edge",
    "Engine",
    "ExecutionHandle",
    "ExecutionResult",
    "FunctionStep",
    "Graph",
    "JoinDecision",
    "JoinPolicy",
    "LLMProvider",
    "LoopSpec",
    "LoopStep",
    "Message",
    "Node",
    "NodeConfig",
    "NodeContext",
    "NodeResult",
    "NodeType",
    "NodeTypeRegistry",
    "NonRetryableError",
    "NotJSONSerializable",
    "OfflineProvider",
    "OpenAIProvider",
    "OrchestrationError",
    "ParallelStep",
    "Problem",
    "ProviderError",
    "RetryPolicy",
    "Routing",
    "ScriptedProvider",
    "SequentialStep",
    "Signal",
    "SignalBox",
    "SignalRefused",
    "Services",
    "Step",
    "StepInput",
    "StepRecord",
    "StepTimeout",
    "SubflowFailed",
    "UnknownNodeType",
    "UnknownWorkflow",
    "UnroutableAction",
    "WaitSpec",
    "WaitStep",
    "WaitTimedOut",
    "Workflow",
    "apply_updates",
    "builtin_registry",
    "compile_condition",
    "current_context",
    "current_node_id",
    "default_retry_policy",
    "evaluate",
    "final_outputs",
    "format_result",
    "graph_problems",
    "join_decision",
    "render_template",
    "resolve_inputs",
    "retry_with_policy",
    "retry_with_policy_sync",
    "route",
}


def test_the_public_names_are_pinned() -> None:
    assert set(orchestration.__all__) == EXPECTED_ALL
    assert all(hasattr(orchestration, name) for name in orchestration.__all__)


def test_state_updates_merge_and_later_commits_win() -> None:
    state = apply_updates({"a": 1, "b": 1}, "n1", NodeResult(output="x", state_updates={"b": 2}))
    state = apply_updates(state, "n2", NodeResult(state_updates={"b": 3, "c": 4}))
    assert state == {"a": 1, "b": 3, "c": 4}


def test_template_inputs_prefer_node_outputs_then_state_and_first_present_wins() -> None:
    params = {"inputs": {"body": ["skipped_node", "draft", "note"], "who": "name", "gone": "x"}}
    outputs = {"draft": "node text"}
    text = render_template(
        "{{who}}: {{body}} [{{gone}}] {{count}}",
        params,
        {"name": "Ada", "count": 3, "draft": "state text"},
        outputs,
    )
    assert text == "Ada: node text [] 3"


def test_final_outputs_name_terminal_nodes_by_output_key_or_id() -> None:
    graph = Graph(
        "g",
        [
            Node("a", "llm-process"),
            Node("b", "output"),
            Node("c", "output", {"outputKey": "k"}),
            Node("d", "llm-process"),
            Node("e", "llm-process"),
        ],
        [Edge("a", "b"), Edge("a", "c"), Edge("a", "d"), Edge("a", "e")],
    )
    outputs = {"a": 0, "b": "B", "c": "C", "d": "D"}
    assert final_outputs(graph, outputs, {}, {"a", "b", "c", "d"}) == {
        "final_output": "B",
        "k": "C",
        "d": "D",
    }


def test_subflow_outputs_map_a_single_value_several_or_everything() -> None:
    child = ExecutionResult(
        "c", "child", "completed", {"final_output": "mail"}, {"final_output": "mail", "t": "T"}, {}
    )
    single = Node("s", "subflow", {"outputs": {"email": "final_output"}})
    several = Node("s", "subflow", {"outputs": {"email": "final_output", "ticket": "t"}})
    assert child_result(single, child) == NodeResult("mail", None, {"email": "mail"})
    assert child_result(several, child).output == {"email": "mail", "ticket": "T"}
    assert child_result(Node("s", "subflow"), child).output == {"final_output": "mail"}


async def test_the_formatter_shows_route_steps_output_and_provider() -> None:
    workflow = (
        Workflow("fmt", "Formatting demo")
        .add_step(FunctionStep("first", lambda s: "hello"))
        .add_step(FunctionStep("second", lambda s: "world"))
    )
    engine = Engine()
    graph = engine.register_workflow(workflow)
    text = format_result(await engine.execute("fmt", {}), graph)
    assert "Formatting demo (fmt): completed" in text
    assert "LLM provider: offline" in text
    assert "Route: first -> second" in text
    assert "second:\n    world" in text


def test_the_formatter_names_the_failed_step() -> None:
    graph = Graph("g", [Node("x", "output")], [])
    result = ExecutionResult(
        "e",
        "g",
        "failed",
        {},
        {},
        {"x": StepRecord("x", "failed", 2, error="ValueError: nope")},
        error="ValueError: nope",
        failed_step="x",
    )
    text = format_result(result, graph)
    assert "FAILED" in text and "(2 attempts)" in text and "Error in x: ValueError: nope" in text
