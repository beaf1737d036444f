"""Graph validation: every problem of a definition, each with its location, in one pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence

from orchestration.conditions import compile_condition
from orchestration.errors import ConditionError, Problem
from orchestration.graph import Edge, Node
from orchestration.registry import NodeTypeRegistry

__all__ = ["graph_problems"]


def _node_location(index: int, node: Node) -> str:
    return f"nodes[{index}] ({node.id})"


def _edge_location(index: int, edge: Edge) -> str:
    return f"edges[{index}] ({edge.key})"


def _node_problems(
    index: int,
    node: Node,
    ids: Collection[str],
    node_types: NodeTypeRegistry | None,
    graphs: Collection[str] | None,
) -> list[Problem]:
    where = _node_location(index, node)
    messages: list[str] = []
    if node_types is not None and node.type not in node_types:
        messages.append(f"unknown node type {node.type!r}")
    elif node_types is not None:
        validate = getattr(node_types.get(node.type), "validate", None)
        messages += validate(node) if callable(validate) else []
    if node.fallback is not None and node.fallback not in ids:
        messages.append(f"fallback {node.fallback!r} is not a node of this graph")
    if node.fallback == node.id:
        messages.append("a node cannot be its own fallback")
    if node.retry.max_attempts < 1:
        messages.append("retry.max_attempts must be at least 1")
    if node.timeout is not None and node.timeout <= 0:
        messages.append("timeout must be positive")
    child = node.params.get({"subflow": "blueprintId", "loop": "body"}.get(node.type, ""))
    if isinstance(child, str) and graphs is not None and child not in graphs:
        messages.append(f"{node.type} names unknown blueprint {child!r}")
    return [Problem(where, message) for message in messages]


def _join_problems(index: int, node: Node, in_degree: int) -> list[Problem]:
    if node.join.kind != "quorum":
        return []
    where = _node_location(index, node)
    quorum = node.join.quorum
    if quorum is None or quorum < 1:
        return [Problem(where, "a quorum join needs a quorum of at least 1")]
    if quorum > in_degree:
        return [Problem(where, f"quorum {quorum} is larger than the in-degree {in_degree}")]
    return []


def _edge_problems(edges: Sequence[Edge], ids: Collection[str]) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, edge in enumerate(edges):
        where = _edge_location(index, edge)
        for end, name in (("source", edge.source), ("target", edge.target)):
            if name not in ids:
                problems.append(Problem(where, f"{end} {name!r} is not a node of this graph"))
        if edge.key in seen:
            problems.append(Problem(where, "duplicate edge"))
        seen.add(edge.key)
        if edge.source == edge.target:
            problems.append(Problem(where, "an edge cannot point at its own source"))
        if edge.condition is not None:
            try:
                compile_condition(edge.condition)
            except ConditionError as exc:
                problems.append(Problem(where, f"invalid condition: {exc}"))
    return problems


def _cycle_nodes(ids: Sequence[str], edges: Sequence[Edge]) -> list[str]:
    """Nodes left over by Kahn's algorithm: those on or behind a cycle."""
    in_degree = Counter(edge.target for edge in edges)
    ready = [node for node in ids if in_degree[node] == 0]
    removed: set[str] = set()
    while ready:
        node = ready.pop()
        removed.add(node)
        for edge in edges:
            if edge.source == node:
                in_degree[edge.target] -= 1
                if in_degree[edge.target] == 0:
                    ready.append(edge.target)
    return [node for node in ids if node not in removed]


def _reachable(nodes: Sequence[Node], edges: Sequence[Edge]) -> set[str]:
    targets = {edge.target for edge in edges}
    fallbacks = {node.fallback for node in nodes if node.fallback}
    frontier = [n.id for n in nodes if n.id not in targets and n.id not in fallbacks]
    seen: set[str] = set()
    by_id = {node.id: node for node in nodes}
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        frontier += [edge.target for edge in edges if edge.source == current]
        fallback = by_id[current].fallback if current in by_id else None
        frontier += [fallback] if fallback else []
    return seen


def _structure_problems(nodes: Sequence[Node], edges: Sequence[Edge]) -> list[Problem]:
    ids = list(dict.fromkeys(node.id for node in nodes))
    known = [e for e in edges if e.source in ids and e.target in ids and e.source != e.target]
    problems: list[Problem] = []
    cyclic = _cycle_nodes(ids, known)
    if cyclic:
        problems.append(Problem("graph", f"cycle through node(s) {', '.join(cyclic)}"))
    reached = _reachable(nodes, known)
    for index, node in enumerate(nodes):
        if node.id not in reached:
            problems.append(Problem(_node_location(index, node), "unreachable from any start node"))
    return problems


def graph_problems(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    node_types: NodeTypeRegistry | None = None,
    graphs: Collection[str] | None = None,
) -> list[Problem]:
    """Every problem of a definition (empty when valid).

    Checks: duplicate node ids, unknown node types and node-type parameter problems, edges
    to missing nodes, duplicate edges, invalid conditions, cycles, nodes unreachable from
    every start node, subflows naming blueprints outside ``graphs``, quorums larger than the
    in-degree, fallbacks that do not exist. ``node_types``/``graphs`` ``None`` skip those checks.
    """
    if not nodes:
        return [Problem("nodes", "a workflow needs at least one node")]
    counts = Counter(node.id for node in nodes)
    ids = set(counts)
    in_degree = Counter(edge.target for edge in edges)
    problems: list[Problem] = []
    for index, node in enumerate(nodes):
        if counts[node.id] > 1:
            problems.append(Problem(_node_location(index, node), "duplicate node id"))
        problems += _node_problems(index, node, ids, node_types, graphs)
        problems += _join_problems(index, node, in_degree[node.id])
    problems += _edge_problems(edges, ids)
    return problems + _structure_problems(nodes, edges)
