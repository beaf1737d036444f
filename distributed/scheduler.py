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

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestration import Graph, JoinDecision, final_outputs, join_decision
from orchestration.routing import join_decision_counted

from .dispatch import Carried, leased_first_attempt, release_slots, take_leased
from .failpoints import failpoint
from .hooks import ExecutionFinished, ExecutionSubmitted, StepSkipped
from .models import ExecutionRecord, FinalStatus, StepRecord, Task, TaskReason
from .persistence import JoinCount
from .snapshot import Snapshot, execution_state

if TYPE_CHECKING:
    from .context import RuntimeContext

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

_FIRE = JoinDecision.FIRE
_REMEMBERED = 10_000  # final statuses told here, remembered (see ``Scheduler._first_telling``)


class Scheduler:
    """Decides what runs next; shared by the engine (start), workers (advance) and recovery."""

    def __init__(self, context: RuntimeContext) -> None:
        self.context = context
        self.id = uuid.uuid4().hex  # claims announcements (see ``announce``)
        self.persistence = context.persistence
        self.queue = context.queue
        self._told: OrderedDict[tuple[str, int], None] = OrderedDict()  # (eid, generation)

    async def start(self, record: ExecutionRecord, graph: Graph) -> bool:
        """Record a new execution with its start nodes on the agenda, then start them; False
        if the id exists. A process with workers leases the start steps to its free slots
        in the write that records the execution (``dispatch.HandOn``: no task published, no
        lease write of their own) and dispatches the rest; a client (no workers here) rings
        the workers of other processes in that write, then publishes the tasks."""
        starts = graph.start_nodes()
        if self.context.dispatch.has_runners:
            return await self._start_here(record, graph, starts)
        return await self._start_elsewhere(record, starts)

    async def _start_here(
        self, record: ExecutionRecord, graph: Graph, starts: Sequence[str]
    ) -> bool:
        now = self.context.clock()
        past = record.past_deadline(now)  # a worker that takes the task times it out
        slots = [] if past else await self.context.dispatch.reserve(len(starts))
        leased = [leased_first_attempt(n, s, now) for n, s in zip(starts, slots, strict=False)]
        try:
            created = await self.persistence.create_execution(record, starts, started=leased)
        except BaseException:
            release_slots(slots)
            raise
        if not created:
            release_slots(slots)
            return False
        self._submitted(record)
        take_leased(slots, leased, record, Carried(record, graph, Snapshot.read(record, {})), now)
        if len(leased) < len(starts):
            await self._dispatch(_tasks(record, starts[len(leased) :], "scheduled"))
        return True

    async def _start_elsewhere(self, record: ExecutionRecord, starts: Sequence[str]) -> bool:
        tasks = _tasks(record, starts, "scheduled")
        rings = await self.context.doorbells.rings(tasks, probe=True)
        if not await self.persistence.create_execution(record, starts, rings):
            return False
        await self.queue.enqueue_many(tasks)  # rung by the write
        self._submitted(record)
        return True

    def _submitted(self, record: ExecutionRecord) -> None:
        event = ExecutionSubmitted(
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            generation=record.generation,
        )
        self.context.hooks.execution_submitted(event)

    async def enqueue(
        self,
        record: ExecutionRecord,
        node_ids: Sequence[str],
        reason: TaskReason = "scheduled",
        *,
        carried: Mapping[str, Carried] | None = None,
        wait_for_slot: bool = False,
    ) -> None:
        """Enqueue tasks of steps that are already on the agenda, and start them at once on
        this process's workers that have a free slot (eager dispatch), or with
        ``wait_for_slot`` in the next slot that frees up (the recovery sweep's: the queued copy
        of a task taken from a dead worker may wait for the broker group to rebalance); ring
        the workers of other processes with the rest (``distributed.doorbell``)."""
        await self._dispatch(_tasks(record, node_ids, reason), carried, wait_for_slot)

    async def _dispatch(
        self,
        tasks: Sequence[Task],
        carried: Mapping[str, Carried] | None = None,
        wait_for_slot: bool = False,
    ) -> None:
        dispatch, doorbells = self.context.dispatch, self.context.doorbells
        if not dispatch.has_runners:
            # a client rings while it publishes: the steps are on the agenda already, so a
            # worker may start them before the broker has their tasks
            await asyncio.gather(self.queue.enqueue_many(tasks), doorbells.ring(tasks))
            return
        await self.queue.enqueue_many(tasks)
        await doorbells.ring(dispatch.offer(tasks, carried, wait=wait_for_slot))

    def sole_successors(self, graph: Graph, source: str, edges: Mapping[str, bool]) -> list[str]:
        """The targets of ``source``'s taken ``edges`` that have no other incoming edge: their
        join decision is this step's alone, so its commit fires them (``commit_step``)."""
        targets = _targets(graph, source)
        fired = []
        for key, taken in edges.items():
            target = targets[key]
            incoming = graph.incoming(target)
            alone = taken and len(incoming) == 1
            if alone and join_decision(graph.nodes[target], incoming, {key: True}) is _FIRE:
                fired.append(target)
        return fired

    def arrivals(
        self, graph: Graph, source: str, edges: Mapping[str, bool]
    ) -> dict[str, JoinCount]:
        """What ``source``'s ``edges`` add to the counters of the joins they lead into (nodes
        with two or more incoming edges): its commit counts them and reads the counters back
        (``commit_step``), so the advance decides those joins without reading them again."""
        joins = _join_targets(graph, source)
        counts: dict[str, JoinCount] = {}
        for key, taken in edges.items():
            if key in joins:
                arrived, was_taken = counts.get(joins[key], JoinCount(0, 0))
                counts[joins[key]] = JoinCount(arrived + 1, was_taken + taken)
        return counts

    async def advance(
        self,
        record: ExecutionRecord,
        graph: Graph,
        step: StepRecord,
        *,
        committed: Sequence[str] | None = None,
        carried: Carried | None = None,
        running: Sequence[str] = (),
        known: Mapping[str, JoinCount] | None = None,
    ) -> None:
        """Resolve a completed step's edges, schedule or skip its successors, check completion
        if nothing is left to run, and only then take the step off the agenda.

        ``committed``: the step's commit already resolved its edges and fired (and put on the
        agenda) these successors (``sole_successors``); None when re-advancing a step whose
        advance was interrupted, which resolves everything again, idempotently. ``carried``:
        what those successors start with if they run in this process (``dispatch.Carried``).
        ``running``: those of them the commit leased to slots of this process, which run them
        next (``dispatch.HandOn``): no task is enqueued for them. ``known``: the counters of
        the joins among the other targets as the commit read them back (``arrivals``), so
        deciding those joins reads nothing (a join decided later in a cascade of skips always
        reads)."""
        assert step.result is not None
        eid = record.execution_id
        edges = {key: True for key in step.result.taken} | {
            key: False for key in step.result.skipped
        }
        resolution, source = _Resolution(), step.node_id
        if committed is None:
            await self._resolve(eid, graph, source, edges, resolution)
        else:
            resolution.fired += committed
            resolution.newly_fired |= bool(committed)
            targets = _targets(graph, source)
            rest = {k: v for k, v in edges.items() if targets[k] not in committed}
            await self._decide_targets(eid, graph, source, rest, resolution, known)
        now = self.context.clock()
        await self.persistence.schedule(eid, resolution.unscheduled(committed), now)
        hints = {node: carried for node in committed or ()} if carried else None
        await self.enqueue(record, [n for n in resolution.fired if n not in running], carried=hints)
        failpoint("after-schedule")
        view = carried.snapshot if carried else None
        if resolution.pending or not await self.check_completion(
            record, graph, step.node_id, view=view
        ):
            self.persistence.unschedule_soon(eid, step.node_id)
            failpoint("owing-unschedule")

    async def _resolve(
        self,
        eid: str,
        graph: Graph,
        source: str,
        edges: Mapping[str, bool],
        resolution: _Resolution,
    ) -> None:
        await self.persistence.resolve_edges(eid, edges, _join_targets(graph, source))
        targets = _targets(graph, source)
        resolution.resolved_into.update(targets[key] for key in edges)
        await self._decide_targets(eid, graph, source, edges, resolution)

    async def _decide_targets(
        self,
        eid: str,
        graph: Graph,
        source: str,
        edges: Mapping[str, bool],
        resolution: _Resolution,
        known: Mapping[str, JoinCount] | None = None,
    ) -> None:
        targets = _targets(graph, source)
        for target in dict.fromkeys(targets[key] for key in edges):
            decision = await self._decide(eid, graph, target, edges, resolution, known)
            if decision is JoinDecision.FIRE:
                resolution.fired.append(target)
            elif decision is JoinDecision.SKIP:
                await self._skip(eid, graph, target, resolution)

    async def _decide(
        self,
        eid: str,
        graph: Graph,
        node_id: str,
        edges: Mapping[str, bool],
        resolution: _Resolution,
        known: Mapping[str, JoinCount] | None = None,
    ) -> JoinDecision:
        """Decide a target of ``edges``: by the one edge into it, or, a join, by its
        counters (``known``: as the commit read them back)."""
        node, incoming = graph.nodes[node_id], graph.incoming(node_id)
        if len(incoming) < 2:
            decision = join_decision(node, incoming, edges)
        else:
            count = None if known is None else known.get(node_id)
            # what the commit read is stale for a join this advance resolved edges into since
            if count is None or node_id in resolution.resolved_into:
                count = (await self.persistence.join_counts(eid, [node_id]))[node_id]
            decision = join_decision_counted(node, len(incoming), *count)
        if decision is JoinDecision.WAIT:
            resolution.waiting.add(node_id)
            return decision
        resolution.waiting.discard(node_id)  # decided later in the same advance (a cascade)
        fire, made = await self.persistence.decide_join(eid, node_id, decision is JoinDecision.FIRE)
        resolution.newly_fired |= fire and made
        return JoinDecision.FIRE if fire else JoinDecision.SKIP

    async def _skip(self, eid: str, graph: Graph, node_id: str, resolution: _Resolution) -> None:
        """Dead-path elimination: the node is skipped and so is every edge out of it."""
        skipped = StepRecord(node_id=node_id).skip(self.context.clock())
        if await self.persistence.swap_step(eid, None, skipped) is not None:
            event = StepSkipped(execution_id=eid, workflow_id=graph.id, step_id=node_id)
            self.context.hooks.step_skipped(event)
        outgoing = {e.key: False for e in graph.outgoing(node_id)}
        await self._resolve(eid, graph, node_id, outgoing, resolution)

    async def check_completion(
        self,
        record: ExecutionRecord,
        graph: Graph,
        retire: str | None = None,
        *,
        view: Snapshot | None = None,
    ) -> bool:
        """Complete the execution once every node is completed or skipped; True if this call
        did, and then the step ``retire`` (whose advance checked) left the agenda as it was
        told. ``view``: what the step that checks saw, with its own commit (``Carried``);
        when every node it must run is in it, the execution's result is read from it, not
        from a scan of every step record."""
        completed_status = None if view is None else self.completion(record, graph, view)
        if completed_status is None:
            steps = await self.persistence.steps(record.execution_id)
            done = {n for n, v in steps.items() if v.record.status in ("completed", "skipped")}
            if not _required(graph) <= done:
                return False
            state, outputs = execution_state(record, steps)
            completed = [n for n, v in steps.items() if v.record.status == "completed"]
            result = final_outputs(graph, outputs, state, completed)
            completed_status = FinalStatus.completed(result, record.generation)
        _, won = await self.finalize(record, completed_status, retire=retire)
        return won

    def completion(
        self, record: ExecutionRecord, graph: Graph, view: Snapshot
    ) -> FinalStatus | None:
        """The execution's completed status if ``view`` (what a step saw, with its own output)
        holds every node the execution must run; None if it does not."""
        if not _required(graph) <= view.outputs.keys():
            return None
        result = final_outputs(graph, view.outputs, view.state, list(view.outputs))
        return FinalStatus.completed(result, record.generation)

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
        self, record: ExecutionRecord, final: FinalStatus, *, retire: str | None = None
    ) -> tuple[FinalStatus, bool]:
        """Set the sticky final status (first writer wins); return the status in force and
        whether this call set it. Once per generation (``claim_announcement``: by the winner,
        also when its answer was lost and it finalizes again) the status is told to the hooks
        and wakes a subflow's parent. ``retire``: a step that leaves the agenda once this call
        set the status and told it (``mark_announced_soon``)."""
        if final.generation != record.generation:
            final = final.model_copy(update={"generation": record.generation})
        current, won = await self.persistence.set_final(
            record.execution_id, final, self.id, parent=record.parent_id
        )
        if won:
            await self.finalized(record, final, retire=retire)
        elif current is not final:  # not when the execution is gone
            await self.announce(record, current)
        return current, won

    async def finalized(
        self, record: ExecutionRecord, final: FinalStatus, *, retire: str | None = None
    ) -> None:
        """Tell a final status this scheduler stored and claimed (``set_final``, or a step's
        commit that completed the execution), and take ``retire`` off the agenda then."""
        failpoint("after-final")
        await self.announce(record, final, claimed=True, retire=retire)

    async def announce(
        self,
        record: ExecutionRecord,
        final: FinalStatus,
        *,
        claimed: bool = False,
        take_over: bool = False,
        retire: str | None = None,
    ) -> None:
        """Tell the hooks the execution's final status and wake a subflow's parent, once per
        generation, if this scheduler won it (``claimed``: it knows; otherwise it asks
        ``claim_announcement``), or if it takes over a claim whose holder never told."""
        eid = record.execution_id
        if final.generation != record.generation:
            return  # a later generation's
        if not claimed and not await self.persistence.claim_announcement(
            eid, record.generation, self.id, take_over=take_over
        ):
            return
        if self._first_telling(eid, record.generation):
            log.info("execution %s %s", eid, final.status, extra={"execution_id": eid})
            self.context.hooks.execution_final(_finished(record, final))
        self.persistence.mark_announced_soon(eid, record.generation, retire=retire)
        if record.parent is not None:
            parent = await self.persistence.record(record.parent.execution_id)
            if parent is not None:
                await self.enqueue(parent, [record.parent.node_id], "child-finished")

    def _first_telling(self, eid: str, generation: int) -> bool:
        """False if this process told that final status already: the claim is this
        scheduler's until it is marked told, so two finalizes of one execution here (a
        join's commit and the sweep finishing a branch's advance) would both pass it."""
        key = (eid, generation)
        if key in self._told:
            return False
        self._told[key] = None
        if len(self._told) > _REMEMBERED:
            self._told.popitem(last=False)
        return True


