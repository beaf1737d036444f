"""Loop nodes in distributed runs: one durable child execution per iteration.

The loop step starts iteration 1 (``{execution}.{node}.1``) and parks as ``waiting`` on it,
holding no worker slot. When an iteration's child is final, the worker woken by it folds the
child into the loop (``orchestration.loops.next_iteration``) and either starts the next
iteration (the step record's ``iterate`` transition: the new child, the carried values) or
completes the step. Iteration ids are deterministic, so a step re-run after a crash -- or a loop
recovered after a failed iteration -- re-attaches to the iterations that already ran instead
of running them again. A paused execution starts no next iteration until it is resumed.
"""

from __future__ import annotations

import contextlib

from orchestration import Graph, NodeContext
from orchestration.loops import LoopSpec, iteration_id, next_iteration

from .context import RuntimeContext
from .errors import LeaseLost
from .lease import StepLease
from .models import ExecutionRecord
from .persistence import VersionedStep
from .snapshot import read_view
from .steps import StepOutcome
from .subflow import finished_child, start_child_execution

__all__ = ["loop_outcome", "start_loop"]


async def start_loop(
    context: RuntimeContext, record: ExecutionRecord, held: StepLease, ctx: NodeContext
) -> None:
    """Start iteration 1, then park the loop step on it."""
    node = ctx.node
    child_id = iteration_id(record.execution_id, node.id, 1)
    await start_child_execution(context, record, node, child_id, LoopSpec.of(node).body, ctx)
    await held.swap(held.record.wait(context.clock(), child_id=child_id, iteration=1))
    await context.scheduler.wake_if_ready(record, held.record)


async def loop_outcome(
    context: RuntimeContext,
    record: ExecutionRecord,
    graph: Graph,
    current: VersionedStep,
    *,
    paused: bool,
    lease_ttl: float,
) -> StepOutcome | None:
    """The loop step's outcome once it is done; None while an iteration runs (or the next
    one was just started, or the execution is paused)."""
    step, eid, persistence = current.record, record.execution_id, context.persistence
    child = None if step.child_id is None else await finished_child(persistence, step.child_id)
    if child is None:
        return None
    node = graph.nodes[step.node_id]
    failed = child.failure(node.id)
    if failed is not None:
        return failed
    view = await read_view(persistence, record, graph, step.node_id)
    state, outputs = view.state, view.outputs
    iteration = next_iteration(node, state, step.carried, child, step.iteration)
    if not iteration.again:
        return StepOutcome(iteration.result)
    if paused:
        return None
    ctx = NodeContext(
        execution_id=eid, node=node, state={**state, **iteration.carried}, outputs=outputs
    )
    next_id = iteration_id(eid, node.id, step.iteration + 1)
    await start_child_execution(context, record, node, next_id, LoopSpec.of(node).body, ctx)
    held = StepLease(persistence, eid, current, lease_ttl)
    with contextlib.suppress(LeaseLost):  # another worker moved the loop on first
        await held.swap(step.iterate(next_id, iteration.carried, context.clock()))
        await context.scheduler.wake_if_ready(record, held.record)
    return None
