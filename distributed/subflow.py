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

from orchestration import Graph, NodeContext, SubflowFailed
from orchestration.subflow import child_execution_id, child_inputs, child_result

from .context import RuntimeContext
from .lease import StepLease
from .models import ExecutionRecord, ParentRef, StepRecord
from .persistence import WorkflowPersistence
from .scheduler import execution_state
from .steps import StepOutcome

__all__ = ["child_outcome", "start_child"]


async def start_child(
    context: RuntimeContext, parent: ExecutionRecord, held: StepLease, ctx: NodeContext
) -> None:
    """Start the child execution, then park the parent step as waiting."""
    node = ctx.node
    blueprint_id = str(node.params["blueprintId"])
    graph = context.engine.graph(blueprint_id)
    child_id = child_execution_id(parent.execution_id, node.id)
    child = ExecutionRecord(
        execution_id=child_id,
        workflow_id=blueprint_id,
        graph_version=graph.version,
        inputs=child_inputs(node, ctx.state, ctx.outputs),
        parent=ParentRef(execution_id=parent.execution_id, node_id=node.id),
    )
    await context.scheduler.start(child, graph)
    await held.swap(held.record.wait(context.clock(), child_id=child_id))
    await context.scheduler.wake_if_ready(parent, held.record)


@dataclass(frozen=True)
class _Child:
    outputs: Mapping[str, Any]
    state: Mapping[str, Any]


async def child_outcome(
    persistence: WorkflowPersistence, graph: Graph, step: StepRecord
) -> StepOutcome | None:
    """The parent step's outcome once its child is final; None while the child runs."""
    if step.child_id is None:
        return None
    final = await persistence.final(step.child_id)
    if final is None:
        return None
    if final.status != "completed":
        return StepOutcome(error=SubflowFailed(step.node_id, final.status, final.error))
    record = await persistence.record(step.child_id)
    assert record is not None
    state, _ = execution_state(record, await persistence.steps(step.child_id))
    node = graph.nodes[step.node_id]
    return StepOutcome(child_result(node, _Child(final.outputs, state)))
