"""Advancing an execution after a step: the edge ledger, joins, skip propagation, completion.

The scheduling invariant (DESIGN §3): once a step's result is committed, its successors get
scheduled whatever dies afterwards. Every scheduled step is on the **agenda** (see
``distributed.keys``) from before its task is enqueued until it is finished *and* advanced; the
agenda entry of a finished step is removed only after its successors are on the agenda
themselves. Whatever is interrupted -- a crash after the commit, a lost message, a duplicate
acked by another worker -- the recovery sweep finds the entry and finishes the advance.

Every function here is idempotent, so a re-run after a crash changes nothing twice: edges resolve
once (set_if_absent), join decisions are made once (set_if_absent), the final status is
first-writer-wins, and a re-enqueued task of a step that has already run is dropped by the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from orchestration import (
    Graph,
    JoinDecision,
    NodeResult,
    apply_updates,
    final_outputs,
    join_decision,
)

from .failpoints import failpoint
from .hooks import ExecutionFinished, ExecutionSubmitted
from .models import ExecutionRecord, FinalStatus, StepRecord, Task, TaskReason
from .persistence import VersionedStep

if TYPE_CHECKING:
    from .context import RuntimeContext

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
    """Decides what runs next; shared by the engine (start), workers (advance) and recovery."""

    def __init__(self, context: RuntimeContext) -> None:
        self.context = context
        self.persistence = context.persistence
        self.queue = context.queue

    async def start(self, record: ExecutionRecord, graph: Graph) -> bool:
        """Record a new execution with its start nodes on the agenda, then enqueue them;
        False if the id exists."""
        starts = graph.start_nodes()
        if not await self.persistence.create_execution(record, starts):
            return False
        await self.enqueue(record, starts)
        event = ExecutionSubmitted(
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            generation=record.generation,
        )
        self.context.hooks.execution_submitted(event)
        return True

    async def enqueue(
        self, record: ExecutionRecord, node_ids: Sequence[str], reason: TaskReason = "scheduled"
    ) -> None:
        """Enqueue tasks of steps that are already on the agenda, and start them at once on
        this process's workers that have a free slot (eager dispatch)."""
        eid, generation = record.execution_id, record.generation
        tasks = [
            Task(execution_id=eid, node_id=n, reason=reason, generation=generation)
            for n in node_ids
        ]
        await self.queue.enqueue_many(tasks)
        self.context.dispatch.offer(tasks)

    async def advance(self, record: ExecutionRecord, graph: Graph, step: StepRecord) -> None:
        """Resolve a completed step's edges, schedule or skip its successors, check completion,
        and only then take the step off the agenda."""
        assert step.result is not None
        eid = record.execution_id
        edges = {key: True for key in step.result.taken} | {
            key: False for key in step.result.skipped
        }
        fired = await self._resolve(eid, graph, edges)
        await self.persistence.schedule(eid, fired, self.context.clock())
        await self.enqueue(record, fired)
        failpoint("after-schedule")
        await self.check_completion(record, graph)
        await self.persistence.unschedule(eid, step.node_id)

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
        skipped = StepRecord(node_id=node_id).skip(self.context.clock())
        await self.persistence.swap_step(eid, None, skipped)
        return await self._resolve(eid, graph, {e.key: False for e in graph.outgoing(node_id)})

    async def check_completion(self, record: ExecutionRecord, graph: Graph) -> None:
        """Complete the execution once every node is completed or skipped."""
        eid = record.execution_id
        steps = await self.persistence.steps(eid)
        done = {n for n, v in steps.items() if v.record.status in ("completed", "skipped")}
        if not set(graph.nodes) - graph.fallback_only_nodes() <= done:
            return
        state, outputs = execution_state(record, steps)
        completed = [n for n, v in steps.items() if v.record.status == "completed"]
        result = final_outputs(graph, outputs, state, completed)
        await self.finalize(record, FinalStatus.completed(result))

    async def reschedule(self, record: ExecutionRecord, reason: TaskReason) -> list[str]:
        """Enqueue every step on the agenda again (resume, restart). Workers drop what already
        ran and finish the advance of completed steps a crash interrupted."""
        ready = [entry.node_id async for entry in self.persistence.agenda(record.execution_id)]
        await self.enqueue(record, ready, reason)
        return ready

    async def wake_if_ready(self, record: ExecutionRecord, step: StepRecord) -> bool:
        """Enqueue a waiting step that can go on: its subflow's child is final, or its signal
        arrived, or its wait timed out. True if it was enqueued."""
        if step.child_id is not None:
            if await self.persistence.final(step.child_id) is None:
                return False
            await self.enqueue(record, [step.node_id], "child-finished")
            return True
        if step.awaiting is None:
            return False
        timed_out = step.not_before is not None and step.not_before <= self.context.clock()
        if (
            not timed_out
            and await self.persistence.signal(record.execution_id, step.awaiting) is None
        ):
            return False
        await self.enqueue(record, [step.node_id], "signalled")
        return True

    async def finalize(
        self, record: ExecutionRecord, final: FinalStatus
    ) -> tuple[FinalStatus, bool]:
        """Set the sticky final status (first writer wins); return the status in force and
        whether this call set it. The winner tells the hooks and wakes a subflow's parent."""
        final = final.model_copy(update={"generation": record.generation})
        eid = record.execution_id
        current, won = await self.persistence.set_final(eid, final)
        if not won:
            return current, False
        log.info("execution %s %s", eid, final.status, extra={"execution_id": eid})
        self.context.hooks.execution_final(_finished(record, final))
        if record.parent is not None:
            parent = await self.persistence.record(record.parent.execution_id)
            if parent is not None:
                await self.enqueue(parent, [record.parent.node_id], "child-finished")
        return current, True


def _finished(record: ExecutionRecord, final: FinalStatus) -> ExecutionFinished:
    started = record.generation_started_at or record.created_at
    return ExecutionFinished(
        execution_id=record.execution_id,
        workflow_id=record.workflow_id,
        status=final.status,
        error=final.error,
        failed_step=final.failed_step,
        generation=record.generation,
        duration=max(final.finished_at - started, 0.0),
    )
