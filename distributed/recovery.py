"""``RecoveryManager``: everything that keeps executions moving when workers die or wait.

    recovery = RecoveryManager(persistence, queue, engine)
    generation = await recovery.recover_failed_execution(execution_id)

**The sweep.** Every worker pool runs one, but only the holder of the namespace's leader lease
sweeps (``leader_ttl``: a dead sweeper is replaced within that). A sweep reads only what may need
work -- the agenda (steps scheduled and not yet done) and the deadlines -- never every step of
every execution. For each agenda entry, by the step's status:

- never started, scheduled more than ``requeue_after`` ago: enqueued again (a lost message; a
  backstop, so it is long by default: under a backlog a step may wait that long for a worker,
  and each re-enqueue is a duplicate that workers drop);
- completed more than ``settle_time`` ago and still on the agenda: its advance was interrupted
  (the worker died after the commit): the sweep schedules the successors;
- running under a lapsed lease (its worker hung: the sweeper saw no heartbeat for the lease's
  term, on its own clock, so a worker whose clock is off is judged right), or held by a worker
  whose liveness key lapsed (it died: workers renew a key with a 2 s TTL, see
  ``WorkerConfig.liveness_ttl``, so a SIGKILLed worker's steps are reclaimed within about two
  seconds while a live worker keeps the lease of a long step with heartbeats): handed back,
  due at once, and re-enqueued -- and, through eager dispatch (``distributed.dispatch``),
  started at once by a worker of the sweeper's own process, so recovery does not wait for the
  broker to hand the dead worker's partitions to someone else. After ``max_lease_expiries``
  such deaths the step fails (a step that kills its worker every time must not crash-loop the
  cluster);
- pending retry or fallback whose delay has passed: enqueued (delayed retries hold no slot);
  pending longer than ``requeue_after`` without being picked up: enqueued again;
- waiting on a subflow whose child is final, or on a signal that arrived or timed out: woken;
- of an execution that is final: taken off the agenda, once the status is ``settle_time`` old
  (its finalizer clears its own entries; if it died before telling the status to its hooks, the
  sweep takes the announcement over and tells it).

Executions past their deadline become ``timed_out``. An execution whose records cannot be
decoded is logged and left as it is: it does not stop the sweep of the others. Every action is
a compare-and-set or an idempotent enqueue, so a sweep that overlaps a live worker (or a second
sweeper, during a leader hand-over) changes nothing twice.

**Generations.** ``recover_failed_execution`` re-runs a failed or timed-out execution from its
last checkpoint as generation n+1: completed (and skipped) steps are kept and never re-run; every
other step that had fired is reset and scheduled; the earlier final status stays in the
execution's history; tasks of older generations are dropped by workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from orchestration import Engine, UnknownWorkflow

from .context import RuntimeContext
from .engine import DistributedEngine
from .errors import ExecutionNotFound, NotRecoverable
from .hooks import ExecutionControl, Hooks, LeaseExpired
from .models import AgendaEntry, ExecutionRecord, FinalStatus, StepRecord, TaskReason
from .persistence import SweepView, VersionedStep, WorkflowPersistence
from .queue import TaskQueue
from .timebox import reraise_if_cancelling

__all__ = ["RecoveryConfig", "RecoveryManager", "SweepReport"]

log = logging.getLogger(__name__)

_ROLE = "recovery"
_IDLE_SHARE = 9  # a sweep's pause is at least this many times its length...
_MAX_PAUSES = 4  # ...but at most this many intervals (recovery waits for the sweep)


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class RecoveryConfig:
    """Sweep settings, in seconds (see the module docstring); validated when built."""

    interval: float = Field(default=0.5, gt=0)
    leader_ttl: float = Field(default=2.0, gt=0)
    max_lease_expiries: int = Field(default=5, ge=1)
    requeue_after: float = Field(default=60.0, gt=0)
    settle_time: float = Field(default=1.0, ge=0)
    liveness_grace: float = Field(default=2.0, ge=0)


@dataclass
class SweepReport:
    """What one sweep did."""

    expired_leases: int = 0
    due_retries: int = 0
    timed_out: int = 0
    advanced: int = 0
    requeued: int = 0
    woken: int = 0
    cleared: int = 0
    failed: list[str] = field(default_factory=list)


class RecoveryManager:
    """Recovers failed executions on request, and sweeps (as leader) to keep others moving."""

    def __init__(
        self,
        persistence: WorkflowPersistence,
        queue: TaskQueue,
        engine: DistributedEngine | Engine,
        *,
        config: RecoveryConfig | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        """``engine``: the ``DistributedEngine`` (its context and hooks are shared), or a local
        ``Engine`` holding the workflow definitions."""
        if isinstance(engine, DistributedEngine):
            context = engine.context
        else:
            context = RuntimeContext.build(engine, queue, persistence, hooks)
        self._setup(context, config)

    @classmethod
    def from_context(
        cls, context: RuntimeContext, config: RecoveryConfig | None = None
    ) -> RecoveryManager:
        manager = cls.__new__(cls)
        manager._setup(context, config)
        return manager

    def _setup(self, context: RuntimeContext, config: RecoveryConfig | None) -> None:
        self.context = context
        self.persistence = context.persistence
        self.scheduler = context.scheduler
        self.config = config or RecoveryConfig()
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.leader = False
        self._reachable_since = context.clock()
        self._leases: dict[tuple[str, str], tuple[bytes, float]] = {}  # see _lease_lapsed
        self._seen: dict[tuple[str, str], tuple[bytes, float]] = {}

    # -- on request -------------------------------------------------------------------------

    async def recover_failed_execution(self, execution_id: str, *, force: bool = False) -> int:
        """Re-run a ``failed`` or ``timed_out`` execution from its last checkpoint as a new
        generation; return that generation. ``force`` also recovers a ``cancelled`` one.

        Raises ``ExecutionNotFound``, or ``NotRecoverable`` for an execution that is still
        running, completed, cancelled (without ``force``), or was recovered concurrently."""
        record = await self.persistence.record(execution_id)
        if record is None:
            raise ExecutionNotFound(execution_id)
        final = await self.persistence.final(execution_id)
        _check_recoverable(execution_id, final, force)
        assert final is not None
        steps = await self.persistence.steps(execution_id)
        await self._recover_children(steps, force)
        kept = {n for n, v in steps.items() if v.record.status in ("completed", "skipped")}
        reset = [n for n in steps if n not in kept]
        fired = await self.persistence.fired_nodes(execution_id)
        # completed steps go back on the agenda too: their advance may have been cut short
        # when the execution failed (re-advancing is idempotent; they never run again)
        completed = [n for n, v in steps.items() if v.record.status == "completed"]
        scheduled = [n for n in fired if n not in kept] + completed
        new = record.next_generation(self.context.clock())
        if not await self.persistence.start_generation(record, final, new, reset, scheduled):
            raise NotRecoverable(execution_id, final.status, "it changed while recovering")
        await self.scheduler.enqueue(new, scheduled, "recovered")
        log.info("execution %s recovered as generation %d", execution_id, new.generation)
        event = ExecutionControl(
            execution_id=execution_id, action="recovered", generation=new.generation
        )
        self.context.hooks.execution_control(event)
        return new.generation

    async def _recover_children(self, steps: dict[str, VersionedStep], force: bool) -> None:
        """A subflow step that failed with its child: recover the child first."""
        for version in steps.values():
            child = version.record.child_id
            if child is None or version.record.status == "completed":
                continue
            final = await self.persistence.final(child)
            if final is not None and final.status != "completed":
                await self.recover_failed_execution(child, force=force)

    async def recover_unfinished(self) -> int:
        """Enqueue the agenda of every execution without a final status (an embedded runtime
        starting again: the in-process broker lost its messages). Returns how many.

        Only the process that holds the store runs an embedded runtime (the LevelDB lock proves
        the previous one is dead), so steps still running under another worker's lease are
        handed back at once instead of after their leases expire."""
        count = 0
        async for execution_id in self.persistence.active_executions():
            record = await self.persistence.record(execution_id)
            if record is not None:
                await self._reclaim_orphans(record)
                await self.scheduler.reschedule(record, "recovered")
                count += 1
        if count:
            log.info("re-enqueued the agenda of %d unfinished executions", count)
        return count

    async def _reclaim_orphans(self, record: ExecutionRecord) -> None:
        eid, now = record.execution_id, self.context.clock()
        nodes = [entry.node_id async for entry in self.persistence.agenda(eid)]
        for version in (await self.persistence.steps_of(eid, nodes)).values():
            lease = version.record.lease if version is not None else None
            if version is None or version.record.status != "running" or lease is None:
                continue
            if not self.context.dispatch.is_local(lease.owner):
                error = f"worker {lease.owner} is gone (the runtime restarted)"
                await self.persistence.swap_step(eid, version, version.record.reclaim(error, now))

    # -- the sweep --------------------------------------------------------------------------

    async def run(self) -> None:
        """Sweep every ``interval`` while holding the leader lease; give it up when cancelled.
        A sweep that took long (a large agenda: a backlog of thousands of executions) waits
        ``_IDLE_SHARE`` times its own length before the next, up to ``_MAX_PAUSES`` intervals,
        so a backlog does not have the process spend its time sweeping; a sweep that failed
        (the store was down) does not stretch the pause."""
        pause = self.config.interval
        try:
            while True:
                await asyncio.sleep(pause)
                started = time.monotonic()
                swept = await self._sweep_as_leader()
                spent = time.monotonic() - started if swept else 0.0
                pause = min(max(1.0, _IDLE_SHARE * spent / self.config.interval), _MAX_PAUSES)
                pause *= self.config.interval
        finally:
            if self.leader:
                await asyncio.shield(self._give_up())

    async def _sweep_as_leader(self) -> bool:
        """Sweep if this process leads; False if the sweep failed."""
        try:
            self.leader = await self.persistence.hold_leadership(
                _ROLE, self.id, self.config.leader_ttl
            )
            if self.leader:
                await self.sweep()
        except Exception as exc:
            reraise_if_cancelling(exc)
            self._reachable_since = self.context.clock()
            log.exception("recovery sweep failed; trying again next interval")
            return False
        return True

    async def _give_up(self) -> None:
        try:
            await self.persistence.give_up_leadership(_ROLE, self.id)
        except Exception as exc:  # the lease expires on its own
            log.warning("could not give up the recovery leadership: %r", exc)
        self.leader = False

    async def sweep(self) -> SweepReport:
        """One pass over the deadlines and the agenda (regardless of leadership)."""
        report, now = SweepReport(), self.context.clock()
        async for execution_id, deadline in self.persistence.deadlines():
            if deadline <= now:
                await self._time_out(execution_id, report)
        by_execution: dict[str, list[AgendaEntry]] = defaultdict(list)
        async for entry in self.persistence.agenda():
            by_execution[entry.execution_id].append(entry)
        agenda = {eid: [e.node_id for e in entries] for eid, entries in by_execution.items()}
        views = await self.persistence.sweep_views(agenda) if agenda else {}
        dead = await self._dead_owners(views.values())
        self._seen = {}
        for execution_id, entries in by_execution.items():
            view = views.get(execution_id)
            if view is None:
                log.warning(
                    "recovery sweep: a record of execution %s cannot be decoded; "
                    "its %d agenda entries are left as they are",
                    execution_id,
                    len(entries),
                )
                continue
            if view.record is None or view.final is not None:
                if view.record is not None and view.final is not None:
                    if now - view.final.finished_at < self.config.settle_time:
                        continue  # its finalizer is still clearing up
                    await self.scheduler.announce(view.record, view.final, take_over=True)
                for entry in entries:
                    await self.persistence.unschedule(execution_id, entry.node_id)
                    report.cleared += 1
                continue
            for entry in entries:
                version = view.steps[entry.node_id]
                sweep = _EntrySweep(
                    self, view.record, entry, version, now, view.paused, report, dead
                )
                await sweep.run()
        self._leases = self._seen
        return report

    def lease_lapsed(self, eid: str, version: VersionedStep, now: float) -> bool:
        """Whether a running step's lease lapsed, judged on this sweeper's clock: the same
        version of the record (no heartbeat since) has been seen for longer than the lease's
        term (its ``expires_at`` minus when it was written, both on the holder's clock). A
        worker whose clock is off by any amount is judged right; a new leader waits one term
        before it reclaims a hung worker's step (a dead one is reclaimed by its liveness)."""
        step, key = version.record, (eid, version.record.node_id)
        lease = step.lease
        if lease is None:
            return True
        first_seen = self._leases.get(key)
        since = first_seen[1] if first_seen and first_seen[0] == version.raw else now
        self._seen[key] = (version.raw, since)
        return now - since >= lease.expires_at - (step.updated_at or lease.expires_at)

    async def _dead_owners(self, views: Iterable[SweepView]) -> set[str]:
        """Owners of running steps that are gone: their liveness key lapsed (they were
        SIGKILLed, or lost the store). Only trusted once the sweep has reached the store for
        ``liveness_grace`` (a store outage also keeps live workers from renewing)."""
        if self.context.clock() - self._reachable_since < self.config.liveness_grace:
            return set()
        owners = {
            version.record.lease.owner
            for view in views
            for version in view.steps.values()
            if version is not None
            and version.record.status == "running"
            and version.record.lease is not None
        }
        remote = [owner for owner in owners if not self.context.dispatch.is_local(owner)]
        alive = await self.persistence.live_workers(remote) if remote else set()
        return set(remote) - alive

    async def _time_out(self, execution_id: str, report: SweepReport) -> None:
        try:
            record = await self.persistence.record(execution_id)
        except ValueError:  # pydantic's ValidationError: one bad record must not stop the sweep
            log.warning(
                "recovery sweep: execution %s is past its deadline, but its record cannot be "
                "decoded; left as it is",
                execution_id,
            )
            return
        if record is not None:
            timed_out = FinalStatus.timed_out(record.options.timeout)
            _, won = await self.scheduler.finalize(record, timed_out)
            report.timed_out += won


@dataclass
class _EntrySweep:
    """What the sweep does for one agenda entry (see the module docstring)."""

    manager: RecoveryManager
    record: ExecutionRecord
    entry: AgendaEntry
    version: VersionedStep | None
    now: float
    paused: bool
    report: SweepReport
    dead: set[str]  # owners of running steps whose liveness lapsed

    async def run(self) -> None:
        version = self.version
        if version is None:
            await self._never_started()
            return
        status = version.record.status
        if status == "completed":
            await self._advance(version)
        elif status == "running":
            lease, eid = version.record.lease, self.record.execution_id
            lapsed = self.manager.lease_lapsed(eid, version, self.now)
            if lapsed or (lease and lease.owner in self.dead):
                await self._reclaim(version)
        elif status == "pending":
            await self._pending(version)
        elif status == "waiting" and not self.paused:  # resume wakes paused ones
            woken = await self.manager.scheduler.wake_if_ready(self.record, version.record)
            self.report.woken += woken
        else:  # failed, cancelled, skipped: nothing will advance it
            await self.manager.persistence.unschedule(
                self.record.execution_id, version.record.node_id
            )
            self.report.cleared += 1

    async def _never_started(self) -> None:
        if self.paused or self.now - self.entry.since < self.manager.config.requeue_after:
            return
        eid, node = self.record.execution_id, self.entry.node_id
        await self.manager.persistence.schedule(eid, [node], self.now)
        await self.manager.scheduler.enqueue(self.record, [node], "requeued", wait_for_slot=True)
        self.report.requeued += 1

    async def _advance(self, version: VersionedStep) -> None:
        finished = version.record.finished_at or 0.0
        if self.now - finished < self.manager.config.settle_time:
            return
        try:
            graph = self.manager.context.engine.graph(self.record.workflow_id)
        except UnknownWorkflow:
            return  # workers that hold it finish it; see Worker._unrunnable
        log.warning(
            "finishing the interrupted advance of %s/%s",
            self.record.execution_id,
            version.record.node_id,
        )
        await self.manager.scheduler.advance(self.record, graph, version.record)
        self.report.advanced += 1

    async def _pending(self, version: VersionedStep) -> None:
        step, config = version.record, self.manager.config
        if step.not_before is not None:
            if step.not_before <= self.now:
                await self._enqueue_if_swapped(version, step.due(self.now), "retry")
                self.report.due_retries += 1
            return
        waited = self.now - (step.updated_at or self.entry.since)
        if not self.paused and waited >= config.requeue_after:
            await self._enqueue_if_swapped(version, step.requeue(self.now), "requeued")
            self.report.requeued += 1

    async def _reclaim(self, version: VersionedStep) -> None:
        """Hand a dead worker's step to another worker, or fail it past the expiry limit."""
        step, limit = version.record, self.manager.config.max_lease_expiries
        owner = step.lease.owner if step.lease else "?"
        expiries = step.lease_expiries + 1
        gone = "is gone" if owner in self.dead else "let its lease expire"
        error = f"worker {owner} {gone} ({expiries} of {limit} lease expiries)"
        event = LeaseExpired(
            execution_id=self.record.execution_id,
            step_id=step.node_id,
            owner=owner,
            expiries=expiries,
        )
        if expiries >= limit:
            await self._fail_poison_step(version, error)
            self.manager.context.hooks.lease_expired(event)
            return
        if await self._enqueue_if_swapped(version, step.reclaim(error, self.now), "recovered"):
            log.warning(
                "step %s/%s: %s; re-enqueued", self.record.execution_id, step.node_id, error
            )
            self.manager.context.hooks.lease_expired(event)
            self.report.expired_leases += 1

    async def _fail_poison_step(self, version: VersionedStep, error: str) -> None:
        error = f"{error}: the step keeps killing or hanging its worker, so it is failed"
        step = version.record.reclaim(error, self.now).fail(error, self.now)
        persistence = self.manager.persistence
        if await persistence.swap_step(self.record.execution_id, version, step):
            log.error("step %s/%s: %s", self.record.execution_id, step.node_id, error)
            await self.manager.scheduler.finalize(
                self.record, FinalStatus.failed(error, step.node_id)
            )
            self.report.failed.append(f"{self.record.execution_id}/{step.node_id}")

    async def _enqueue_if_swapped(
        self, version: VersionedStep, new: StepRecord, reason: TaskReason
    ) -> bool:
        eid = self.record.execution_id
        if await self.manager.persistence.swap_step(eid, version, new) is None:
            return False
        await self.manager.scheduler.enqueue(self.record, [new.node_id], reason, wait_for_slot=True)
        return True


def _check_recoverable(execution_id: str, final: FinalStatus | None, force: bool) -> None:
    if final is None:
        raise NotRecoverable(execution_id, "running", "only a final execution can be recovered")
    if final.status == "completed":
        raise NotRecoverable(execution_id, "completed", "there is nothing to recover")
    if final.status == "cancelled" and not force:
        raise NotRecoverable(
            execution_id, "cancelled", "it was cancelled on purpose; pass force=True to re-run it"
        )
