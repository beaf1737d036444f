"""What a step sees of its execution: the state and outputs of the steps committed before it.

A step's view is the execution's inputs with the committed steps' state updates applied in
commit order, and every committed step's output. Commit order is a hybrid clock (``commit_seq``):
the wall clock in microseconds, but always after every commit the step saw, so a successor's
updates apply after its predecessors' even on a worker whose clock is behind, and parallel
branches apply in the order they committed, as in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestration import NodeResult, apply_updates

from .models import ExecutionRecord
from .persistence import VersionedStep

__all__ = ["Snapshot", "commit_seq", "execution_state"]


@dataclass(frozen=True)
class Snapshot:
    """The state and outputs a step runs with, and ``seq``: the newest commit they include."""

    state: Mapping[str, Any]
    outputs: Mapping[str, Any]
    seq: int = 0

    @classmethod
    def read(cls, record: ExecutionRecord, steps: Mapping[str, VersionedStep]) -> Snapshot:
        state, outputs = execution_state(record, steps)
        newest = max((v.record.result.seq for v in steps.values() if v.record.result), default=0)
        return cls(state, outputs, newest)

    def then(self, node_id: str, result: NodeResult, seq: int) -> Snapshot:
        """This view after ``node_id`` committed ``result`` as commit ``seq``: what a successor
        that only this step decides sees when it starts in the same process."""
        state = apply_updates(self.state, node_id, result)
        return Snapshot(state, {**self.outputs, node_id: result.output}, seq)


def commit_seq(now: float, after: int) -> int:
    """A step's place in the commit order: after ``after`` (the newest commit it saw)."""
    return max(int(now * 1_000_000), after + 1)


def execution_state(
    record: ExecutionRecord, steps: Mapping[str, VersionedStep]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fold the committed steps, in commit order, into (state, outputs by node)."""
    state: dict[str, Any] = dict(record.inputs)
    outputs: dict[str, Any] = {}
    committed = [
        v.record for v in steps.values() if v.record.status == "completed" and v.record.result
    ]
    for step in sorted(committed, key=lambda s: s.result.seq if s.result else 0):
        assert step.result is not None
        result = NodeResult(step.result.output, step.result.action, step.result.state_updates)
        state = dict(apply_updates(state, step.node_id, result))
        outputs[step.node_id] = step.result.output
    return state, outputs
