"""Graph validation: every problem of a definition, each with its location, in one pass.

Ids (``id_problem``): a node id, a blueprint id, an edge action and a wait's event name end up
in store keys, child execution ids, log lines and CLI output, so each is 1 to
``MAX_ID_LENGTH`` characters without control characters (Unicode Cc: NUL, tab, newline, ...),
line or paragraph separators (Zl, Zp) or lone surrogates (Cs) -- the stores refuse NUL and
text that is not UTF-8, and an id must print on one line. The id of a node that starts child
executions (``subflow``, ``loop``) is part of its children's execution ids
(``{execution}.{node}``), so it has no ``/`` either (the key separator, refused in execution
ids). Everything else goes: spaces, dots, any script.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence

from orchestration.conditions import compile_condition
from orchestration.errors import ConditionError, Problem
from orchestration.graph import Edge, Node
from orchestration.registry import NodeTypeRegistry

__all__ = [
    "CHILD_PARAMETER",
    "MAX_ID_LENGTH",
    "child_graph_ids",
    "graph_problems",
    "id_problem",
    "reference_cycle",
    "reference_cycle_problems",
]

MAX_ID_LENGTH = 256
"""The longest node id, blueprint id, edge action or wait event name (in characters)."""

_FORBIDDEN_CATEGORIES = {
    "Cc": "a control character",
    "Cs": "a lone surrogate (not Unicode text)",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
CHILD_PARAMETER = {"subflow": "blueprintId", "loop": "body"}
"""For each node type that starts child executions, the parameter naming the child's graph."""
_PARENT_TYPES = tuple(CHILD_PARAMETER)  # node types whose id is part of child execution ids


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid id (see the module docstring), or None when it is."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long, over the limit of {MAX_ID_LENGTH}"
    for index, char in enumerate(value):
        what = _FORBIDDEN_CATEGORIES.get(unicodedata.category(char))
        if what is not None:
            what = "NUL" if char == "\x00" else what
            return f"contains {what} (U+{ord(char):04X}) at position {index}"
    return None


def _shown(value: str, limit: int = 60) -> str:
    """``repr`` of an id cut to ``limit`` characters (an invalid id may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _node_location(index: int, node: Node) -> str:
    return f"nodes[{index}] ({_shown(node.id) if id_problem(node.id) else node.id})"


def _edge_location(index: int, edge: Edge) -> str:
    key = edge.key
    return f"edges[{index}] ({key if len(key) <= 120 else _shown(key)})"


def _type_problems(node: Node, node_types: NodeTypeRegistry) -> list[str]:
    """The node type's own checks of the node's parameters; a check that breaks is a problem
    too (a parameter it did not expect), never an exception out of validation."""
    validate = getattr(node_types.get(node.type), "validate", None)
    if not callable(validate):
        return []
    try:
        return list(validate(node))
    except Exception as exc:
        return [f"params could not be checked by {node.type!r}: {type(exc).__name__}: {exc}"]


def _id_problems(node: Node) -> list[str]:
    problems: list[str] = []
    problem = id_problem(node.id)
    if problem is not None:
        problems.append(f"node id {problem}")
    elif node.type in _PARENT_TYPES and "/" in node.id:
        problems.append(
            f"the id of a {node.type} node is part of its child execution ids, "
            "so it must not contain '/'"
        )
    event = node.params.get("event") if node.type == "wait" else None
    problem = id_problem(event) if isinstance(event, str) else None
    if problem is not None:
        problems.append(f"params.event {problem}")
    return problems


def _node_problems(
    index: int,
    node: Node,
    ids: Collection[str],
    node_types: NodeTypeRegistry | None,
    graphs: Collection[str] | None,
) -> list[Problem]:
    where = _node_location(index, node)
    messages = _id_problems(node)
    if node_types is not None and node.type not in node_types:
        messages.append(f"unknown node type {_shown(node.type)}")
    elif node_types is not None:
        messages += _type_problems(node, node_types)
    if node.fallback is not None and node.fallback not in ids:
        messages.append(f"fallback {_shown(node.fallback)} is not a node of this graph")
    if node.fallback == node.id:
        messages.append("a node cannot be its own fallback")
    if node.retry.max_attempts < 1:
        messages.append("retry.max_attempts must be at least 1")
    if node.timeout is not None and not node.timeout > 0:
        messages.append("timeout must be positive")
    child = node.params.get(CHILD_PARAMETER.get(node.type, ""))
    if isinstance(child, str) and graphs is not None and child not in graphs:
        messages.append(f"{node.type} names unknown blueprint {_shown(child)}")
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
    seen: dict[str, int] = {}
    for index, edge in enumerate(edges):
        where = _edge_location(index, edge)
        for end, name in (("source", edge.source), ("target", edge.target)):
            if name not in ids:
                problems.append(Problem(where, f"{end} {_shown(name)} is not a node of this graph"))
        first = seen.setdefault(edge.key, index)
        if first != index and (edges[first].source, edges[first].target) == (
            edge.source,
            edge.target,
        ):
            problems.append(Problem(where, "duplicate edge"))
        elif first != index:
            problems.append(
                Problem(
                    where,
                    f"its key {_shown(edge.key)} is also the key of edges[{first}]: ids or "
                    "actions containing '->' or '#' make edge keys ambiguous",
                )
            )
        if edge.source == edge.target:
            problems.append(Problem(where, "an edge cannot point at its own source"))
        if edge.action is not None and (problem := id_problem(edge.action)) is not None:
            problems.append(Problem(where, f"action {problem}"))
        if edge.condition is not None:
            try:
                compile_condition(edge.condition)
            except ConditionError as exc:
                problems.append(Problem(where, f"invalid condition: {exc}"))
    return problems


def _successors(ids: Collection[str], edges: Sequence[Edge]) -> dict[str, list[str]]:
    successors: dict[str, list[str]] = {node: [] for node in ids}
    for edge in edges:
        successors[edge.source].append(edge.target)
    return successors


def _cycle_nodes(ids: Sequence[str], edges: Sequence[Edge]) -> list[str]:
    """Nodes left over by Kahn's algorithm: those on or behind a cycle (O(nodes + edges))."""
    in_degree = Counter(edge.target for edge in edges)
    successors = _successors(ids, edges)
    ready = [node for node in ids if in_degree[node] == 0]
    removed: set[str] = set()
    while ready:
        node = ready.pop()
        removed.add(node)
        for target in successors[node]:
            in_degree[target] -= 1
            if in_degree[target] == 0:
                ready.append(target)
    return [node for node in ids if node not in removed]


