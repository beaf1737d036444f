"""Routing and join rules (pure functions shared by both engines)."""

from __future__ import annotations

import pytest

from orchestration import (
    Edge,
    Graph,
    JoinDecision,
    JoinPolicy,
    Node,
    NodeResult,
    UnroutableAction,
    join_decision,
    route,
)


def _graph(*edges: Edge) -> Graph:
    ids = dict.fromkeys(n for e in edges for n in (e.source, e.target))
    return Graph("g", [Node(i, "output") for i in ids], edges)


def test_an_action_takes_only_the_edges_with_that_action() -> None:
    graph = _graph(Edge("c", "yes", action="true"), Edge("c", "no", action="false"))
    routing = route(graph, "c", NodeResult(action="true"), {})
    assert [e.target for e in routing.taken] == ["yes"]
    assert [e.target for e in routing.skipped] == ["no"]


def test_an_unmatched_action_falls_back_to_the_default_route() -> None:
    graph = _graph(Edge("r", "special", action="x"), Edge("r", "default"))
    routing = route(graph, "r", NodeResult(action="other"), {})
    assert [e.target for e in routing.taken] == ["default"]
    assert [e.target for e in routing.skipped] == ["special"]


def test_a_matching_action_does_not_also_take_the_default_route() -> None:
    graph = _graph(Edge("r", "special", action="x"), Edge("r", "default"))
    routing = route(graph, "r", NodeResult(action="x"), {})
    assert [e.target for e in routing.taken] == ["special"]


def test_an_unmatched_action_without_a_default_route_names_node_and_action() -> None:
    graph = _graph(Edge("r", "a", action="go_a"), Edge("r", "b", action="go_b"))
    with pytest.raises(UnroutableAction) as caught:
        route(graph, "r", NodeResult(action="go_c"), {})
    assert (caught.value.node_id, caught.value.action) == ("r", "go_c")
    assert "'r'" in str(caught.value) and "'go_c'" in str(caught.value)


def test_a_node_without_action_edges_ignores_its_action() -> None:
    graph = _graph(Edge("c", "next"))
    assert [e.target for e in route(graph, "c", NodeResult(action="true"), {}).taken] == ["next"]


def test_conditions_read_state_output_and_action() -> None:
    graph = _graph(
        Edge("s", "big", condition="output > 10 and user.tier == 'gold'"),
        Edge("s", "small", condition="output <= 10 or action == 'force'"),
    )
    routing = route(graph, "s", NodeResult(output=42), {"user": {"tier": "gold"}})
    assert [e.target for e in routing.taken] == ["big"]
    assert [e.target for e in routing.skipped] == ["small"]


def test_edge_keys_are_unique_per_action() -> None:
    assert Edge("a", "b").key == "a->b"
    assert Edge("a", "b", action="x").key == "a->b#x"


def _ledger(*states: bool | None) -> tuple[list[Edge], dict[str, bool]]:
    edges = [Edge(f"p{i}", "j") for i in range(len(states))]
    return edges, {e.key: s for e, s in zip(edges, states, strict=True) if s is not None}


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((None, True), JoinDecision.WAIT),
        ((True, False), JoinDecision.FIRE),
        ((False, False), JoinDecision.SKIP),
        ((True, True), JoinDecision.FIRE),
    ],
)
def test_an_all_join_waits_for_every_edge(
    states: tuple[bool | None, ...], expected: JoinDecision
) -> None:
    edges, resolved = _ledger(*states)
    assert join_decision(Node("j", "output"), edges, resolved) is expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((True, None, None), JoinDecision.FIRE),
        ((False, None, None), JoinDecision.WAIT),
        ((False, False, False), JoinDecision.SKIP),
    ],
)
def test_an_any_join_fires_on_the_first_taken_edge(
    states: tuple[bool | None, ...], expected: JoinDecision
) -> None:
    edges, resolved = _ledger(*states)
    node = Node("j", "output", join=JoinPolicy("any"))
    assert join_decision(node, edges, resolved) is expected


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ((True, None, None), JoinDecision.WAIT),
        ((True, True, None), JoinDecision.FIRE),
        ((False, False, None), JoinDecision.SKIP),
        ((True, False, None), JoinDecision.WAIT),
    ],
)
def test_a_quorum_join_fires_at_k_and_skips_once_k_is_out_of_reach(
    states: tuple[bool | None, ...], expected: JoinDecision
) -> None:
    edges, resolved = _ledger(*states)
    node = Node("j", "output", join=JoinPolicy("quorum", 2))
    assert join_decision(node, edges, resolved) is expected


def test_a_node_without_incoming_edges_fires() -> None:
    assert join_decision(Node("s", "output"), [], {}) is JoinDecision.FIRE


def test_a_nodes_ancestors_are_every_node_upstream_of_it_and_no_sibling() -> None:
    graph = _graph(
        Edge("root", "left"),
        Edge("root", "right"),
        Edge("left", "deep"),
        Edge("deep", "join"),
        Edge("right", "join"),
    )
    assert graph.ancestors("root") == frozenset()
    assert graph.ancestors("deep") == {"root", "left"}
    assert graph.ancestors("join") == {"root", "left", "deep", "right"}
    assert graph.ancestors("deep") is graph.ancestors("deep")  # computed once
