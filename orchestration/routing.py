"""Routing and joins: the pure rules both engines apply (DESIGN §3).

``route`` decides which outgoing edges of a finished node are taken and which are skipped;
``join_decision`` decides, from the edge ledger of a node's incoming edges, whether it runs
(FIRE), can never run (SKIP) or must wait (WAIT).

Edge conditions see these names (first match wins):

* ``output`` — the finished node's output;
* ``action`` — the finished node's action (``null`` when none);
* ``state``  — the whole execution state after the node's updates were applied;
* any other name — that key of the state (``score > 0.5`` reads ``state["score"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from orchestration.conditions import compile_condition
from orchestration.errors import UnroutableAction
from orchestration.graph import Edge, Graph, Node
from orchestration.jsonvalue import JSON

__all__ = [
    "JoinDecision",
    "NodeResult",
    "Routing",
    "condition_names",
    "join_decision",
    "join_decision_counted",
    "route",
]


@dataclass(frozen=True)
class NodeResult:
    """What one node produced: its output, an optional routing action and state updates."""

    output: JSON = None
    action: str | None = None
    state_updates: Mapping[str, JSON] = field(default_factory=dict, hash=False)


class Routing(NamedTuple):
    """The outgoing edges of a node split into taken and skipped (together: all of them)."""

    taken: tuple[Edge, ...]
    skipped: tuple[Edge, ...]


def condition_names(result: NodeResult, state: Mapping[str, JSON]) -> dict[str, JSON]:
    """The variables an edge condition sees (documented in the module docstring)."""
    names: dict[str, JSON] = dict(state)
    names.update({"output": result.output, "action": result.action, "state": dict(state)})
    return names


def _candidates(edges: Sequence[Edge], action: str | None) -> list[Edge] | None:
    """Edges selected by ``action``; ``None`` when the action cannot be routed."""
    matching = [e for e in edges if e.action is not None and e.action == action]
    if matching:
        return matching
    default = [e for e in edges if e.action is None]
    has_action_edges = len(default) < len(edges)
    if not default and has_action_edges:
        return None
    return default


def route(graph: Graph, node_id: str, result: NodeResult, state: Mapping[str, JSON]) -> Routing:
    """Split the outgoing edges of ``node_id`` into taken and skipped.

    Edges whose ``action`` equals ``result.action`` are the candidates; when none matches, the
    edges without an action are (the default route). Each candidate is taken when its
    condition (if any) holds. Raises ``UnroutableAction`` when the node has action edges,
    none matches and there is no default route. ``state`` is the state after the node's
    updates.
    """
    edges = graph.outgoing(node_id)
    candidates = _candidates(edges, result.action)
    if candidates is None:
        raise UnroutableAction(node_id, result.action)
    conditional = any(e.condition is not None for e in candidates)
    names = condition_names(result, state) if conditional else {}  # two copies of the state
    taken = tuple(
        e
        for e in candidates
        if e.condition is None or compile_condition(e.condition).evaluate(names)
    )
    chosen = {id(e) for e in taken}  # by identity: ``in taken`` compared every pair
    skipped = tuple(e for e in edges if id(e) not in chosen)
    return Routing(taken=taken, skipped=skipped)


class JoinDecision(Enum):
    """Whether a node waits for more arrivals, runs, or is skipped."""

    WAIT = "wait"
    FIRE = "fire"
    SKIP = "skip"


def _required(node: Node, incoming_count: int) -> int:
    """How many taken incoming edges make the node fire (``all`` is handled separately)."""
    if node.join.kind == "quorum":
        return node.join.quorum if node.join.quorum is not None else incoming_count
    return 1


def join_decision(
    node: Node, incoming: Sequence[Edge], resolved: Mapping[str, bool]
) -> JoinDecision:
    """Decide from the edge ledger ``resolved`` (edge key -> taken?) whether ``node`` runs.

    * ``all``: FIRE once every incoming edge is resolved and at least one is taken; SKIP
      once every one is resolved and none is taken.
    * ``any``: FIRE as soon as one is taken; SKIP when all are skipped.
    * ``quorum`` (k): FIRE once k are taken; SKIP once k can no longer be reached.

    A node with no incoming edge always fires. The decision is monotonic: once FIRE or
    SKIP, further arrivals never change it (callers still fire a node only once).
    """
    states = [resolved.get(edge.key) for edge in incoming]
    arrived = sum(1 for s in states if s is not None)
    return join_decision_counted(node, len(incoming), arrived, states.count(True))


def join_decision_counted(node: Node, fan_in: int, arrived: int, taken: int) -> JoinDecision:
    """``join_decision`` from counts: of the ``fan_in`` edges into ``node``, ``arrived`` are
    resolved and ``taken`` of those taken (what a join's counters hold)."""
    if not fan_in:
        return JoinDecision.FIRE
    pending = fan_in - arrived
    if node.join.kind == "all":
        if pending:
            return JoinDecision.WAIT
        return JoinDecision.FIRE if taken else JoinDecision.SKIP
    required = max(_required(node, fan_in), 1)
    if taken >= required:
        return JoinDecision.FIRE
    if taken + pending < required:
        return JoinDecision.SKIP
    return JoinDecision.WAIT