def _reachable(nodes: Sequence[Node], edges: Sequence[Edge]) -> set[str]:
    """Nodes reached from the start nodes (as ``Graph.start_nodes`` picks them: no incoming
    edge, and not fallback-only) through edges and fallbacks."""
    targets = {edge.target for edge in edges}
    sources = {edge.source for edge in edges}
    fallback_only = {node.fallback for node in nodes if node.fallback} - targets - sources
    frontier = [n.id for n in nodes if n.id not in targets and n.id not in fallback_only]
    successors = _successors({node.id for node in nodes}, edges)
    by_id = {node.id: node for node in nodes}
    seen: set[str] = set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        frontier += successors.get(current, [])
        fallback = by_id[current].fallback if current in by_id else None
        frontier += [fallback] if fallback else []
    return seen


def _structure_problems(nodes: Sequence[Node], edges: Sequence[Edge]) -> list[Problem]:
    ids = list(dict.fromkeys(node.id for node in nodes))
    known_ids = set(ids)
    known = [
        e for e in edges if e.source in known_ids and e.target in known_ids and e.source != e.target
    ]
    problems: list[Problem] = []
    cyclic = _cycle_nodes(ids, known)
    if cyclic:
        shown = ", ".join(node if len(node) <= 60 else _shown(node) for node in cyclic[:20])
        more = f" and {len(cyclic) - 20} more" if len(cyclic) > 20 else ""
        problems.append(Problem("graph", f"cycle through node(s) {shown}{more}"))
    reached = _reachable(nodes, known)
    for index, node in enumerate(nodes):
        if node.id not in reached:
            problems.append(Problem(_node_location(index, node), "unreachable from any start node"))
    return problems


def child_graph_ids(nodes: Iterable[Node]) -> set[str]:
    """The graphs ``nodes`` start as child executions (subflow and loop nodes)."""
    children = (node.params.get(CHILD_PARAMETER.get(node.type, "")) for node in nodes)
    return {child for child in children if isinstance(child, str)}


def reference_cycle(
    roots: Iterable[str], children_of: Callable[[str], Collection[str]]
) -> list[str] | None:
    """A cycle of graphs starting each other as children, reached from ``roots``, if any
    (``[a, b]`` for ``a -> b -> a``; ``[a]`` for a graph starting itself).

    ``children_of`` names the graphs a graph starts (none for a graph it does not know); it is
    asked once per graph reached. Iterative depth-first search: any depth is safe, and the cost
    is linear in the graphs and references reached.
    """
    children: dict[str, list[str]] = {}
    done: set[str] = set()
    for root in roots:
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            graph_id, index = stack.pop()
            if index == 0:
                if graph_id in path:
                    return path[path.index(graph_id) :]
                if graph_id in done:
                    continue
                children[graph_id] = sorted(children_of(graph_id))
                path.append(graph_id)
            if index < len(children[graph_id]):
                stack.append((graph_id, index + 1))
                stack.append((children[graph_id][index], 0))
            else:
                done.add(path.pop())
    return None


def reference_cycle_problems(cycle: Sequence[str]) -> list[Problem]:
    """The problem to report for ``cycle`` (as ``reference_cycle`` returns it)."""
    path = " -> ".join([*cycle, cycle[0]])
    return [
        Problem(
            "nodes",
            f"blueprint {path}: a subflow or loop that starts its own blueprint again "
            "would never end (use a loop node with a body blueprint to repeat work)",
        )
    ]


def graph_problems(
    nodes: Sequence[Node],
    edges: Sequence[Edge],
    *,
    node_types: NodeTypeRegistry | None = None,
    graphs: Collection[str] | None = None,
) -> list[Problem]:
    """Every problem of a definition (empty when valid).

    Checks: ids (``id_problem``), duplicate node ids, unknown node types and node-type
    parameter problems, edges to missing nodes, duplicate (or colliding) edges, edge actions,
    invalid conditions, cycles, nodes unreachable from every start node, subflows naming
    blueprints outside ``graphs``, quorums larger than the in-degree, fallbacks that do not
    exist. ``node_types``/``graphs`` ``None`` skip those checks. Linear in nodes + edges.
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
