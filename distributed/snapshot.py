"""What a step sees of its execution: the state and outputs of the steps upstream of it.

A step's view is the execution's inputs with the state updates of its ancestors (the steps it
is downstream of along the edges, ``Graph.ancestors``) applied in commit order, and their
outputs. The same view whichever way the step reaches a worker: handed on, a successor sees
its predecessor's view and result (the predecessor's ancestors and itself: its own ancestors);
delivered from the queue, it reads its ancestors' records (``read_view``), one read of as many
keys, so the cost of a step does not grow with its parallel siblings. A parallel branch that
committed elsewhere is not part of the view: what it wrote reaches the steps downstream of it
(a join sees every branch). Commit order is a hybrid clock (``commit_seq``): the wall clock in
microseconds, but always after every commit the step saw, so a successor's updates apply after
its predecessors' even on a worker whose clock is behind, and parallel branches apply in the
order they committed, as in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from orchestration import Graph, NodeResult, apply_updates

from .models import ExecutionRecord
from .persistence import VersionedStep, WorkflowPersistence

__all__ = ["Snapshot", "commit_seq", "execution_state", "read_view"]


class Snapshot(NamedTuple):
    """The state and outputs a step runs with, and ``seq``: the newest commit they include."""

    state: Mapping[str, Any]
    outputs: Mapping[str, Any]
    seq: int = 0

    @classmethod
    def read(cls, record: ExecutionRecord, steps: Mapping[str, VersionedStep | None]) -> Snapshot:
        """The view the step records ``steps`` make (None: a step not started)."""
        found = {node: version for node, version in steps.items() if version is not None}
        state, outputs = execution_state(record, found)
        newest = max((v.record.result.seq for v in found.values() if v.record.result), default=0)
        return cls(state, outputs, newest)

    def then(self, node_id: str, result: NodeResult, seq: int) -> Snapshot:
        """This view after ``node_id`` committed ``result`` as commit ``seq``: what a successor
        that only this step decides sees when it starts in the same process."""
        state = apply_updates(self.state, node_id, result)
        return Snapshot(state, {**self.outputs, node_id: result.output}, seq)


async def read_view(
    persistence: WorkflowPersistence, record: ExecutionRecord, graph: Graph, node_id: str
) -> Snapshot:
    """The view of step ``node_id``: its ancestors' records, read at once (none for a start
    step, which sees the inputs alone)."""
    ancestors = sorted(graph.ancestors(node_id))
    steps = await persistence.steps_of(record.execution_id, ancestors) if ancestors else {}
    return Snapshot.read(record, steps)


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
