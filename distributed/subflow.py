"""Subflow nodes in distributed runs: the child is an execution of its own.

The subflow step starts the child (id ``{parent}.{node}``; starting twice changes nothing), then
parks as ``waiting`` without holding a worker slot. When the child reaches a final status, the
scheduler wakes the parent step with a ``child-finished`` task, which maps the child's outputs
into the parent. The recovery sweep also wakes waiting steps whose child is final, in case that task
was lost in a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestration import Graph, Node, NodeContext, SubflowFailed
from orchestration.subflow import child_execution_id, child_inputs, child_result

from .context import RuntimeContext
from .lease import StepLease
from .models import ExecutionRecord, FinalStatus, ParentRef, StepRecord
from .persistence import WorkflowPersistence
from .snapshot import execution_state
from .steps import StepOutcome

__all__ = ["child_outcome", "finished_child", "start_child", "start_child_execution"]


async def start_child(
    context: RuntimeContext, parent: ExecutionRecord, held: StepLease, ctx: NodeContext
) -> None:
    """Start the child execution, then park the parent step as waiting."""
    node = ctx.node
    child_id = child_execution_id(parent.execution_id, node.id)
    workflow = str(node.params["blueprintId"])
    await start_child_execution(context, parent, node, child_id, workflow, ctx)
    await held.swap(held.record.wait(context.clock(), child_id=child_id))
    await context.scheduler.wake_if_ready(parent, held.record)


async def start_child_execution(
    context: RuntimeContext,
    parent: ExecutionRecord,
    node: Node,
    child_id: str,
    workflow: str,
    ctx: NodeContext,
) -> None:
    """Start ``workflow`` as child ``child_id`` of ``node``, its inputs mapped from ``ctx``
    (starting it twice changes nothing)."""
    graph = context.engine.graph(workflow)
    child = ExecutionRecord(
        execution_id=child_id,
        workflow_id=workflow,
        graph_version=graph.version,
        inputs=child_inputs(node, ctx.state, ctx.outputs),
        parent=ParentRef(execution_id=parent.execution_id, node_id=node.id),
    )
    await context.scheduler.start(child, graph)


@dataclass(frozen=True)
class FinishedChild:
    """A child execution that reached a final status: its final ``outputs`` and ``state``."""

    final: FinalStatus
    outputs: Mapping[str, Any]
    state: Mapping[str, Any]

    def failure(self, node_id: str) -> StepOutcome | None:
        """The parent step's failure when the child did not complete, else None."""
        final = self.final
        if final.status == "completed":
            return None
        return StepOutcome(error=SubflowFailed(node_id, final.status, final.error))


async def finished_child(persistence: WorkflowPersistence, child_id: str) -> FinishedChild | None:
    """The child execution once it is final; None while it runs."""
    final = await persistence.final(child_id)
    if final is None:
        return None
    record = await persistence.record(child_id)
    state: Mapping[str, Any] = {}
    if record is not None:
        state, _ = execution_state(record, await persistence.steps(child_id))
    return FinishedChild(final, final.outputs, state)


async def child_outcome(
    persistence: WorkflowPersistence, graph: Graph, step: StepRecord
) -> StepOutcome | None:
    """The parent step's outcome once its child is final; None while the child runs."""
    child = None if step.child_id is None else await finished_child(persistence, step.child_id)
    if child is None:
        return None
    node = graph.nodes[step.node_id]
    return child.failure(node.id) or StepOutcome(child_result(node, child))
