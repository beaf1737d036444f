"""``RecentDefinitions``: a worker's guess of a delivered step's definition, and its bound."""

from __future__ import annotations

from distributed.recent import RecentDefinitions
from orchestration import Edge, Graph, Node


def _chain() -> Graph:
    nodes = [Node(n, "output") for n in ("a", "b", "c")]
    return Graph("chain", nodes, [Edge("a", "b"), Edge("b", "c")])


def test_it_guesses_the_definition_and_the_ancestors_of_a_step_it_has_seen_run() -> None:
    recent, graph = RecentDefinitions(), _chain()
    assert recent.guess("e1", "c") == (None, [])
    recent.remember("e1", graph)
    assert recent.guess("e1", "c") == (graph, ["a", "b"])
    assert recent.guess("e1", "a") == (graph, [])
    assert recent.guess("e1", "nope") == (None, [])  # not a step of it: no guess


def test_it_forgets_the_execution_it_saw_least_recently_beyond_its_size() -> None:
    recent, graph = RecentDefinitions(size=2), _chain()
    for eid in ("e1", "e2", "e1", "e3"):
        recent.remember(eid, graph)
    assert recent.guess("e2", "b") == (None, [])
    assert recent.guess("e1", "b") == recent.guess("e3", "b") == (graph, ["a"])
