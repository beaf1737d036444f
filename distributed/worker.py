"""``Worker``: takes tasks from the queue and runs steps, ``concurrency`` at a time.

For each task: dead-letter it if it names an unknown execution, workflow or step; drop it if
the execution is final or paused, or the step is done, held under a live lease, or a retry not
yet due; otherwise take the step's lease, run the node with heartbeats, commit the outcome in
one fenced compare-and-set, advance the execution, and only then ack. A crash anywhere before the
ack redelivers the task, and every stage is idempotent: steps are at-least-once, transitions
exactly-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from mq import BrokerError
from orchestration import Engine, Graph, NodeContext, UnknownWorkflow

from .commit import StepCommitter
from .errors import LeaseLost
from .lease import StepLease, acquire_lease
from .models import ExecutionRecord, FinalStatus, StepRecord, Task
from .persistence import VersionedStep, WorkflowPersistence
from .queue import QueuedTask, TaskConsumer, TaskQueue
from .scheduler import Scheduler, execution_state
from .steps import StepExecutor, StepOutcome
from .subflow import child_outcome, start_child
from .timebox import reraise_if_cancelling, within

__all__ = ["Worker", "WorkerConfig"]

log = logging.getLogger(__name__)

_Key = tuple[str, str]
_EXECUTION_FINAL, _LEASE_LOST = "execution final", "lease lost"


@dataclass(frozen=True, kw_only=True)
class WorkerConfig:
    """Worker settings, in seconds.

    ``lease_ttl``: how long a step's lease lasts without a heartbeat (a dead worker's steps are
    re-run after it). ``watch_interval``: how often running steps look for a final status, so
    ``cancel()`` reaches running code within about that long. ``grace_period``: how long a
    graceful stop lets running steps finish before cancelling them; ``close_timeout``: how long
    each later stop phase (cancelled steps releasing leases, closing the consumer) may take.
    """

    concurrency: int = 4
    group: str = "flowloom-workers"
    lease_ttl: float = 10.0
    heartbeat_interval: float | None = None  # default: lease_ttl / 3
    watch_interval: float = 0.25
    grace_period: float = 10.0
    close_timeout: float = 5.0
    fetch_retry_interval: float = 1.0  # after the broker failed a fetch

    @property
    def heartbeat(self) -> float:
        return self.heartbeat_interval or self.lease_ttl / 3


class _DeadLetter(Exception):
    """The task can never run: dead-letter it with this reason."""


class Worker:
    """Consumes tasks from a ``TaskQueue`` and runs the steps they name."""

    def __init__(
        self,
        queue: TaskQueue,
        persistence: WorkflowPersistence,
        engine: Engine,
        *,
        config: WorkerConfig | None = None,
        executor: StepExecutor | None = None,
    ) -> None:
        self.queue = queue
        self.persistence = persistence
        self.engine = engine
        self.config = config or WorkerConfig()
        self.executor = executor or StepExecutor(engine)
        self.scheduler = Scheduler(persistence, queue)
        self.committer = StepCommitter(self.scheduler)
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self._handlers: set[asyncio.Task[None]] = set()
        self._running: dict[_Key, asyncio.Task[StepOutcome]] = {}
        self._cancelled: dict[_Key, str] = {}  # running steps we cancelled, and why
        self._fetching = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        consumer = await self.queue.consumer(self.config.group)
        self._fetching.set()
        self._tasks = [
            asyncio.create_task(self._consume(consumer), name=f"consume-{self.id}"),
            asyncio.create_task(self._watch(), name=f"watch-{self.id}"),
        ]

    async def stop(self, grace_period: float | None = None) -> None:
        """Stop in phases: stop fetching; let running steps finish for up to the grace period;
        cancel the rest and release their leases; close the consumer."""
        grace = self.config.grace_period if grace_period is None else grace_period
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

    # -- fetching -----------------------------------------------------------------------------

    async def _consume(self, consumer: TaskConsumer) -> None:
        try:
            while self._fetching.is_set():
                await self._slots.acquire()
                try:
                    item = await self._next(consumer)
                except BrokerError as exc:  # the broker blipped: keep the worker alive
                    self._slots.release()
                    log.warning("fetching tasks failed (%s); retrying", exc)
                    await asyncio.sleep(self.config.fetch_retry_interval)
                    continue
                if item is None:
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

    # -- handling -----------------------------------------------------------------------------

    async def _handle(self, item: QueuedTask) -> None:
        try:
            if item.task is None:
                raise _DeadLetter(item.problem or "undecodable task")
            await self._process(item.task)
        except _DeadLetter as exc:
            log.warning("dead-lettering task: %s", exc)
            await _settle(self.queue.dead_letter(item.delivery, str(exc)))
            return
        except Exception as exc:
            reraise_if_cancelling(exc)  # stopping: leave the delivery unacked
            log.exception("task failed on infrastructure; redelivering")
            await _settle(item.delivery.nack(requeue=True, reason="worker error"))
            return
        await _settle(item.ack())

    async def _process(self, task: Task) -> None:
        eid, node_id = task.execution_id, task.node_id
        view = await self.persistence.task_view(eid, node_id)
        record, graph = self._definition(task, view.record)
        if view.final is not None:
            return
        current = view.step
        step = current.record if current else None
        if step is not None and step.status == "completed":
            await self.scheduler.advance(eid, graph, step)  # finish what a crash interrupted
        elif current is not None and current.record.status == "waiting":
            await self._finish_subflow(record, graph, current)
        elif step is not None and (step.terminal or _not_due(step)):
            return
        elif not await self._expired(record) and not view.paused:
            lease = await acquire_lease(
                self.persistence, eid, node_id, current, owner=self.id, ttl=self.config.lease_ttl
            )
            if lease is not None:
                await self._run(record, graph, lease)

    def _definition(
        self, task: Task, record: ExecutionRecord | None
    ) -> tuple[ExecutionRecord, Graph]:
        if record is None:
            raise _DeadLetter(f"unknown execution {task.execution_id!r}")
        try:
            graph = self.engine.graph(record.workflow_id)
        except UnknownWorkflow as exc:
            raise _DeadLetter(f"unknown workflow {record.workflow_id!r}") from exc
        if task.node_id not in graph.nodes:
            raise _DeadLetter(f"workflow {record.workflow_id!r} has no step {task.node_id!r}")
        if graph.version != record.graph_version:
            log.warning(
                "workflow %s changed since execution %s began", graph.id, record.execution_id
            )
        return record, graph

    async def _expired(self, record: ExecutionRecord) -> bool:
        deadline = record.deadline
        if deadline is None or time.time() < deadline:
            return False
        error = f"execution deadline of {record.options.timeout}s passed"
        await self.scheduler.finalize(
            record.execution_id, FinalStatus(status="timed_out", error=error)
        )
        return True

    # -- running a step -----------------------------------------------------------------------

    async def _run(self, record: ExecutionRecord, graph: Graph, lease: StepLease) -> None:
        eid, node_id = record.execution_id, lease.record.node_id
        state, outputs = execution_state(record, await self.persistence.steps(eid))
        node = graph.nodes[node_id]
        ctx = NodeContext(
            execution_id=eid,
            node=node,
            state=state,
            outputs=outputs,
            attempt=lease.record.attempt,
            idempotency_key=f"{eid}/{node_id}",
        )
        try:
            if node.type == "subflow":
                await start_child(self.engine, self.scheduler, record, lease, ctx)
                return
            outcome = await self._execute(graph, lease, ctx)
            if outcome is not None:
                await self.committer.commit(record, graph, lease, outcome, state)
        except LeaseLost:
            log.warning("result of %s/%s discarded: its lease moved", eid, node_id)

    async def _execute(
        self, graph: Graph, lease: StepLease, ctx: NodeContext
    ) -> StepOutcome | None:
        """Run the node under heartbeats; None if it was cancelled because the execution ended."""
        key = (ctx.execution_id, ctx.node.id)
        running = asyncio.create_task(self.executor.run(graph, ctx))
        self._running[key] = running
        beat = asyncio.create_task(
            lease.heartbeat(self.config.heartbeat, lambda: self._cancel(key, _LEASE_LOST))
        )
        try:
            return await running
        except asyncio.CancelledError:
            reason = self._cancelled.get(key)
            if reason is None:  # the worker is stopping: hand the step back
                await asyncio.shield(lease.release(f"worker {self.id} stopped"))
                raise
            if reason == _EXECUTION_FINAL:
                await self._settle_cancelled(lease)
            return None
        finally:
            beat.cancel()
            self._running.pop(key, None)
            self._cancelled.pop(key, None)

    def _cancel(self, key: _Key, reason: str) -> None:
        running = self._running.get(key)
        if running is not None and not running.done():
            self._cancelled[key] = reason
            running.cancel()

    async def _settle_cancelled(self, lease: StepLease) -> None:
        cancelled = lease.record.model_copy(
            update={"status": "cancelled", "lease": None, "finished_at": time.time()}
        )
        with contextlib.suppress(LeaseLost):
            await lease.swap(cancelled)

    async def _finish_subflow(
        self, record: ExecutionRecord, graph: Graph, current: VersionedStep
    ) -> None:
        outcome = await child_outcome(self.persistence, graph, current.record)
        if outcome is None:
            return
        held = StepLease(self.persistence, record.execution_id, current, self.config.lease_ttl)
        state, _ = execution_state(record, await self.persistence.steps(record.execution_id))
        with contextlib.suppress(LeaseLost):  # another worker recorded it first
            await self.committer.commit(record, graph, held, outcome, state)

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


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _not_due(step: StepRecord) -> bool:
    """Held by another worker under a live lease, or a retry whose delay has not passed."""
    now = time.time()
    if step.status == "running":
        return not step.lease_expired(now)
    return step.not_before is not None and step.not_before > now
