"""``Worker``: takes tasks from the queue and runs steps, ``concurrency`` at a time.

For each task: dead-letter it if it names an unknown execution or step; drop it if the
execution is final, paused or of a later generation, or the step is done, held under a lease,
or a retry not yet due; otherwise take the step's lease, run the node with heartbeats, commit the
outcome in one fenced compare-and-set, advance the execution, and only then ack. A crash
anywhere before the ack redelivers the task, and every stage is idempotent: steps are
at-least-once, transitions exactly-once. Whatever a crash or a lost message interrupts, the
step is still on the agenda, so the recovery sweep finishes it (see ``distributed.scheduler``).

A worker that does not hold the workflow, or holds another version of it than the execution
began on, never runs it with another definition: it leaves the task for a compatible worker
(the sweep re-enqueues it) and, once ``incompatible_grace`` seconds have passed since a worker
first found it unrunnable, fails the execution naming the workflow and both versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from contextvars import Context, ContextVar, copy_context
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from mq import BrokerError
from orchestration import Engine, Graph, NodeContext, UnknownWorkflow
from orchestration.loops import LOOP
from orchestration.waits import WAIT

from .commit import StepCommitter
from .context import RuntimeContext
from .dispatch import Carried, HandOn
from .doorbell import answer_rings
from .errors import LeaseLost
from .failpoints import failpoint
from .heartbeats import Heartbeats
from .hooks import (
    DeadLettered,
    StepFinished,
    StepOutcomeName,
    StepStarted,
    WorkerStarted,
    WorkerStopped,
)
from .lease import StepLease, acquire_lease
from .loops import loop_outcome, start_loop
from .models import ExecutionRecord, FinalStatus, StepRecord, Task
from .persistence import TaskView, VersionedStep
from .queue import QueuedTask, TaskConsumer
from .slots import Slots
from .snapshot import Snapshot, read_view
from .steps import StepExecutor, StepOutcome
from .subflow import child_outcome, start_child
from .timebox import reraise_if_cancelling, within
from .waits import park_or_take, wait_outcome

__all__ = ["Worker", "WorkerConfig"]

SUBFLOW = "subflow"

log = logging.getLogger(__name__)

_Key = tuple[str, str]
_EXECUTION_FINAL, _LEASE_LOST = "execution final", "lease lost"


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class WorkerConfig:
    """Worker settings, in seconds; validated when built.

    ``lease_ttl``: how long a step's lease lasts without a heartbeat (a dead worker's steps are
    re-run after it). ``watch_interval``: how often running steps look for a final status, so
    ``cancel()`` reaches running code within about that long. ``grace_period``: how long a
    graceful stop lets running steps finish before cancelling them; ``close_timeout``: how long
    each later stop phase (cancelled steps releasing leases, closing the consumer) may take.
    ``incompatible_grace``: how long an execution may wait for a worker that holds its workflow
    (at the version it began on) before it fails. ``liveness_ttl``: how long the worker's
    liveness key outlives its last renewal (renewed four times as often): the sweep reclaims the
    steps of a worker whose key is gone without waiting for their leases to expire, so a killed
    worker's steps run again within seconds while a live worker's long step keeps its lease.
    ``eager``: take tasks this process enqueues at once when a slot is free (see
    ``distributed.dispatch``). ``settle_time``: a queued copy of a step that completed less
    than this long ago is dropped, not advanced: the worker that committed it is advancing it
    (should it have died, the recovery sweep finishes the advance).
    """

    concurrency: int = Field(default=4, ge=1)
    group: str = Field(default="flowloom-workers", min_length=1)
    lease_ttl: float = Field(default=10.0, gt=0)
    heartbeat_interval: float | None = Field(default=None, gt=0)  # default: lease_ttl / 3
    watch_interval: float = Field(default=0.25, gt=0)
    grace_period: float = Field(default=10.0, ge=0)
    close_timeout: float = Field(default=5.0, gt=0)
    fetch_retry_interval: float = Field(default=1.0, gt=0)  # after the broker failed a fetch
    incompatible_grace: float = Field(default=30.0, ge=0)
    liveness_ttl: float = Field(default=2.0, gt=0)
    eager: bool = True
    settle_time: float = Field(default=1.0, ge=0)

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or self.lease_ttl / 3


_HandedOn = tuple[Task, Carried | None, VersionedStep | None]  # leased in the commit, or None


@dataclass
class _Handoff:
    """The task a step handed on to the slot it runs in (see ``Worker.try_take`` and
    ``dispatch.HandOn``)."""

    worker: Worker
    tasks: list[_HandedOn] = field(default_factory=list)


_handoff: ContextVar[_Handoff | None] = ContextVar("flowloom_handoff", default=None)


class _DeadLetter(Exception):
    """The task can never run: dead-letter it with this reason."""


class Worker:
    """Consumes tasks from a ``TaskQueue`` and runs the steps they name."""

    def __init__(
        self,
        context: RuntimeContext,
        *,
        config: WorkerConfig | None = None,
        executor: StepExecutor | None = None,
    ) -> None:
        self.context = context
        self.queue = context.queue
        self.persistence = context.persistence
        self.engine = context.engine
        self.config = config or WorkerConfig()
        self.executor = executor or StepExecutor(context.engine)
        self.scheduler = context.scheduler
        self.committer = StepCommitter(context)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._slots = Slots(self.config.concurrency)
        self._urgent = 0  # tasks of the recovery sweep waiting for a slot (take_when_free)
        self._handlers: set[asyncio.Task[None]] = set()
        self._running: dict[_Key, asyncio.Task[Any]] = {}  # the tasks steps run in
        self._cancelled: dict[_Key, tuple[str, int]] = {}  # steps we cancelled: why, how often
        self._heartbeats = Heartbeats(self.config.heartbeat)
        self._fetching = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        free = self.config.concurrency if self.config.eager else 0  # as it will be in a moment
        await self.persistence.touch_worker(self.id, self.config.liveness_ttl, free)
        consumer = await self.queue.consumer(self.config.group)
        self._fetching.set()
        self._tasks = [
            asyncio.create_task(self._consume(consumer), name=f"consume-{self.id}"),
            asyncio.create_task(self._watch(), name=f"watch-{self.id}"),
            asyncio.create_task(self._keep_alive(), name=f"alive-{self.id}"),
            asyncio.create_task(self._heartbeats.run(), name=f"heartbeats-{self.id}"),
        ]
        if self.config.eager:
            self.context.dispatch.register(self)
            rings = answer_rings(self.persistence, self.id, self.try_take)
            self._tasks.append(asyncio.create_task(rings, name=f"rings-{self.id}"))
        slots = self.config.concurrency
        event = WorkerStarted(worker_id=self.id, slots=slots, queue_lag=consumer.lag)
        self.context.hooks.worker_started(event)

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop in phases: stop fetching; let running steps finish for up to the grace period;
        cancel the rest and release their leases; close the consumer."""
        grace = self.config.grace_period if grace_period is None else grace_period
        self.context.dispatch.unregister(self)
        self._fetching.clear()
        self._stopping.set()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace)
        for handler in list(self._handlers):
            handler.cancel()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=self.config.close_timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=self.config.close_timeout)
        forget = self.persistence.forget_worker(self.id)  # else it expires on its own
        await within(forget, self.config.close_timeout, f"removing {self.id}'s liveness key")
        event = WorkerStopped(worker_id=self.id, slots=self.config.concurrency)
        self.context.hooks.worker_stopped(event)

    # -- fetching -----------------------------------------------------------------------------

    async def _consume(self, consumer: TaskConsumer) -> None:
        try:
            while self._fetching.is_set():
                await self._slots.wait_free()  # a slot for what comes, left free meanwhile
                try:
                    item = await self._next(consumer)
                except BrokerError as exc:  # the broker blipped: keep the worker alive
                    log.warning("fetching tasks failed (%s); retrying", exc)
                    await asyncio.sleep(self.config.fetch_retry_interval)
                    continue
                if item is None:
                    break
                if item.task is not None and self.context.dispatch.taken(item.task):
                    # the queued copy of a task a worker here took: acked here, not in a task
                    # of its own (under load such copies piled up waiting for loop turns)
                    await _settle(item.ack())
                    continue
                await self._slots.acquire()  # eager tasks may have taken the free slots
                if self._stopping.is_set():  # unrun and unacked: the group hands it back
                    self._slots.release()
                    break
                handler = asyncio.create_task(self._handle(item))
                self._handlers.add(handler)
                handler.add_done_callback(self._finished)
            await asyncio.Event().wait()  # keep unacked deliveries ours until stop() ends us
        finally:
            await within(
                consumer.close(), self.config.close_timeout, f"closing {self.id}'s consumer"
            )

    async def _next(self, consumer: TaskConsumer) -> QueuedTask | None:
        """The next delivery, or None once fetching stops (the consumer stays open)."""
        if self._stopping.is_set():
            return None
        ready = consumer.next_ready()
        if ready is not None:
            return ready
        fetch = asyncio.ensure_future(consumer.next())
        fetch.add_done_callback(_retrieve)  # a fetch orphaned by stop() may end in an error
        stopped = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        fetch.cancel()
        try:
            item = await fetch
        except (asyncio.CancelledError, StopAsyncIteration):
            return None  # stopping, or the consumer was closed
        # Fetched as the stop began: leave it unrun and unacked; closing the consumer hands it
        # back to the group, so it is not started here only to be cancelled by the stop.
        return None if self._stopping.is_set() else item

    def _finished(self, handler: asyncio.Task[None]) -> None:
        self._handlers.discard(handler)
        self._slots.release()

    # -- eager dispatch and liveness ----------------------------------------------------------

    def try_take(self, task: Task, carried: Carried | None = None) -> bool:
        """Start a task this process enqueued, without its delivery (its queued copy is
        dropped by whoever receives it: the step is running or done): in the slot of the step
        that enqueued it, right after that step (the first task a step hands on), or in a free
        slot; False if neither is there or the worker is stopping."""
        if not self._fetching.is_set():
            return False
        handoff = self._free_handoff()
        if handoff is not None:
            handoff.tasks.append((task, carried, None))
            return True
        if self._slots.locked():
            return False
        self._slots.promise()  # its slot is taken in a turn of the loop: no other offer gets it
        handler = asyncio.create_task(self._take(task, carried, promised=True))
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        return True

    def _free_handoff(self) -> _Handoff | None:
        """The slot of the step running in this task, if it can take one successor next: it
        has none yet, no task of the recovery sweep waits for a slot, the worker is not
        stopping."""
        handoff = _handoff.get()
        if handoff is None or handoff.worker is not self or handoff.tasks or self._urgent:
            return None
        return handoff if self._fetching.is_set() else None

    def _hand_on(self) -> HandOn | None:
        """What a step's commit needs to lease its first successor to this slot."""
        handoff = self._free_handoff() if self.config.eager else None
        if handoff is None:
            return None

        def take(task: Task, carried: Carried, leased: VersionedStep) -> None:
            handoff.tasks.append((task, carried, leased))

        return HandOn(self.id, self.config.lease_ttl, take)

    def take_when_free(self, task: Task) -> bool:
        """Run ``task`` in the next slot that frees up: slots are handed out in order, and no
        step hands its slot on to a successor while such a task waits."""
        if not self._fetching.is_set():
            return False
        handler = asyncio.create_task(self._take(task, None, urgent=True))
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        return True

    async def reserve(self) -> HandOn | None:
        """Hold a free slot for a successor another step's commit leases to this worker
        (``LocalDispatch.reserve``): None if no slot is free, a task of the recovery sweep
        waits for one, or the worker is stopping. ``take`` runs the successor in the slot,
        ``release`` frees it untaken."""
        if not self.config.eager or not self._fetching.is_set() or self._urgent:
            return None
        if self._slots.locked():
            return None
        await self._slots.acquire()  # free: at once, or a turn later behind a woken waiter

        def take(task: Task, carried: Carried, leased: VersionedStep) -> None:
            handler = asyncio.create_task(
                self._run_in_slot(_Handoff(self, [(task, carried, leased)]))
            )
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)

        return HandOn(self.id, self.config.lease_ttl, take, self._slots.release)

    async def _take(
        self, task: Task, carried: Carried | None, *, urgent: bool = False, promised: bool = False
    ) -> None:
        self._urgent += urgent
        try:
            await self._slots.acquire(promised=promised)
        except BaseException:  # stopping: its queued copy runs it
            self.context.dispatch.forget(task)
            raise
        finally:
            self._urgent -= urgent
        await self._run_in_slot(_Handoff(self, [(task, carried, None)]))

    async def _run_in_slot(self, handoff: _Handoff) -> None:
        """Run what was handed to a slot this task holds, then free the slot."""
        try:
            _handoff.set(handoff)
            await self._run_handed_on(handoff, copy_context())
        finally:
            self._slots.release()

    async def _run_handed_on(self, handoff: _Handoff, clean: Context) -> None:
        """Run the tasks handed on to this slot, one after another (each may hand on one),
        each in the context the slot began with (``clean``): a step whose node or hook left a
        context variable set does not pass it on, as the steps after it run in a task of their
        own with a copy of ``clean``."""
        ended = await self._run_while_clean(handoff, clean)
        while not ended:
            fresh = self._run_while_clean(handoff, clean)
            ended = await asyncio.create_task(fresh, context=clean.copy())
        for task, carried, leased in handoff.tasks:  # stopping
            if leased is not None and carried is not None:
                await self._give_back(task, carried, leased)
            else:  # its queued copy runs it
                self.context.dispatch.forget(task)

    async def _run_while_clean(self, handoff: _Handoff, clean: Context) -> bool:
        """Run handed-on tasks while this task's context is ``clean``; False if a step left
        it changed with tasks still to run."""
        while handoff.tasks and self._fetching.is_set():
            if copy_context() != clean:
                return False
            task, carried, leased = handoff.tasks.pop()
            try:
                if leased is not None and carried is not None:
                    await self._run_leased(task, carried, leased)
                    continue  # never published: no queued copy to drop
                await self._run_taken(task, carried)
            except _DeadLetter as exc:  # its queued copy is dead-lettered with the reason
                log.warning("not running %s/%s: %s", task.execution_id, task.node_id, exc)
            except Exception as exc:
                reraise_if_cancelling(exc)
                log.exception("eager run of %s/%s failed", task.execution_id, task.node_id)
        return True

    async def _run_taken(self, task: Task, carried: Carried | None) -> None:
        """Run a task this process published and a worker here took (``LocalDispatch.offer``):
        from now on its queued copy is dropped unread should a worker here receive it, unless
        this run ends in an error (then the copy runs it, or dead-letters it with the reason).
        A copy dropped while the run goes on leaves the step to this run; should the run fail
        after that, the step is still on the agenda, and the recovery sweep finishes it."""
        try:
            if carried is None or not await self._start_carried(task, carried):
                await self._process(task)
        except BaseException:
            self.context.dispatch.forget(task)
            raise

    async def _start_carried(self, task: Task, carried: Carried) -> bool:
        """Run a successor with what its predecessor carried, leased in one conditional write
        (``start_fresh``) instead of reading the execution first. False if that does not
        apply (it started elsewhere, the execution is final or paused, its deadline passed):
        then the task is processed as usual."""
        record, now = carried.record, self.context.clock()
        if task.generation != record.generation or record.past_deadline(now):
            return False
        started = StepRecord.first_attempt(task.node_id, self.id, self.config.lease_ttl, now)
        version = await self.persistence.start_fresh(record.execution_id, started)
        if version is None:
            return False
        await self._run_leased(task, carried, version)
        return True

    async def _run_leased(self, task: Task, carried: Carried, leased: VersionedStep) -> None:
        """Run a successor whose first attempt is already leased to this worker."""
        record = carried.record
        lease = StepLease(self.persistence, record.execution_id, leased, self.config.lease_ttl)
        failpoint("after-lease")
        await self._run(record, carried.graph, lease, task, carried.snapshot)

    async def _give_back(self, task: Task, carried: Carried, leased: VersionedStep) -> None:
        """A successor leased to this worker that it will not run (it is stopping): hand it
        back, due at once, and enqueue it (else the sweep would, once this worker is gone)."""
        record = carried.record
        lease = StepLease(self.persistence, record.execution_id, leased, self.config.lease_ttl)
        try:
            await lease.release(f"worker {self.id} stopped")
            await self.scheduler.enqueue(record, [task.node_id], "requeued")
        except Exception as exc:
            reraise_if_cancelling(exc)
            log.warning("could not hand back %s/%s: %r", record.execution_id, task.node_id, exc)

    @property
    def free_slots(self) -> int:
        """Slots not running a task; none while the worker stops or when it does not take
        tasks eagerly."""
        if not self.config.eager or not self._fetching.is_set():
            return 0
        return max(self.config.concurrency - len(self._handlers), 0)

    async def _keep_alive(self) -> None:
        """Renew the liveness key, with the slots free at the moment (a hint for the
        doorbells of other processes); the sweep takes a worker without one for dead."""
        ttl = self.config.liveness_ttl
        while True:
            await asyncio.sleep(ttl / 4)
            try:
                await self.persistence.touch_worker(self.id, ttl, self.free_slots)
            except Exception as exc:
                reraise_if_cancelling(exc)
                log.warning("could not renew the liveness of %s: %r", self.id, exc)

    # -- handling -----------------------------------------------------------------------------

    async def _handle(self, item: QueuedTask) -> None:
        """Run a delivered task, settle its delivery, then any successor it handed on."""
        handoff = _Handoff(self)
        _handoff.set(handoff)
        clean = copy_context()
        await self._deliver(item)
        await self._run_handed_on(handoff, clean)

    async def _deliver(self, item: QueuedTask) -> None:
        try:
            if item.task is None:
                raise _DeadLetter(item.problem or "undecodable task")
            carried = self.context.dispatch.carried(item.task)
            if carried is None or not await self._start_carried(item.task, carried):
                await self._process(item.task)
        except _DeadLetter as exc:
            log.warning("dead-lettering task: %s", exc)
            task = item.task
            event = DeadLettered(
                reason=str(exc),
                execution_id=task.execution_id if task else None,
                step_id=task.node_id if task else None,
            )
            self.context.hooks.dead_lettered(event)
            await _settle(self.queue.dead_letter(item.delivery, str(exc)))
            return
        except Exception as exc:
            reraise_if_cancelling(exc)  # stopping: leave the delivery unacked
            log.exception("task failed on infrastructure; redelivering")
            reason = f"worker error: {type(exc).__name__}: {exc}"[:500]
            await _settle(item.delivery.nack(requeue=True, reason=reason))
            return
        failpoint("before-ack")
        await _settle(item.ack())

    async def _process(self, task: Task) -> None:
        eid, node_id, now = task.execution_id, task.node_id, self.context.clock()
        view = await self._run_if_fresh(task, now)
        if view is None:
            return
        record = view.record
        if record is None:
            raise _DeadLetter(f"unknown execution {eid!r}")
        if view.final is not None or task.generation < record.generation:
            _check_step(self.engine, record, node_id)  # moot, unless it can never run anywhere
            if view.final is not None and view.on_agenda:  # its finalizer may not have told
                await self.scheduler.announce(record, view.final)
            return
        graph = await self._graph(record, node_id)
        if graph is None:
            return
        step = view.step.record if view.step else None
        if step is not None and step.status == "completed":
            if view.on_agenda and not self._just_committed(task, step, now):
                await self.scheduler.advance(record, graph, step)  # its advance was cut short
        elif view.step is not None and view.step.record.status == "waiting":
            await self._finish_waiting(record, graph, view.step, paused=view.paused)
        elif step is not None and not step.due_at(now):
            return  # done, held under a lease (the sweep reclaims expired ones), or not yet due
        elif not await self._expired(record, now) and not view.paused:
            lease = await acquire_lease(
                self.persistence,
                eid,
                node_id,
                view.step,
                owner=self.id,
                ttl=self.config.lease_ttl,
                now=now,
            )
            if lease is not None:
                failpoint("after-lease")
                await self._run(record, graph, lease, task)

    async def _run_if_fresh(self, task: Task, now: float) -> TaskView | None:
        """Read what the step needs and, in the same conditional write, lease it if it has no
        record yet, the common case (``lease_or_view``); run it and return None, or return the
        view for ``_process`` to act on. A step leased that may not run here after all (this
        worker lacks its workflow, or the deadline passed) is first unleased, so ``_process``
        deals with it as before. When this process ran a step of the execution before, the same
        call reads the records of the step's ancestors (``recent``): its view, if the guessed
        definition is the record's."""
        eid, node_id = task.execution_id, task.node_id
        started = StepRecord.first_attempt(node_id, self.id, self.config.lease_ttl, now)
        guess, upstream = self.context.recent.guess(eid, node_id)
        persistence = self.persistence
        leased, view = await persistence.lease_or_view(eid, task.generation, started, upstream)
        if leased is None:
            return view
        record = view.record
        graph = None if record is None else self._runnable_graph(record, node_id)
        if record is None or graph is None or record.past_deadline(now):
            await persistence.unstart(eid, leased)
            return view
        lease = StepLease(persistence, eid, leased, self.config.lease_ttl)
        failpoint("after-lease")
        snapshot = None  # the view is read in _run, unless the guess read it with the lease
        if graph is guess:
            snapshot = Snapshot.read(record, view.upstream)
        await self._run(record, graph, lease, task, snapshot)
        return None

    def _just_committed(self, task: Task, step: StepRecord, now: float) -> bool:
        """A scheduled task's copy arriving while the step's own worker is still advancing it
        (resume, recovery and the sweep's tasks always finish the advance)."""
        finished = step.finished_at if step.finished_at is not None else now
        return task.reason == "scheduled" and now - finished < self.config.settle_time

    def _runnable_graph(self, record: ExecutionRecord, node_id: str) -> Graph | None:
        """The definition the execution began on, if this worker holds it and it has the step
        (else None: then ``_graph`` says why)."""
        try:
            graph = self.engine.graph(record.workflow_id)
        except UnknownWorkflow:
            return None
        ok = graph.version == record.graph_version and node_id in graph.nodes
        return graph if ok else None

    async def _graph(self, record: ExecutionRecord, node_id: str) -> Graph | None:
        """The definition the execution began on; None when this worker does not hold it."""
        workflow = record.workflow_id
        try:
            graph = self.engine.graph(workflow)
        except UnknownWorkflow:
            await self._unrunnable(record, f"no worker holds workflow {workflow!r}")
            return None
        if graph.version != record.graph_version:
            problem = (
                f"execution began on version {record.graph_version} of workflow {workflow!r}; "
                f"workers hold version {graph.version}"
            )
            await self._unrunnable(record, problem)
            return None
        if node_id not in graph.nodes:
            raise _DeadLetter(f"workflow {workflow!r} has no step {node_id!r}")
        return graph

    async def _unrunnable(self, record: ExecutionRecord, problem: str) -> None:
        """Leave the task for a compatible worker; past the grace period, fail the execution."""
        now = self.context.clock()
        since = await self.persistence.mark_unrunnable(record.execution_id, now)
        grace = self.config.incompatible_grace
        if now - since < grace:
            log.warning("cannot run %s here (%s); leaving it", record.execution_id, problem)
            return
        error = f"{problem} (no compatible worker for {grace:g}s)"
        await self.scheduler.finalize(record, FinalStatus.failed(error))

    async def _expired(self, record: ExecutionRecord, now: float) -> bool:
        if not record.past_deadline(now):
            return False
        await self.scheduler.finalize(record, FinalStatus.timed_out(record.options.timeout))
        return True

    # -- running a step -----------------------------------------------------------------------

    async def _run(
        self,
        record: ExecutionRecord,
        graph: Graph,
        lease: StepLease,
        task: Task,
        snapshot: Snapshot | None = None,
    ) -> None:
        eid, step = record.execution_id, lease.record
        self.context.recent.remember(eid, graph)
        if snapshot is None:
            snapshot = await read_view(self.persistence, record, graph, step.node_id)
        node = graph.nodes[step.fallback or step.node_id]
        ctx = NodeContext(
            execution_id=eid,
            node=node,
            state=dict(snapshot.state),
            outputs=dict(snapshot.outputs),
            attempt=step.current_attempt,
            idempotency_key=f"{eid}/{step.node_id}",
        )
        started = self.context.clock()
        self.context.hooks.step_started(
            StepStarted(
                execution_id=eid,
                workflow_id=record.workflow_id,
                step_id=step.node_id,
                attempt=step.current_attempt,
                worker_id=self.id,
                dispatch_latency=max(started - task.enqueued_at, 0.0),
                tokens=record.options.tokens,
            )
        )
        outcome: StepOutcomeName = "lease_lost"
        reported: list[StepOutcomeName] = []  # the step's end, reported once, as it is recorded

        def report(name: StepOutcomeName) -> None:
            reported.append(name)
            self._step_finished(record, step, name, started)

        try:
            if node.type in (SUBFLOW, LOOP):
                start = start_loop if node.type == LOOP else start_child
                await start(self.context, record, lease, ctx)
                outcome = "waiting"
                return
            taken = None
            if node.type == WAIT:
                taken = await park_or_take(self.context, record, lease, node)
                outcome = "waiting"
            else:
                taken = await self._execute(
                    graph, lease, ctx, is_fallback=step.fallback is not None
                )
                outcome = "cancelled"
            if taken is not None:
                failpoint("before-commit")
                commit = self.committer.commit
                hand_on = self._hand_on()
                outcome = await commit(
                    record, graph, lease, taken, snapshot, recorded=report, hand_on=hand_on
                )
        except LeaseLost:
            log.warning("result of %s/%s discarded: its lease moved", eid, step.node_id)
        except asyncio.CancelledError:
            outcome = "released"
            raise
        finally:
            if not reported:
                self._step_finished(record, step, outcome, started)

    def _step_finished(
        self, record: ExecutionRecord, step: StepRecord, outcome: StepOutcomeName, started: float
    ) -> None:
        event = StepFinished(
            execution_id=record.execution_id,
            workflow_id=record.workflow_id,
            step_id=step.node_id,
            attempt=step.current_attempt,
            worker_id=self.id,
            outcome=outcome,
            duration=max(self.context.clock() - started, 0.0),
        )
        self.context.hooks.step_finished(event)

    async def _execute(
        self, graph: Graph, lease: StepLease, ctx: NodeContext, *, is_fallback: bool
    ) -> StepOutcome | None:
        """Run the node under heartbeats; None if it was cancelled because the execution ended
        or the lease was lost. The node runs in this task (a task of its own per step cost a
        sixth of an embedded step's CPU): ``_cancel`` cancels this task while the node runs,
        and the cancel is taken back here (``uncancel``) so the slot goes on; a cancel from
        outside (the worker stopping) still ends the task, after the lease is released. A node
        that swallows the cancel of the execution's end and returns is cancelled all the same:
        what it returned is not recorded."""
        key = (ctx.execution_id, lease.record.node_id)
        this = asyncio.current_task()
        assert this is not None  # steps run in the worker's handler tasks
        self._running[key] = this
        self._heartbeats.hold(lease, lambda: self._cancel(key, _LEASE_LOST))
        try:
            outcome = await self.executor.run(graph, ctx, is_fallback=is_fallback)
        except asyncio.CancelledError:
            self._running.pop(key, None)  # no cancel of the step reaches what follows
            reason = self._take_back(key, this)
            if reason is None or this.cancelling():  # the worker is stopping: hand it back
                await asyncio.shield(lease.release(f"worker {self.id} stopped"))
                raise
            if reason == _EXECUTION_FINAL:
                await self._settle_cancelled(lease)
            return None
        finally:
            self._heartbeats.drop(lease)
            self._running.pop(key, None)
            swallowed = self._take_back(key, this)  # why, if the node returned all the same
        if swallowed == _EXECUTION_FINAL:
            await self._settle_cancelled(lease)
            return None
        return outcome

    def _cancel(self, key: _Key, reason: str) -> None:
        """Cancel the step ``key`` running here (again, if its node swallowed the last one)."""
        running = self._running.get(key)
        if running is not None:
            _, times = self._cancelled.get(key, (reason, 0))
            self._cancelled[key] = (reason, times + 1)
            running.cancel()

    def _take_back(self, key: _Key, this: asyncio.Task[Any]) -> str | None:
        """Take back the cancels ``_cancel`` made of step ``key`` (its task runs on); why the
        last was made, None if none was."""
        reason, times = self._cancelled.pop(key, (None, 0))
        for _ in range(times):
            this.uncancel()
        return reason

    async def _settle_cancelled(self, lease: StepLease) -> None:
        with contextlib.suppress(LeaseLost):
            await lease.swap(lease.record.cancel(self.context.clock()))

    async def _finish_waiting(
        self, record: ExecutionRecord, graph: Graph, current: VersionedStep, *, paused: bool
    ) -> None:
        """Complete a waiting step whose wait is over or whose child is final (or move a loop
        on to its next iteration)."""
        step, node = current.record, graph.nodes[current.record.node_id]
        if step.awaiting is not None:
            now = self.context.clock()
            outcome = await wait_outcome(self.persistence, record.execution_id, node, step, now)
        elif node.type == LOOP:
            ttl = self.config.lease_ttl
            outcome = await loop_outcome(
                self.context, record, graph, current, paused=paused, lease_ttl=ttl
            )
        else:
            outcome = await child_outcome(self.persistence, graph, step)
        if outcome is None:
            return
        held = StepLease(self.persistence, record.execution_id, current, self.config.lease_ttl)
        snapshot = await read_view(self.persistence, record, graph, step.node_id)
        with contextlib.suppress(LeaseLost):  # another worker recorded it first
            await self.committer.commit(record, graph, held, outcome, snapshot)

    # -- watching for cancellation ------------------------------------------------------------

    async def _watch(self) -> None:
        """Cancel running steps of executions that became final (cancelled, failed, timed out)."""
        while True:
            await asyncio.sleep(self.config.watch_interval)
            try:
                await self._cancel_finished()
            except Exception as exc:
                reraise_if_cancelling(exc)
                log.warning("watcher could not read final statuses: %r", exc)

    async def _cancel_finished(self) -> None:
        keys = list(self._running)
        if not keys:
            return
        finals = await self.persistence.finals([eid for eid, _ in keys])
        for key, final in zip(keys, finals, strict=True):
            if final is not None:
                self._cancel(key, _EXECUTION_FINAL)


async def _settle(settling: Awaitable[None]) -> None:
    """Ack/nack/dead-letter. If that fails (say the partition moved in a rebalance) the message
    is redelivered; the outcome is already recorded, so the copy changes nothing."""
    try:
        await settling
    except BrokerError as exc:
        log.warning("could not settle a delivery (%s); it will be redelivered", exc)


def _check_step(engine: Engine, record: ExecutionRecord, node_id: str) -> None:
    """Dead-letter a task naming a step that the execution's workflow does not have."""
    with contextlib.suppress(UnknownWorkflow):
        graph = engine.graph(record.workflow_id)
        if graph.version == record.graph_version and node_id not in graph.nodes:
            raise _DeadLetter(f"workflow {record.workflow_id!r} has no step {node_id!r}")


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
