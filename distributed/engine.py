"""``DistributedEngine``: submit, observe and control executions that workers run.

There is no orchestrator process: ``execute_async`` writes the execution record and enqueues the
start steps, and whichever worker finishes a step schedules the next ones. The engine object is
a client; it may exit after submitting. Executions with ``ExecutionOptions(distributed=False)``
run in this process on the local engine and are recorded in the same persistence.

Ids and inputs are checked where they enter: every method taking an execution id raises
``InvalidExecutionId`` for one that breaks the rules of ``distributed.ids`` (before touching the
store), ``execute_async`` raises ``InputsTooLarge`` for inputs over
``EngineConfig.limits.max_inputs_bytes`` and ``InvalidJSONValue`` for inputs that are not JSON
(nothing is stored), and ``signal`` raises ``InvalidJSONValue`` for a payload that is not JSON.
Inputs and payloads are kept in the JSON normal form of ``orchestration.jsonvalue``, as the
local engine keeps them: what a store cannot write, or could write but never read back (NaN,
a set, bytes, nesting past ``MAX_JSON_DEPTH``), is refused, never changed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from orchestration import Engine, SignalRefused, UnknownWorkflow
from orchestration.jsonvalue import to_json_value
from orchestration.waits import waits_of

from .context import RuntimeContext
from .errors import ExecutionExists, ExecutionFinal, ExecutionNotFound, WaitTimeout
from .events import ExecutionEvent, read_events
from .final_watch import sleep_unless_set
from .hooks import ExecutionControl, Hooks
from .ids import check_execution_id
from .limits import Limits, check_inputs, check_signal
from .local import run_locally, submit_locally
from .models import (
    ExecutionOptions,
    ExecutionRecord,
    ExecutionSnapshot,
    FinalStatus,
    SignalRecord,
)
from .persistence import KVPersistence, VersionedStep, WorkflowPersistence
from .queue import TaskQueue
from .timebox import cancelling

__all__ = ["DistributedEngine", "EngineConfig", "default_engine_config"]


@pydantic_dataclass(frozen=True, kw_only=True, config=ConfigDict(extra="forbid"))
class EngineConfig:
    """Client settings: how often ``wait`` polls (it backs off to ``max_poll_interval``), and
    the size ``limits`` that submissions are checked against (``limits.max_inputs_bytes``)."""

    poll_interval: float = Field(default=0.02, gt=0)
    max_poll_interval: float = Field(default=0.5, gt=0)
    limits: Limits = Field(default_factory=Limits)


def default_engine_config() -> EngineConfig:
    """The defaults: ``wait`` polls every 20 ms, backing off to 0.5 s; default ``Limits``."""
    return EngineConfig()


class DistributedEngine:
    """Runs workflows of ``local_engine`` on workers that share ``queue`` and ``persistence``."""

    def __init__(
        self,
        local_engine: Engine,
        queue: TaskQueue,
        persistence: WorkflowPersistence,
        config: EngineConfig | None = None,
        *,
        hooks: Hooks | None = None,
    ) -> None:
        self._setup(RuntimeContext.build(local_engine, queue, persistence, hooks), config)

    @classmethod
    def from_context(
        cls, context: RuntimeContext, config: EngineConfig | None = None
    ) -> DistributedEngine:
        """An engine sharing ``context`` (and its hooks) with the runtime's other parts."""
        engine = cls.__new__(cls)
        engine._setup(context, config)
        return engine

    def _setup(self, context: RuntimeContext, config: EngineConfig | None) -> None:
        self.context = context
        self.local_engine = context.engine
        self.queue = context.queue
        self.persistence = context.persistence
        self.config = config or EngineConfig()
        self.scheduler = context.scheduler
        self._local_runs: dict[str, asyncio.Task[None]] = {}

    async def execute_async(
        self,
        workflow_id: str,
        inputs: Mapping[str, Any] | None = None,
        options: ExecutionOptions | None = None,
        *,
        execution_id: str | None = None,
    ) -> str:
        """Submit an execution and return its id at once. Raises ``UnknownWorkflow`` if the
        workflow is not registered, ``ExecutionExists`` if ``execution_id`` was used before,
        ``InvalidExecutionId`` for an id that breaks the rules of ``distributed.ids``,
        ``InputsTooLarge`` for inputs over ``limits.max_inputs_bytes``, ``InvalidJSONValue``
        for inputs that are not JSON (keys that are not strings are written as JSON writes
        them, as the local engine does); nothing is stored then."""
        if execution_id is not None:
            check_execution_id(execution_id, new=True)
        options = options or ExecutionOptions()
        graph = self.local_engine.graph(workflow_id)
        given = dict(inputs or {})
        check_inputs(self.config.limits, workflow_id, given)  # first: cheap at any size
        given = to_json_value(given, "inputs")
        record = ExecutionRecord(
            execution_id=execution_id or uuid.uuid4().hex,
            workflow_id=workflow_id,
            graph_version=graph.version,
            inputs=given,
            options=options,
        )
        if options.distributed:
            if not await self.scheduler.start(record, graph):
                raise ExecutionExists(record.execution_id)
        else:
            if not await submit_locally(self.context, record):
                raise ExecutionExists(record.execution_id)
            task = asyncio.create_task(run_locally(self.context, record))
            self._local_runs[record.execution_id] = task
            task.add_done_callback(lambda _: self._local_runs.pop(record.execution_id, None))
        return record.execution_id

    async def execute_sync(
        self,
        workflow_id: str,
        inputs: Mapping[str, Any] | None = None,
        options: ExecutionOptions | None = None,
        *,
        timeout: float | None = None,
    ) -> ExecutionSnapshot:
        """Submit and wait for the final status."""
        execution_id = await self.execute_async(workflow_id, inputs, options)
        return await self.wait(execution_id, timeout=timeout)

    async def wait(self, execution_id: str, timeout: float | None = None) -> ExecutionSnapshot:
        """Poll until the execution is final (woken at once when it is told final, here or
        in another process: see ``distributed.final_watch``); ``WaitTimeout`` after ``timeout``
        seconds, ``ExecutionNotFound`` if there is no such execution (or retention removed it).
        Cancelling the waiter ends the wait even if a store client swallowed the
        ``CancelledError`` (Python 3.11's ``asyncio.wait_for``, which redis-py uses, can)."""
        check_execution_id(execution_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self.config.poll_interval
        steps = None  # read with the status once told it is final: one round trip, not two
        with self.context.finals.watch(execution_id) as told:
            status = await self._status(execution_id)
            while status[1] is None:
                if cancelling():
                    raise asyncio.CancelledError
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(execution_id, timeout or 0.0)
                await sleep_unless_set(told, self._poll_after(interval, deadline))
                if told.is_set():  # maybe another generation's status: the read says
                    told.clear()
                    status, steps = await self._status_and_steps(execution_id)
                else:
                    status, steps = await self._status(execution_id), None
                interval = min(interval * 1.5, self.config.max_poll_interval)
        return await self._snapshot_of(*status, steps=steps)

    async def _status_and_steps(
        self, execution_id: str
    ) -> tuple[tuple[ExecutionRecord, FinalStatus | None, bool], dict[str, VersionedStep]]:
        """``_status`` and the step records, read side by side (a Redis store sends the two
        reads of one turn in one round trip)."""
        return await asyncio.gather(
            self._status(execution_id), self.persistence.steps(execution_id)
        )

    def _poll_after(self, interval: float, deadline: float | None) -> float:
        """Seconds until ``wait`` reads again: the backoff's ``interval``, or the longest once
        this process hears every final status told (``FinalWatch.hearing``); never past
        ``deadline``."""
        hearing = self.context.finals.hearing
        seconds = self.config.max_poll_interval if hearing else interval
        return seconds if deadline is None else max(min(seconds, deadline - time.monotonic()), 0)

    async def get_execution_status(self, execution_id: str) -> ExecutionSnapshot:
        return await self._snapshot_of(*await self._status(execution_id))

    async def _snapshot_of(
        self,
        record: ExecutionRecord,
        final: FinalStatus | None,
        paused: bool,
        *,
        steps: Mapping[str, VersionedStep] | None = None,
    ) -> ExecutionSnapshot:
        execution_id = record.execution_id
        if steps is None:
            steps = await self.persistence.steps(execution_id)
        snapshot = _snapshot(record, final, steps, paused, self._total_steps(record, steps))
        if record.generation == 1:
            return snapshot
        history = tuple(await self.persistence.history(execution_id))
        return snapshot.model_copy(update={"history": history})

    async def list_executions(
        self, *, status: str | None = None, limit: int = 100
    ) -> list[ExecutionSnapshot]:
        """Snapshots of executions (all, or those with ``status``), up to ``limit``."""
        found: list[ExecutionSnapshot] = []
        async for execution_id in self.persistence.all_executions():
            snapshot = await self.get_execution_status(execution_id)
            if status is None or snapshot.status == status:
                found.append(snapshot)
            if len(found) >= limit:
                break
        return found

    async def cancel(self, execution_id: str) -> bool:
        """Cancel: the status becomes ``cancelled`` (unless already final) and running steps
        are cancelled by their workers within about a second. True if this call cancelled it."""
        record = await self._require(execution_id)
        local = self._local_runs.get(execution_id)
        if local is not None:
            local.cancel()
        _, won = await self.scheduler.finalize(record, FinalStatus.cancelled())
        await self._cancel_children(execution_id)
        return won

    async def signal(
        self,
        execution_id: str,
        event: str,
        payload: Any = None,
        action: str | None = None,
    ) -> None:
        """Complete the wait on ``event``: its output is ``payload``, its routing action
        ``action``. A signal sent before its wait is reached is kept for it. Raises
        ``SignalRefused`` when no wait can take it (no wait on that event, or the wait already
        took a signal or timed out), ``ExecutionFinal`` when the execution is over. A client
        that does not hold the workflow cannot tell an unknown event: the signal is kept.
        A payload over ``limits.max_output_bytes`` raises ``LimitExceeded``, one that is not
        JSON ``InvalidJSONValue`` (nothing sent)."""
        check_signal(self.config.limits, event, payload)
        payload = to_json_value(payload, "signal payload")
        record = await self._require_running(execution_id)
        if not record.options.distributed:  # a local run: signalled in the process running it
            self.local_engine.signal(execution_id, event, payload, action)
            return
        node_id = await self._wait_node(record, event)
        step = None if node_id is None else await self.persistence.step(execution_id, node_id)
        if step is not None and step.record.terminal:
            raise SignalRefused(execution_id, event, f"its wait {node_id!r} already completed")
        sent = SignalRecord(event=event, payload=payload, action=action)
        if not await self.persistence.put_signal(execution_id, sent):
            raise SignalRefused(execution_id, event, "its wait already took a signal")
        step = None if node_id is None else await self.persistence.step(execution_id, node_id)
        if step is not None and step.record.status == "waiting":
            await self.scheduler.enqueue(record, [step.record.node_id], "signalled")

    async def _wait_node(self, record: ExecutionRecord, event: str) -> str | None:
        """The wait node of ``event``: from the definition, or (when this client does not hold
        it) from the step waiting on it, if one does yet."""
        try:
            waits = waits_of(self.local_engine.graph(record.workflow_id))
        except UnknownWorkflow:
            steps = await self.persistence.steps(record.execution_id)
            return next((n for n, v in steps.items() if v.record.awaiting == event), None)
        if event not in waits:
            known = ", ".join(sorted(waits)) or "none"
            raise SignalRefused(record.execution_id, event, f"no wait for it (waits: {known})")
        return waits[event]

    async def time_out(self, execution_id: str) -> bool:
        """Set the status ``timed_out`` now (unless already final); True if this call did."""
        record = await self._require(execution_id)
        timed_out = FinalStatus.timed_out(record.options.timeout)
        _, won = await self.scheduler.finalize(record, timed_out)
        return won

    async def pause(self, execution_id: str) -> None:
        """Start no new step of this execution until ``resume``; running steps finish."""
        record = await self._require_running(execution_id)
        await self.persistence.set_paused(execution_id, True)
        local = self.local_engine.handle(execution_id)  # a local run of this process
        if local is not None:
            local.pause()
        self._control(record, "paused")

    async def resume(self, execution_id: str) -> None:
        """Schedule the ready steps again; a completed step is never re-run."""
        record = await self._require_running(execution_id)
        await self.persistence.set_paused(execution_id, False)
        local = self.local_engine.handle(execution_id)
        if local is not None:
            local.resume()
        await self.scheduler.reschedule(record, "resumed")
        self._control(record, "resumed")

    def _control(self, record: ExecutionRecord, action: Literal["paused", "resumed"]) -> None:
        event = ExecutionControl(
            execution_id=record.execution_id, action=action, generation=record.generation
        )
        self.context.hooks.execution_control(event)

    async def events(
        self, execution_id: str, after: int = 0, follow: bool = False
    ) -> AsyncIterator[ExecutionEvent]:
        """Yield the execution's events (see :mod:`distributed.events`) with offsets above
        ``after``, in order; resume after a disconnect by passing the last offset seen. With
        ``follow`` it waits for new ones and ends after the final status. Raises
        ``ExecutionNotFound`` for an unknown (or expired) execution."""
        await self._require(execution_id)
        persistence = self.persistence
        if not isinstance(persistence, KVPersistence):
            raise TypeError("the event log needs a KVPersistence (a KVStore) behind the engine")

        async def is_final() -> bool:
            return await persistence.final(execution_id) is not None

        events = read_events(
            persistence.store,
            persistence.keys,
            execution_id,
            after=after,
            follow=follow,
            is_final=is_final,
            poll_interval=self.config.poll_interval,
            max_poll_interval=self.config.max_poll_interval,
        )
        async for event in events:
            yield event

    async def close(self) -> None:
        for task in list(self._local_runs.values()):
            task.cancel()
        await asyncio.gather(*self._local_runs.values(), return_exceptions=True)
        await self.context.flush_events()
        await self.persistence.flush_unscheduled()
        await self.context.finals.close()

    async def _require(self, execution_id: str) -> ExecutionRecord:
        record = await self.persistence.record(check_execution_id(execution_id))
        if record is None:
            raise ExecutionNotFound(execution_id)
        return record

    async def _status(self, execution_id: str) -> tuple[ExecutionRecord, FinalStatus | None, bool]:
        """The execution's record, final status and whether it is paused (not once final),
        in one read; ``ExecutionNotFound`` if there is no such execution."""
        view = await self.persistence.status_view(check_execution_id(execution_id))
        if view.record is None:
            raise ExecutionNotFound(execution_id)
        return view.record, view.final, view.paused and view.final is None

    async def _require_running(self, execution_id: str) -> ExecutionRecord:
        record, final, _ = await self._status(execution_id)
        if final is not None:
            raise ExecutionFinal(execution_id, final.status)
        return record

    async def _cancel_children(self, execution_id: str) -> None:
        for version in (await self.persistence.steps(execution_id)).values():
            child = version.record.child_id
            if child is not None and await self.persistence.final(child) is None:
                await self.cancel(child)

    def _total_steps(self, record: ExecutionRecord, steps: Mapping[str, VersionedStep]) -> int:
        try:
            return len(self.local_engine.graph(record.workflow_id).nodes)
        except UnknownWorkflow:
            return len(steps)


def _snapshot(
    record: ExecutionRecord,
    final: FinalStatus | None,
    steps: Mapping[str, VersionedStep],
    paused: bool,
    total: int,
) -> ExecutionSnapshot:
    records = {node: v.record for node, v in steps.items()}
    awaiting = tuple(s.awaiting for s in records.values() if s.status == "waiting" and s.awaiting)
    running = tuple(n for n, s in records.items() if s.status in ("running", "waiting"))
    status: str
    if final is not None:
        status = final.status
    elif paused:
        status = "paused"
    elif awaiting and all(s.awaiting for s in records.values() if not s.terminal):
        status = "awaiting"  # nothing runs: only waits for signals are open
    else:
        status = "running" if records else "pending"
    return ExecutionSnapshot(
        execution_id=record.execution_id,
        workflow_id=record.workflow_id,
        status=status,
        completed_steps=tuple(n for n, s in records.items() if s.status == "completed"),
        running_steps=running,
        total_steps=total,
        outputs=final.outputs if final else {},
        error=final.error if final else None,
        failed_step=final.failed_step if final else None,
        created_at=record.created_at,
        finished_at=final.finished_at if final else None,
        steps=records,
        generation=record.generation,
        awaiting=awaiting,
    )
