"""Subflow mapping rules (DESIGN §4), shared by both engines.

A ``subflow`` node has ``params``: ``blueprintId`` (the child graph), ``inputs``
``{childKey: parentSource}`` (resolved like template inputs; missing ones are left out of the
child's inputs) and ``outputs`` ``{parentKey: childKey}``. Each ``childKey`` is read from the
child's final state, else from its final outputs. Each ``parentKey`` is set in the parent
state; the node's own output is the single mapped value, a dict of them when several, and
the child's final outputs when there is no mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from orchestration.graph import Node
from orchestration.jsonvalue import JSON
from orchestration.routing import NodeResult
from orchestration.state import resolve_inputs

__all__ = ["ChildOutcome", "child_execution_id", "child_inputs", "child_result"]


class ChildOutcome(Protocol):
    """What a finished child execution offers: final ``outputs`` and final ``state``."""

    @property
    def outputs(self) -> Mapping[str, JSON]: ...

    @property
    def state(self) -> Mapping[str, JSON]: ...


def child_execution_id(execution_id: str, node_id: str) -> str:
    """The id of the child execution that subflow node ``node_id`` starts (both engines)."""
    return f"{execution_id}.{node_id}"


def child_inputs(
    node: Node, state: Mapping[str, JSON], outputs: Mapping[str, JSON]
) -> dict[str, JSON]:
    """The child execution's initial inputs for subflow node ``node``."""
    resolved = resolve_inputs(node.params, state, outputs)
    return {key: value for key, value in resolved.items() if value is not None}


def _child_value(child: ChildOutcome, key: str) -> JSON:
    if key in child.state:
        return child.state[key]
    return child.outputs.get(key)


def child_result(node: Node, child: ChildOutcome) -> NodeResult:
    """The subflow node's result once its child execution completed."""
    mapping = node.params.get("outputs") or {}
    if not isinstance(mapping, Mapping) or not mapping:
        return NodeResult(output=dict(child.outputs))
    updates = {str(parent): _child_value(child, str(key)) for parent, key in mapping.items()}
    output = next(iter(updates.values())) if len(updates) == 1 else dict(updates)
    return NodeResult(output=output, state_updates=updates)
