"""JSON models of what travels on the queue and rests in the store (pydantic; never pickle)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FINAL_STATUSES",
    "ExecutionOptions",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "FinalStatus",
    "Lease",
    "ParentRef",
    "StepRecord",
    "Task",
    "TaskResult",
]

FinalStatusName = Literal["completed", "failed", "cancelled", "timed_out"]
TaskReason = Literal["scheduled", "retry", "recovered", "resumed", "child-finished"]
StepStatus = Literal["pending", "running", "waiting", "completed", "failed", "skipped", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})
TERMINAL_STEP_STATUSES: frozenset[str] = frozenset({"completed", "skipped", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Any:
        return cls.model_validate_json(raw)


class ExecutionOptions(_Model):
    """How an execution runs.

    ``distributed``: on the worker pool (durable: every step is checkpointed), or in this
    process on the local engine (recorded when it ends; not durable). ``timeout``: the
    execution's deadline in seconds, after which it is ``timed_out``. ``checkpoints``: a
    distributed execution always checkpoints each step, so ``checkpoints=False`` is accepted
    only with ``distributed=False``.
    """

    distributed: bool = True
    timeout: float | None = Field(default=None, gt=0, description="execution deadline, seconds")
    checkpoints: bool = True

    @model_validator(mode="after")
    def _checkpoints_with_distributed(self) -> ExecutionOptions:
        if self.distributed and not self.checkpoints:
            raise ValueError("distributed executions checkpoint every step; use distributed=False")
        return self


class ParentRef(_Model):
    """The subflow node that started a child execution."""

    execution_id: str
    node_id: str


class ExecutionRecord(_Model):
    execution_id: str
    workflow_id: str
    graph_version: str
    inputs: dict[str, Any]
    options: ExecutionOptions = ExecutionOptions()
    created_at: float = Field(default_factory=time.time)
    parent: ParentRef | None = None

    @property
    def deadline(self) -> float | None:
        timeout = self.options.timeout
        return None if timeout is None else self.created_at + timeout


class FinalStatus(_Model):
    """The sticky final status of an execution, with its root cause."""

    status: FinalStatusName
    outputs: dict[str, Any] = {}
    error: str | None = None
    failed_step: str | None = None
    finished_at: float = Field(default_factory=time.time)


class Lease(_Model):
    owner: str
    expires_at: float
    token: int


class TaskResult(_Model):
    """What a finished step produced: output, action, state updates and its routing decision."""

    output: Any = None
    action: str | None = None
    state_updates: dict[str, Any] = {}
    taken: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    seq: int = 0


class StepRecord(_Model):
    """One step of one execution. Every transition is a compare-and-set of this record."""

    node_id: str
    status: StepStatus = "pending"
    attempt: int = 0
    token: int = 0
    lease: Lease | None = None
    result: TaskResult | None = None
    error: str | None = None
    not_before: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    child_id: str | None = None
    lease_expiries: int = 0  # attempts whose worker died or hung (see Reaper.max_lease_expiries)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STEP_STATUSES

    def lease_expired(self, now: float) -> bool:
        return self.status == "running" and (self.lease is None or self.lease.expires_at <= now)


class Task(_Model):
    """A queue message: run (or re-check) one step of one execution."""

    execution_id: str
    node_id: str
    reason: TaskReason = "scheduled"
    enqueued_at: float = Field(default_factory=time.time)


class ExecutionSnapshot(_Model):
    """What ``get_execution_status`` returns."""

    execution_id: str
    workflow_id: str
    status: str
    completed_steps: tuple[str, ...]
    running_steps: tuple[str, ...]
    total_steps: int
    outputs: dict[str, Any] = {}
    error: str | None = None
    failed_step: str | None = None
    created_at: float
    finished_at: float | None = None
    steps: dict[str, StepRecord] = {}

    @property
    def current_step(self) -> str | None:
        return self.running_steps[0] if self.running_steps else None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES
