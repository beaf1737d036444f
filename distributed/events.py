"""The per-execution event log: what happened to an execution, in order, readable live.

``EventRecorder`` is a lifecycle hook (DESIGN §9) that every ``RuntimeContext`` built with
``RuntimeContext.build`` installs (so it is always on: in the engine's process, in every worker
and in the recovery sweep). It turns hook calls into ``ExecutionEvent`` records and appends them
to the execution's log in the store (``Keys.events``; a store log, see ``store.base``), whose
offsets the store assigns atomically, so several processes append to one log safely.

Hooks are synchronous and must not block, so the recorder only queues an event; a background
task appends the queue ``flush_interval`` (50 ms) after the first event queued, in batches (one
``log_append`` per execution and batch), so a busy worker pays one store call per execution and
interval instead of one per event. A
store error is logged and the batch dropped: the log observes execution, it never breaks it.
Events a process queued but had not appended when it was SIGKILLed are lost; ``flush`` (called
by ``DistributedEngine.close``) appends what is queued.

Event types::

    execution.submitted   execution.final (status, error, failed_step)
    execution.paused      execution.resumed      execution.recovered
    step.started (attempt, worker)   step.finished (outcome completed|fallback, duration)
    step.failed           step.waiting           step.retrying (delay, error)
    step.interrupted (outcome cancelled|lease_lost|released)      step.lease_expired
    step.progress (message, and the data a step passed to ``ctx.emit(message, **data)``)

``ctx.emit`` reaches the log through ``orchestration.context.current_emitter``: the recorder
sets it in ``step_started``, which the worker calls in the task that then starts the attempt
(whose task inherits it), and clears it in ``step_finished``.

Every step event carries the attempt, so events of an attempt that was retried or re-run after a
crash can be told apart from the final attempt's. The log keeps the newest ``max_len`` events
and expires with the execution's retention once the execution is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestration.context import Emitter, current_emitter
from store import KVStore

from .hooks import (
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    Hooks,
    LeaseExpired,
    RetryScheduled,
    StepFinished,
    StepStarted,
)
from .keys import Keys

__all__ = ["DEFAULT_MAX_EVENTS", "EventRecorder", "ExecutionEvent", "read_events"]

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10_000
_BATCH = 200
_STEP_TYPES = {
    "completed": "step.finished",
    "fallback": "step.finished",
    "failed": "step.failed",
    "waiting": "step.waiting",
    "cancelled": "step.interrupted",
    "lease_lost": "step.interrupted",
    "released": "step.interrupted",
}  # "retry" is left to retry_scheduled (step.retrying), which says when and why


@dataclass(frozen=True, kw_only=True)
class ExecutionEvent:
    """One entry of an execution's event log (JSON at rest; ``offset`` is the log's)."""

    type: str
    execution_id: str
    at: float
    step_id: str | None = None
    attempt: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {
            "offset": self.offset,
            "type": self.type,
            "execution_id": self.execution_id,
            "at": self.at,
            "step_id": self.step_id,
            "attempt": self.attempt,
            "data": dict(self.data),
        }

    def encode(self) -> bytes:
        body = self.to_json()
        del body["offset"]  # the store assigns it
        return json.dumps(body, separators=(",", ":"), default=repr).encode()

    @classmethod
    def decode(cls, offset: int, raw: bytes) -> ExecutionEvent:
        body = json.loads(raw)
        return cls(
            type=str(body["type"]),
            execution_id=str(body["execution_id"]),
            at=float(body["at"]),
            step_id=body.get("step_id"),
            attempt=body.get("attempt"),
            data=body.get("data") or {},
            offset=offset,
        )


class EventRecorder(Hooks):
    """Appends lifecycle events to each execution's log in ``store`` (queued, batched)."""

    def __init__(
        self,
        store: KVStore,
        keys: Keys,
        *,
        max_len: int = DEFAULT_MAX_EVENTS,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.05,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.keys = keys
        self.max_len = max_len
        self.retention = retention
        self.clock = clock
        self._queue: list[ExecutionEvent] = []
        self._expire: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()

    # -- hooks ---------------------------------------------------------------------------------

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        data = {"workflow_id": event.workflow_id, "generation": event.generation}
        self.record(event.execution_id, "execution.submitted", data=data)

    def step_started(self, event: StepStarted) -> None:
        data = {"worker_id": event.worker_id}
        self.record(event.execution_id, "step.started", event.step_id, event.attempt, data)
        current_emitter.set(self._emitter(event.execution_id, event.step_id, event.attempt))

    def _emitter(self, execution_id: str, step_id: str, attempt: int) -> Emitter:
        def emit(message: str, data: Mapping[str, Any]) -> None:
            body = {"message": message, **data}
            self.record(execution_id, "step.progress", step_id, attempt, body)

        return emit

    def step_finished(self, event: StepFinished) -> None:
        current_emitter.set(None)
        kind = _STEP_TYPES.get(event.outcome)
        if kind is not None:
            data = {"outcome": event.outcome, "duration": round(event.duration, 6)}
            self.record(event.execution_id, kind, event.step_id, event.attempt, data)

    def retry_scheduled(self, event: RetryScheduled) -> None:
        data = {"delay": event.delay, "error": event.error}
        self.record(event.execution_id, "step.retrying", event.step_id, event.attempt, data)

    def lease_expired(self, event: LeaseExpired) -> None:
        data = {"owner": event.owner, "expiries": event.expiries}
        self.record(event.execution_id, "step.lease_expired", event.step_id, data=data)

    def execution_control(self, event: ExecutionControl) -> None:
        data = {"generation": event.generation}
        self.record(event.execution_id, f"execution.{event.action}", data=data)

    def execution_final(self, event: ExecutionFinished) -> None:
        data = {
            "status": event.status,
            "error": event.error,
            "failed_step": event.failed_step,
            "generation": event.generation,
        }
        self.record(event.execution_id, "execution.final", data=data)
        if self.retention is not None:
            self._expire.add(event.execution_id)

    # -- queue and flush -----------------------------------------------------------------------

    def record(
        self,
        execution_id: str,
        type: str,
        step_id: str | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an event for the log of ``execution_id``; appended by a background task."""
        event = ExecutionEvent(
            type=type,
            execution_id=execution_id,
            at=self.clock(),
            step_id=step_id,
            attempt=attempt,
            data=dict(data or {}),
        )
        self._queue.append(event)
        if self._timer is None:  # drains take turns (a lock), so one may start while one runs
            with contextlib.suppress(RuntimeError):  # no loop here: flush() appends it later
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self.flush_interval, self._start_drain)

    def _start_drain(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def flush(self) -> None:
        """Append every queued event now (and wait for the background append in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        await self._drain()

    async def _drain(self) -> None:
        async with self._lock:  # one drain at a time keeps each process's events in order
            while self._queue:
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
                await self._append(batch)
            expire, self._expire = self._expire, set()
            for execution_id in expire:
                if self.retention is not None:
                    key = self.keys.events(execution_id)
                    await self._guard(self.store.log_expire(key, self.retention))

    async def _append(self, batch: list[ExecutionEvent]) -> None:
        by_execution: dict[str, list[bytes]] = {}
        for event in batch:
            by_execution.setdefault(event.execution_id, []).append(event.encode())
        for execution_id, entries in by_execution.items():
            key = self.keys.events(execution_id)
            await self._guard(self.store.log_append(key, entries, max_len=self.max_len))

    @staticmethod
    async def _guard(call: Any) -> None:
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not write to the event log; events dropped", exc_info=True)


async def read_events(
    store: KVStore,
    keys: Keys,
    execution_id: str,
    *,
    after: int = 0,
    follow: bool = False,
    is_final: Callable[[], Awaitable[bool]] | None = None,
    poll_interval: float = 0.02,
    max_poll_interval: float = 0.5,
    linger: float = 0.25,
    final_grace: float = 2.0,
) -> AsyncIterator[ExecutionEvent]:
    """Yield the events of ``execution_id`` with offsets above ``after``, in order.

    Without ``follow`` it stops at the end of the log. With ``follow`` it polls (backing off from
    ``poll_interval`` to ``max_poll_interval``) until the execution is over: ``linger`` seconds
    with no new event after an ``execution.final`` event while ``is_final()`` holds (the last
    step's own ``step.finished`` follows its execution's final status), or ``final_grace``
    seconds with no event once ``is_final()`` holds (the final event was lost with a killed
    process). A recovered execution goes on past an earlier generation's final event."""
    key, interval = keys.events(execution_id), poll_interval
    final_seen = quiet_since = None
    while True:
        page = await store.log_read(key, after=after)
        for offset, raw in page:
            event = ExecutionEvent.decode(offset, raw)
            after = offset
            yield event
            if event.type == "execution.final":
                final_seen = True
        if page:
            interval, quiet_since = poll_interval, None
            continue
        if not follow:
            return
        if is_final is None or await is_final():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= (linger if final_seen else final_grace):
                return
        else:  # not final (again: a recovered execution goes on)
            final_seen = quiet_since = None
        await asyncio.sleep(min(interval, linger) if final_seen else interval)
        interval = min(interval * 1.5, max_poll_interval)
