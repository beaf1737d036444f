"""Validation reports every problem of a definition, with its location."""

from __future__ import annotations

from typing import Any

import pytest

from orchestration import BlueprintValidationError, Engine, JoinPolicy, RetryPolicy

BROKEN: dict[str, Any] = {
    "id": "broken",
    "nodes": [
        {"id": "start", "uses": "llm-process", "params": {"promptTemplate": "hi"}},
        {"id": "start", "uses": "output"},
        {"id": "mystery", "uses": "teleport"},
        {"id": "loop_a", "uses": "output"},
        {"id": "loop_b", "uses": "output"},
        {"id": "child", "uses": "subflow", "params": {"blueprintId": "nowhere"}},
        {"id": "gate", "uses": "output", "config": {"joinStrategy": "quorum", "quorum": 3}},
        {"id": "risky", "uses": "output", "config": {"fallback": "ghost_node"}},
    ],
    "edges": [
        {"source": "start", "target": "missing"},
        {"source": "loop_a", "target": "loop_b"},
        {"source": "loop_b", "target": "loop_a"},
        {"source": "start", "target": "child"},
        {"source": "child", "target": "gate"},
        {"source": "start", "target": "mystery"},
        {"source": "start", "target": "risky"},
    ],
}


def test_every_problem_is_reported_at_once_with_its_location() -> None:
    with pytest.raises(BlueprintValidationError) as caught:
        Engine().register_blueprint(BROKEN)
    problems = [str(p) for p in caught.value.problems]
    expected = [
        "nodes[1] (start): duplicate node id",
        "nodes[2] (mystery): unknown node type 'teleport'",
        "edges[0] (start->missing): target 'missing' is not a node of this graph",
        "graph: cycle through node(s) loop_a, loop_b",
        "nodes[3] (loop_a): unreachable from any start node",
        "nodes[5] (child): subflow names unknown blueprint 'nowhere'",
        "nodes[6] (gate): quorum 3 is larger than the in-degree 1",
        "nodes[7] (risky): fallback 'ghost_node' is not a node of this graph",
    ]
    for line in expected:
        assert line in problems, f"{line!r} not in {problems}"
    assert caught.value.graph_id == "broken"
    assert "nodes[1] (start)" in str(caught.value)


def test_schema_errors_are_reported_together_with_their_paths() -> None:
    bad = {
        "id": "schema",
        "nodes": [
            {"id": "a", "uses": "output", "config": {"maxRetries": 0, "colour": "red"}},
            {"id": "b"},
        ],
    }
    with pytest.raises(BlueprintValidationError) as caught:
        Engine().register_blueprint(bad)
    locations = {p.location for p in caught.value.problems}
    assert {"nodes.0.config.maxRetries", "nodes.0.config.colour", "nodes.1.uses"} <= locations


def test_an_invalid_edge_condition_is_a_validation_problem() -> None:
    blueprint = {
        "id": "cond",
        "nodes": [{"id": "a", "uses": "output"}, {"id": "b", "uses": "output"}],
        "edges": [{"source": "a", "target": "b", "condition": "__import__('os')"}],
    }
    with pytest.raises(BlueprintValidationError, match="invalid condition"):
        Engine().register_blueprint(blueprint)


def test_camel_case_config_uses_milliseconds_and_total_attempts() -> None:
    blueprint = {
        "id": "cfg",
        "nodes": [
            {"id": "a", "uses": "output"},
            {"id": "b", "uses": "output"},
            {
                "id": "j",
                "uses": "output",
                "config": {
                    "maxRetries": 3,
                    "retryDelay": 250,
                    "timeout": 1500,
                    "joinStrategy": "quorum",
                    "quorum": 2,
                    "fallback": "a",
                },
            },
        ],
        "edges": [{"source": "a", "target": "j"}, {"source": "b", "target": "j"}],
    }
    node = Engine().register_blueprint(blueprint).nodes["j"]
    assert node.retry == RetryPolicy(max_attempts=3, initial_interval=0.25, backoff_coefficient=1.0)
    assert node.timeout == 1.5 and node.fallback == "a"
    assert node.join == JoinPolicy("quorum", 2)


def test_snake_case_aliases_and_a_full_retry_policy_are_accepted() -> None:
    config = {
        "join_strategy": "any",
        "retry": {
            "max_attempts": 4,
            "initialInterval": 100,
            "backoffCoefficient": 3,
            "maxInterval": 2000,
            "jitter": 0.1,
            "nonRetryableErrorTypes": ["KeyError"],
        },
    }
    blueprint = {"id": "snake", "nodes": [{"id": "a", "uses": "output", "config": config}]}
    node = Engine().register_blueprint(blueprint).nodes["a"]
    assert node.join.kind == "any"
    assert node.retry == RetryPolicy(4, 0.1, 3.0, 2.0, 0.1, ("KeyError",))


def test_a_blueprint_file_without_id_takes_its_file_name(tmp_path: Any) -> None:
    (tmp_path / "greeting.json").write_text('{"nodes": [{"id": "o", "uses": "output"}]}')
    assert Engine().register_blueprint(tmp_path / "greeting.json").id == "greeting"


def test_subflows_may_name_blueprints_loaded_in_the_same_directory(tmp_path: Any) -> None:
    (tmp_path / "a.json").write_text(
        '{"nodes": [{"id": "s", "uses": "subflow", "params": {"blueprintId": "b"}}]}'
    )
    (tmp_path / "b.json").write_text('{"nodes": [{"id": "o", "uses": "output"}]}')
    assert [g.id for g in Engine().load_blueprints(tmp_path)] == ["a", "b"]


def test_retry_delays_back_off_up_to_the_maximum() -> None:
    policy = RetryPolicy(
        max_attempts=5, initial_interval=1.0, backoff_coefficient=2.0, max_interval=5.0
    )
    assert [policy.delay_for(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.should_retry(4, ValueError()) and not policy.should_retry(5, ValueError())