@dataclass
class _Resolution:
    """What resolving a step's edges decided."""

    fired: list[str] = field(default_factory=list)
    newly_fired: bool = False  # a join decision made here fired a node
    waiting: set[str] = field(default_factory=set)  # joins still waiting for other edges
    # the targets of the edges resolved here (skip propagation): counters read before are stale
    resolved_into: set[str] = field(default_factory=set)

    @property
    def pending(self) -> bool:
        """Something is left to run, so the execution cannot be complete yet (and whatever
        finishes it checks completion itself)."""
        return bool(self.waiting) or self.newly_fired

    def unscheduled(self, committed: Sequence[str] | None) -> list[str]:
        """The fired nodes not already put on the agenda by the step's commit."""
        return [node for node in self.fired if node not in (committed or ())]


def _required(graph: Graph) -> set[str]:
    """The nodes an execution must run (completed or skipped) to complete."""
    return set(graph.nodes) - graph.fallback_only_nodes()


def _targets(graph: Graph, source: str) -> dict[str, str]:
    """The target of each edge out of ``source``, by edge key."""
    return {edge.key: edge.target for edge in graph.outgoing(source)}


def _join_targets(graph: Graph, source: str) -> dict[str, str]:
    """The target of each edge out of ``source`` that is a join (has two or more incoming
    edges, so it keeps counters), by edge key."""
    return {
        edge.key: edge.target
        for edge in graph.outgoing(source)
        if len(graph.incoming(edge.target)) >= 2
    }


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
        parent_id=record.parent_id,
    )


def _tasks(record: ExecutionRecord, node_ids: Sequence[str], reason: TaskReason) -> list[Task]:
    eid, generation = record.execution_id, record.generation
    return [
        Task(execution_id=eid, node_id=n, reason=reason, generation=generation) for n in node_ids
    ]
