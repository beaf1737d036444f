"""Recording a step's outcome: completed (then advance), retry later, fall back, or failed.

Each outcome is one fenced compare-and-set of the step record (``StepLease.swap``), so a worker
whose lease moved cannot record anything, and a result is recorded once (first writer wins). A
retry or a fallback is a pending step: due at once, it is enqueued here; delayed, the recovery
sweep enqueues it when due (it is on the agenda), so it holds no worker slot while it waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from orchestration import Graph, JoinDecision, NodeResult, UnroutableAction, route
from orchestration.attempts import FallBack, RetryLater
from orchestration.routing import join_decision_counted

from .context import RuntimeContext
from .dispatch import (
    Carried,
    HandOn,
    handed_on_task,
    leased_first_attempt,
    release_slots,
    take_leased,
)
from .failpoints import failpoint
from .hooks import RetryScheduled, StepOutcomeName
from .lease import StepLease
from .models import ExecutionRecord, FinalStatus, TaskResult
from .persistence import Finish, JoinCount
from .snapshot import Snapshot, commit_seq
from .steps import StepOutcome

__all__ = ["StepCommitter"]

log = logging.getLogger(__name__)


class StepCommitter:
    """Turns a ``StepOutcome`` into the step's next record and the execution's next move."""

    def __init__(self, context: RuntimeContext) -> None:
        self.context = context
        self.scheduler = context.scheduler
        self.persistence = context.persistence

    async def commit(
        self,
        record: ExecutionRecord,
        graph: Graph,
        held: StepLease,
        outcome: StepOutcome,
        snapshot: Snapshot,
        *,
        recorded: Callable[[StepOutcomeName], None] = lambda _: None,
        hand_on: HandOn | None = None,
    ) -> StepOutcomeName:
        """Record the outcome of a step that ran with ``snapshot``; return its name.
        ``recorded(name)`` is called as soon as the step's record is written, before the
        execution moves on (so observers see a step end before its successors start).
        ``hand_on``: the slot takes the first successor the step alone decides, leased to it
        in the same commit (``dispatch.HandOn``). Raises ``LeaseLost`` when the step moved."""
        if outcome.result is not None:
            result = outcome.result
            return await self._complete(record, graph, held, result, snapshot, recorded, hand_on)
        decision, error = outcome.decision, outcome.describe_error()
        if isinstance(decision, RetryLater):
            await self._retry(record, held, error, decision.delay)
            recorded("retry")
            if decision.delay <= 0:
                await self.scheduler.enqueue(record, [held.record.node_id], "retry")
            return "retry"
        if isinstance(decision, FallBack):
            await held.swap(held.record.fall_back(error, decision.node_id, self.context.clock()))
            recorded("fallback")
            await self.scheduler.enqueue(record, [held.record.node_id], "fallback")
            return "fallback"
        await self.fail(record, held, error, recorded)
        return "failed"

    async def _complete(
        self,
        record: ExecutionRecord,
        graph: Graph,
        held: StepLease,
        result: NodeResult,
        snapshot: Snapshot,
        recorded: Callable[[StepOutcomeName], None],
        hand_on: HandOn | None,
    ) -> StepOutcomeName:
        node_id = held.record.node_id
        now = self.context.clock()
        seq = commit_seq(now, snapshot.seq)
        after = snapshot.then(node_id, result, seq)
        try:
            routing = route(graph, node_id, result, after.state)
        except UnroutableAction as exc:
            await self.fail(record, held, f"{type(exc).__name__}: {exc}", recorded)
            return "failed"
        outcome = TaskResult(
            output=result.output,
            action=result.action,
            state_updates=dict(result.state_updates),
            taken=tuple(e.key for e in routing.taken),
            skipped=tuple(e.key for e in routing.skipped),
            seq=seq,
        )
        edges = {key: True for key in outcome.taken} | {key: False for key in outcome.skipped}
        fired = self.scheduler.sole_successors(graph, node_id, edges)
        arrivals = self.scheduler.arrivals(graph, node_id, edges)
        completed = held.record.complete(outcome, now)
        # a step with no edge out that completes the execution stores its final status too
        final = None if edges else self.scheduler.completion(record, graph, after)
        finish = None if final is None else Finish(final, self.scheduler.id, record.parent_id)
        slots = await self._hold_slots(record, fired, hand_on, now)
        started = [leased_first_attempt(n, s, now) for n, s in zip(fired, slots, strict=False)]
        # every edge fires a successor this commit starts: nothing is left of the advance
        done = bool(started) and all(edges.values()) and len(started) == len(edges)
        try:
            committed = await held.commit(
                completed,
                edges=edges,
                fired=fired,
                now=now,
                hand_on=started,
                retire=done,
                arrivals=arrivals,
                final=finish,
            )
        except BaseException:
            release_slots(slots)
            raise
        recorded("completed")
        failpoint("after-commit")
        if final is not None and committed.finished:
            await self.scheduler.finalized(record, final, retire=node_id)
            return "completed"
        carried = Carried(record, graph, after)
        running = [first.record.node_id for first in started] if committed.handed_on else []
        if running:
            take_leased(slots, started, record, carried, now)
            if done:  # its commit did all of its advance: it is off the agenda
                return "completed"
        else:
            release_slots(slots)
            if await self._fire_join(record, graph, node_id, committed.joins, hand_on, now):
                return "completed"
        await self.scheduler.advance(
            record,
            graph,
            held.record,
            committed=fired,
            carried=carried,
            running=running,
            known=committed.joins,
        )
        return "completed"

    async def _hold_slots(
        self, record: ExecutionRecord, fired: Sequence[str], hand_on: HandOn | None, now: float
    ) -> list[HandOn]:
        """The slots the successors ``fired`` are leased to in the commit: the step's own
        (``hand_on``) and free ones of this process held for them (``dispatch.reserve``);
        none when the slot cannot take one or the execution's deadline passed (a worker that
        takes the task from the queue times the execution out)."""
        if hand_on is None or not fired or record.past_deadline(now):
            return []
        return [hand_on, *await self.context.dispatch.reserve(len(fired) - 1)]

    async def _fire_join(
        self,
        record: ExecutionRecord,
        graph: Graph,
        source: str,
        known: Mapping[str, JoinCount],
        hand_on: HandOn | None,
        now: float,
    ) -> bool:
        """The whole advance of a step whose one edge leads into a join that its commit saw
        complete (it was the last of the join's sources): fire the join, lease it to the
        slot (``hand_on``) with its view (its ancestors' records, read by the same write) and
        take the step off the agenda, in one write (``fire_join``). False where that does not
        apply; the usual advance then runs."""
        outgoing = graph.outgoing(source)
        if hand_on is None or len(outgoing) != 1 or record.past_deadline(now):
            return False
        join = outgoing[0].target
        fan_in, count = len(graph.incoming(join)), known.get(join)
        if count is None or count.arrived < fan_in:
            return False
        if join_decision_counted(graph.nodes[join], fan_in, *count) is not JoinDecision.FIRE:
            return False
        started = leased_first_attempt(join, hand_on, now)
        eid, upstream = record.execution_id, sorted(graph.ancestors(join))
        fire = self.persistence.fire_join
        steps = await fire(eid, join, started, retire=source, now=now, upstream=upstream)
        if steps is None:
            return False
        failpoint("after-schedule")
        view = Snapshot.read(record, steps)
        hand_on.take(handed_on_task(record, join, now), Carried(record, graph, view), started)
        return True

    async def _retry(
        self, record: ExecutionRecord, held: StepLease, error: str, delay: float
    ) -> None:
        step = held.record
        await held.swap(step.retry_later(error, delay, self.context.clock()))
        event = RetryScheduled(
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            step_id=step.node_id,
            attempt=step.current_attempt,
            delay=delay,
            error=error,
        )
        self.context.hooks.retry_scheduled(event)

    async def fail(
        self,
        record: ExecutionRecord,
        held: StepLease,
        error: str,
        recorded: Callable[[StepOutcomeName], None] = lambda _: None,
    ) -> None:
        """Fail the step, then the execution (fail fast; running siblings get cancelled)."""
        node_id = held.record.node_id
        await held.swap(held.record.fail(error, self.context.clock()))
        recorded("failed")
        await self.scheduler.finalize(record, FinalStatus.failed(error, node_id))
