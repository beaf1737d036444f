"""The graph model shared by code workflows, JSON blueprints and both engines.

A ``Graph`` is a DAG of ``Node``s joined by ``Edge``s. Nodes carry their execution policies
(retry, timeout, fallback, join); the behaviour of a node comes from its ``type``, looked up
in a ``NodeTypeRegistry`` at run time. A graph holds no callables, so it can be hashed
(``Graph.version``) and described identically on every machine.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from orchestration.errors import NonRetryableError
from orchestration.jsonvalue import JSON, canonical_json

__all__ = ["Edge", "Graph", "JoinPolicy", "Node", "RetryPolicy"]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times a step is attempted and how long to wait between attempts.

    ``max_attempts`` counts every attempt (1 = no retry). The delay before attempt ``n + 1``
    is ``initial_interval * backoff_coefficient ** (n - 1)``, capped at ``max_interval``, then
    spread by ``± jitter`` (a fraction, 0.1 = 10 %). Errors whose class name is listed in
    ``non_retryable_error_types``, and every ``NonRetryableError``, are never retried.

    The same policy drives both engines: the local engine retries in process through
    ``orchestration.retry.retry_with_policy``; the distributed worker asks ``should_retry`` and
    schedules the next attempt ``delay_for`` seconds later. Fields are checked on construction
    (``ValueError``): ``max_attempts >= 1``, intervals ``>= 0``, ``backoff_coefficient >= 1``,
    ``0 <= jitter <= 1``.
    """

    max_attempts: int = 1
    initial_interval: float = 1.0
    backoff_coefficient: float = 2.0
    max_interval: float = 60.0
    jitter: float = 0.0
    non_retryable_error_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.non_retryable_error_types, str):
            raise TypeError("RetryPolicy.non_retryable_error_types takes class names, not a str")
        object.__setattr__(self, "non_retryable_error_types", tuple(self.non_retryable_error_types))
        problems = _retry_policy_problems(self)
        if problems:
            raise ValueError(f"invalid RetryPolicy: {'; '.join(problems)}")

    def delay_for(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``, ``attempt`` attempts being done."""
        base = self.initial_interval * self.backoff_coefficient ** max(attempt - 1, 0)
        delay = min(base, self.max_interval)
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(delay, 0.0)

    def should_retry(self, attempt: int, error: BaseException) -> bool:
        """Whether a step that failed its ``attempt``-th attempt with ``error`` runs again."""
        if attempt >= self.max_attempts or not isinstance(error, Exception):
            return False
        if isinstance(error, NonRetryableError):
            return False
        return type(error).__name__ not in self.non_retryable_error_types

    def to_dict(self) -> dict[str, JSON]:
        """The policy as plain JSON."""
        return {
            "max_attempts": self.max_attempts,
            "initial_interval": self.initial_interval,
            "backoff_coefficient": self.backoff_coefficient,
            "max_interval": self.max_interval,
            "jitter": self.jitter,
            "non_retryable_error_types": list(self.non_retryable_error_types),
        }


def _retry_policy_problems(policy: RetryPolicy) -> list[str]:
    """What is wrong with ``policy``'s numbers, one phrase each (a NaN fails every check)."""
    checks = (
        ("max_attempts", policy.max_attempts >= 1, "at least 1"),
        ("initial_interval", policy.initial_interval >= 0, ">= 0 seconds"),
        ("max_interval", policy.max_interval >= 0, ">= 0 seconds"),
        ("backoff_coefficient", policy.backoff_coefficient >= 1, ">= 1"),
        ("jitter", 0 <= policy.jitter <= 1, "a fraction between 0 and 1"),
    )
    return [
        f"{name} must be {rule}, got {getattr(policy, name)!r}"
        for name, ok, rule in checks
        if not ok
    ]


@dataclass(frozen=True)
class JoinPolicy:
    """When a node with several incoming edges runs (see ``routing.join_decision``)."""

    kind: Literal["all", "any", "quorum"] = "all"
    quorum: int | None = None

    def to_dict(self) -> dict[str, JSON]:
        """The policy as plain JSON."""
        return {"kind": self.kind, "quorum": self.quorum}


@dataclass(frozen=True)
class Edge:
    """A directed edge; ``action`` selects it by the source's action, ``condition`` guards it."""

    source: str
    target: str
    action: str | None = None
    condition: str | None = None

    @cached_property
    def key(self) -> str:
        """Stable unique id of the edge within its graph (usable as a KV key part)."""
        base = f"{self.source}->{self.target}"
        return f"{base}#{self.action}" if self.action is not None else base

    def to_dict(self) -> dict[str, JSON]:
        """The edge as plain JSON."""
        return {
            "source": self.source,
            "target": self.target,
            "action": self.action,
            "condition": self.condition,
        }


@dataclass(frozen=True)
class Node:
    """One step of a graph. ``params`` is JSON (treat it as read-only); ``timeout`` in seconds."""

    id: str
    type: str
    params: Mapping[str, JSON] = field(default_factory=dict, hash=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    fallback: str | None = None
    join: JoinPolicy = field(default_factory=JoinPolicy)

    def to_dict(self) -> dict[str, JSON]:
        """The node as plain JSON."""
        return {
            "id": self.id,
            "type": self.type,
            "params": dict(self.params),
            "retry": self.retry.to_dict(),
            "timeout": self.timeout,
            "fallback": self.fallback,
            "join": self.join.to_dict(),
        }


class Graph:
    """An immutable workflow graph with adjacency indexes and a content ``version``.

    Build graphs through ``Engine.register_workflow``/``register_blueprint`` (which validate);
    the constructor itself does not validate.
    """

    def __init__(
        self,
        id: str,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        *,
        name: str = "",
        description: str = "",
    ) -> None:
        self.id = id
        self.name = name or id
        self.description = description
        self.nodes: Mapping[str, Node] = {node.id: node for node in nodes}
        self.edges: tuple[Edge, ...] = tuple(edges)
        self._incoming = _index(self.edges, by_target=True)
        self._outgoing = _index(self.edges, by_target=False)
        self._ancestors: dict[str, frozenset[str]] = {}
        self.version = hashlib.sha256(canonical_json(self.to_dict()).encode()).hexdigest()[:16]

    def incoming(self, node_id: str) -> tuple[Edge, ...]:
        """Edges whose target is ``node_id``, in definition order."""
        return self._incoming.get(node_id, ())

    def outgoing(self, node_id: str) -> tuple[Edge, ...]:
        """Edges whose source is ``node_id``, in definition order."""
        return self._outgoing.get(node_id, ())

    def ancestors(self, node_id: str) -> frozenset[str]:
        """Every node ``node_id`` is downstream of: its sources, theirs, and so on (the steps
        that may have completed before it is decided, along the edges). Computed once a node."""
        found = self._ancestors.get(node_id)
        if found is None:
            seen: set[str] = set()
            frontier = [edge.source for edge in self.incoming(node_id)]
            while frontier:
                source = frontier.pop()
                if source not in seen:
                    seen.add(source)
                    frontier.extend(edge.source for edge in self.incoming(source))
            found = self._ancestors[node_id] = frozenset(seen)
        return found

    def fallback_only_nodes(self) -> frozenset[str]:
        """Nodes that are some node's fallback and have no edge at all: they run only in place
        of a failed primary (whose outgoing edges they take), never on their own. A fallback
        with an edge is a node of the graph as well: with outgoing edges only, it is a start
        node (otherwise its edges would never be resolved and what follows never decided)."""
        fallbacks = {node.fallback for node in self.nodes.values() if node.fallback}
        return frozenset(
            n
            for n in fallbacks
            if n in self.nodes and not self.incoming(n) and not self.outgoing(n)
        )

    def start_nodes(self) -> tuple[str, ...]:
        """Nodes with no incoming edge (fallback-only nodes excluded), in definition order."""
        skip = self.fallback_only_nodes()
        return tuple(n for n in self.nodes if not self.incoming(n) and n not in skip)

    def terminal_nodes(self) -> tuple[str, ...]:
        """Nodes with no outgoing edge (fallback-only nodes excluded), in definition order."""
        skip = self.fallback_only_nodes()
        return tuple(n for n in self.nodes if not self.outgoing(n) and n not in skip)

    def to_dict(self) -> dict[str, JSON]:
        """The whole definition as plain JSON (what ``version`` hashes)."""
        return {
            "id": self.id,
            "nodes": [node.to_dict() for node in self.nodes.values()],
            "edges": [edge.to_dict() for edge in self.edges],
        }

    def __repr__(self) -> str:
        return f"Graph(id={self.id!r}, version={self.version!r}, nodes={len(self.nodes)})"


def _index(edges: Iterable[Edge], *, by_target: bool) -> dict[str, tuple[Edge, ...]]:
    index: dict[str, list[Edge]] = {}
    for edge in edges:
        index.setdefault(edge.target if by_target else edge.source, []).append(edge)
    return {key: tuple(value) for key, value in index.items()}
