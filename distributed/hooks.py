"""Lifecycle hooks: the one seam for everything that observes execution (DESIGN §9).

Subclass ``Hooks`` and override what you need; every method is a no-op by default. The runtime
calls hooks through ``HookSet``, which logs and swallows a hook's error, so an observer can
never break a step. Hooks are called synchronously on the event loop: keep them quick (count,
record, hand off to a queue), never block.

Where each event fires, across a cluster:

- ``execution_submitted``: in the process that created the execution (once).
- ``step_started`` / ``step_finished``: in the worker that ran the attempt (once per attempt).
- ``step_skipped``: in the process whose advance skipped the step (dead-path elimination: no
  edge into it was taken), once per step.
- ``retry_scheduled``: in the worker whose attempt failed and will run again later.
- ``lease_expired``: in the recovery sweep (or worker) that reclaimed a dead worker's step.
- ``dead_lettered``: in the worker that dead-lettered a message.
- ``execution_final``: only in the writer whose final status won: once per execution (and
  generation) across the whole cluster.
- ``execution_control``: in the process that paused, resumed or recovered an execution.
- ``worker_started`` / ``worker_stopped``: in the process the worker runs in, with its slots
  (and, when started, a probe of its consumer's queue lag).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DeadLettered",
    "ExecutionControl",
    "ExecutionFinished",
    "ExecutionSubmitted",
    "HookSet",
    "Hooks",
    "LeaseExpired",
    "RetryScheduled",
    "StepFinished",
    "StepSkipped",
    "StepStarted",
    "WorkerStarted",
    "WorkerStopped",
]

log = logging.getLogger(__name__)

StepOutcomeName = Literal[
    "completed", "failed", "retry", "fallback", "waiting", "cancelled", "lease_lost", "released"
]


@dataclass(frozen=True, kw_only=True)
class ExecutionSubmitted:
    execution_id: str
    workflow_id: str
    generation: int = 1


@dataclass(frozen=True, kw_only=True)
class StepStarted:
    execution_id: str
    workflow_id: str
    step_id: str
    attempt: int
    worker_id: str
    dispatch_latency: float  # seconds from enqueue to start
    tokens: bool = True  # the execution's LLM token events are on (see distributed.events)


@dataclass(frozen=True, kw_only=True)
class StepFinished:
    execution_id: str
    workflow_id: str
    step_id: str
    attempt: int
    worker_id: str
    outcome: StepOutcomeName
    duration: float


@dataclass(frozen=True, kw_only=True)
class StepSkipped:
    execution_id: str
    workflow_id: str
    step_id: str


@dataclass(frozen=True, kw_only=True)
class RetryScheduled:
    execution_id: str
    workflow_id: str
    step_id: str
    attempt: int
    delay: float
    error: str


@dataclass(frozen=True, kw_only=True)
class LeaseExpired:
    execution_id: str
    step_id: str
    owner: str
    expiries: int


@dataclass(frozen=True, kw_only=True)
class DeadLettered:
    reason: str
    execution_id: str | None = None
    step_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ExecutionFinished:
    execution_id: str
    workflow_id: str
    status: str
    error: str | None
    failed_step: str | None
    generation: int
    duration: float
    parent_id: str | None = None  # a child execution's (subflow, loop iteration)


@dataclass(frozen=True, kw_only=True)
class ExecutionControl:
    execution_id: str
    action: Literal["paused", "resumed", "recovered"]
    generation: int = 1


@dataclass(frozen=True, kw_only=True)
class WorkerStarted:
    worker_id: str
    slots: int  # steps it runs at once
    # Tasks of the partitions its consumer holds not acked yet by the group, by partition.
    queue_lag: Callable[[], Awaitable[Mapping[int, int]]] | None = None


@dataclass(frozen=True, kw_only=True)
class WorkerStopped:
    worker_id: str
    slots: int


class Hooks:
    """Observer of an execution's life; override the methods you need (all no-ops)."""

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        """An execution was created and its start steps scheduled."""

    def step_started(self, event: StepStarted) -> None:
        """A worker took a step's lease and starts an attempt."""

    def step_finished(self, event: StepFinished) -> None:
        """An attempt ended: its outcome and how long it ran."""

    def step_skipped(self, event: StepSkipped) -> None:
        """A step will never run: no edge into it was taken (its branch was not chosen)."""

    def retry_scheduled(self, event: RetryScheduled) -> None:
        """A failed attempt will run again after ``delay`` seconds."""

    def lease_expired(self, event: LeaseExpired) -> None:
        """A running step's worker died or hung; the step was handed back."""

    def dead_lettered(self, event: DeadLettered) -> None:
        """A message that can never run went to the dead letters, with the reason."""

    def execution_final(self, event: ExecutionFinished) -> None:
        """An execution reached its final status (fired once, by the writer that won)."""

    def execution_control(self, event: ExecutionControl) -> None:
        """An execution was paused, resumed or recovered."""

    def worker_started(self, event: WorkerStarted) -> None:
        """A worker began taking tasks."""

    def worker_stopped(self, event: WorkerStopped) -> None:
        """A worker stopped (after its graceful stop)."""


class HookSet(Hooks):
    """Calls every hook in turn; a hook's error is logged and swallowed."""

    def __init__(self, hooks: Iterable[Hooks] = ()) -> None:
        self.hooks: list[Hooks] = list(hooks)

    def add(self, hook: Hooks) -> None:
        self.hooks.append(hook)

    def _emit(self, name: str, event: object) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, name)(event)
            except Exception:
                log.exception("hook %s.%s failed; ignored", type(hook).__name__, name)

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        self._emit("execution_submitted", event)

    def step_started(self, event: StepStarted) -> None:
        self._emit("step_started", event)

    def step_finished(self, event: StepFinished) -> None:
        self._emit("step_finished", event)

    def step_skipped(self, event: StepSkipped) -> None:
        self._emit("step_skipped", event)

    def retry_scheduled(self, event: RetryScheduled) -> None:
        self._emit("retry_scheduled", event)

    def lease_expired(self, event: LeaseExpired) -> None:
        self._emit("lease_expired", event)

    def dead_lettered(self, event: DeadLettered) -> None:
        self._emit("dead_lettered", event)

    def execution_final(self, event: ExecutionFinished) -> None:
        self._emit("execution_final", event)

    def execution_control(self, event: ExecutionControl) -> None:
        self._emit("execution_control", event)

    def worker_started(self, event: WorkerStarted) -> None:
        self._emit("worker_started", event)

    def worker_stopped(self, event: WorkerStopped) -> None:
        self._emit("worker_stopped", event)
