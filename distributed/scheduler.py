"""Advancing an execution after a step: the edge ledger, joins, skip propagation, completion.

Every function here is idempotent, so a worker that crashes half-way, or a duplicate delivery of a
finished step, re-runs it safely: edges resolve once (set_if_absent), join decisions are made once
(set_if_absent), the final status is first-writer-wins, and a re-enqueued task of a step that has
already run is dropped by the worker. The message that triggered the advance is acked only after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from orchestration import (
    Graph,
    JoinDecision,
    NodeResult,
    apply_updates,
    final_outputs,
    join_decision,
)

from .models import ExecutionRecord, FinalStatus, StepRecord, Task, TaskReason
from .persistence import VersionedStep, WorkflowPersistence
from .queue import TaskQueue

__all__ = ["Scheduler", "execution_state"]

log = logging.getLogger(__name__)


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


class Scheduler:
    """Decides what runs next; shared by the engine (start) and every worker (advance)."""

    def __init__(self, persistence: WorkflowPersistence, queue: TaskQueue) -> None:
        self.persistence = persistence
        self.queue = queue

    async def start(self, record: ExecutionRecord, graph: Graph) -> bool:
        """Record a new execution and enqueue its start nodes; False if the id exists."""
        starts = graph.start_nodes()
        if not await self.persistence.create_execution(record, starts):
            return False
        await self.enqueue(record.execution_id, starts)
        return True

    async def enqueue(
        self, eid: str, node_ids: list[str] | tuple[str, ...], reason: TaskReason = "scheduled"
    ) -> None:
        tasks = [Task(execution_id=eid, node_id=n, reason=reason) for n in node_ids]
        await self.queue.enqueue_many(tasks)

    async def advance(self, eid: str, graph: Graph, step: StepRecord) -> None:
        """Resolve a completed step's edges, fire or skip its successors, and check completion."""
        assert step.result is not None
        edges = {key: True for key in step.result.taken} | {
            key: False for key in step.result.skipped
        }
        await self.enqueue(eid, await self._resolve(eid, graph, edges))
        await self.check_completion(eid, graph)

    async def _resolve(self, eid: str, graph: Graph, edges: Mapping[str, bool]) -> list[str]:
        await self.persistence.resolve_edges(eid, edges)
        fired: list[str] = []
        by_key = {e.key: e for e in graph.edges}
        for target in dict.fromkeys(by_key[key].target for key in edges):
            decision = await self._decide(eid, graph, target)
            if decision is JoinDecision.FIRE:
                fired.append(target)
            elif decision is JoinDecision.SKIP:
                fired.extend(await self._skip(eid, graph, target))
        return fired

    async def _decide(self, eid: str, graph: Graph, node_id: str) -> JoinDecision:
        incoming = graph.incoming(node_id)
        resolved = await self.persistence.edge_states(eid, [e.key for e in incoming])
        decision = join_decision(graph.nodes[node_id], incoming, resolved)
        if decision is JoinDecision.WAIT:
            return decision
        fire = await self.persistence.decide_join(eid, node_id, decision is JoinDecision.FIRE)
        return JoinDecision.FIRE if fire else JoinDecision.SKIP

    async def _skip(self, eid: str, graph: Graph, node_id: str) -> list[str]:
        """Dead-path elimination: the node is skipped and so is every edge out of it."""
        skipped = StepRecord(node_id=node_id, status="skipped", finished_at=time.time())
        await self.persistence.swap_step(eid, None, skipped)
        return await self._resolve(eid, graph, {e.key: False for e in graph.outgoing(node_id)})

    async def check_completion(self, eid: str, graph: Graph) -> None:
        """Complete the execution once every node is completed or skipped."""
        steps = await self.persistence.steps(eid)
        done = {n for n, v in steps.items() if v.record.status in ("completed", "skipped")}
        if not set(graph.nodes) - graph.fallback_only_nodes() <= done:
            return
        record = await self.persistence.record(eid)
        if record is None:
            return
        state, outputs = execution_state(record, steps)
        completed = [n for n, v in steps.items() if v.record.status == "completed"]
        result = final_outputs(graph, outputs, state, completed)
        await self.finalize(eid, FinalStatus(status="completed", outputs=result))

    async def reschedule(self, eid: str, reason: TaskReason) -> list[str]:
        """Enqueue every fired step again except skipped ones (resume, recovery). Workers drop
        what already ran and finish the advance of completed steps a crash interrupted."""
        steps = await self.persistence.steps(eid)
        fired = await self.persistence.fired_nodes(eid)
        ready = [n for n in fired if n not in steps or steps[n].record.status != "skipped"]
        await self.enqueue(eid, ready, reason)
        return ready

    async def wake_if_child_final(self, eid: str, step: StepRecord) -> None:
        """Enqueue a waiting subflow step whose child execution has already finished."""
        if step.child_id is not None and await self.persistence.final(step.child_id) is not None:
            await self.enqueue(eid, [step.node_id], "child-finished")

    async def finalize(self, eid: str, final: FinalStatus) -> tuple[FinalStatus, bool]:
        """Set the sticky final status (first writer wins); return the status in force and
        whether this call set it. The winner wakes the parent of a subflow."""
        current, won = await self.persistence.set_final(eid, final)
        if won:
            log.info("execution %s %s", eid, final.status, extra={"execution_id": eid})
            record = await self.persistence.record(eid)
            if record is not None and record.parent is not None:
                parent = record.parent
                await self.enqueue(parent.execution_id, [parent.node_id], "child-finished")
        return current, won
