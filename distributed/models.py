"""JSON models of what travels on the queue and rests in the store (never pickle).

Pydantic models, except the records a step builds, writes and reads every time it runs (its
``StepRecord`` with ``Lease`` and ``TaskResult``, its ``Task`` and its ``AgendaEntry``): those
are msgspec structs, which build, copy, encode and validate them ten times cheaper, with the
same JSON.
"""

from __future__ import annotations

import functools
import time
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, model_validator

from .errors import IllegalTransition

__all__ = [
    "FINAL_STATUSES",
    "TRANSITIONS",
    "AgendaEntry",
    "ExecutionOptions",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "FinalStatus",
    "Lease",
    "ParentRef",
    "SignalRecord",
    "StepRecord",
    "Task",
    "TaskResult",
    "Transition",
]

FinalStatusName = Literal["completed", "failed", "cancelled", "timed_out"]
TaskReason = Literal[
    "scheduled",
    "retry",
    "fallback",
    "recovered",
    "resumed",
    "requeued",
    "child-finished",
    "signalled",
]
StepStatus = Literal["pending", "running", "waiting", "completed", "failed", "skipped", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})
TERMINAL_STEP_STATUSES: frozenset[str] = frozenset({"completed", "skipped", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        """The JSON at rest and on the queue, without the fields left at their defaults (a step
        record is half as long: less to write, compact and parse); ``from_bytes`` fills them
        in. Never compare these bytes with those of a record read back: compare records, or
        the bytes as read (a record written by another version may spell its JSON otherwise)."""
        return self.model_dump_json(exclude_defaults=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Any:
        return cls.model_validate_json(raw)


_R = TypeVar("_R", bound="_Record")


class _Record(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """A record of the hot path: as ``_Model`` at rest (JSON without the fields left at their
    defaults; unknown fields refused), built and copied without validation (its transitions
    build it), validated when read. A record that does not decode raises
    ``msgspec.ValidationError`` (a ``ValueError``, as pydantic's)."""

    def to_bytes(self) -> bytes:
        return _ENCODER.encode(self)

    @classmethod
    def from_bytes(cls: type[_R], raw: bytes) -> _R:
        record: _R = _decoder(cls).decode(raw)  # the cache keeps the decoder's type out of sight
        return record

    def as_dict(self) -> dict[str, Any]:
        """Every field (nested records too), as ``BaseModel.model_dump`` gives them."""
        return {name: _as_builtin(getattr(self, name)) for name in self.__struct_fields__}


_ENCODER = msgspec.json.Encoder()


@functools.cache
def _decoder(cls: type[_R]) -> msgspec.json.Decoder[_R]:
    return msgspec.json.Decoder(cls)


def _as_builtin(value: Any) -> Any:
    return value.as_dict() if isinstance(value, _Record) else value


class ExecutionOptions(_Model):
    """How an execution runs.

    ``distributed``: on the worker pool (durable: every step is checkpointed), or in this
    process on the local engine (recorded when it ends; not durable). ``timeout``: the
    execution's deadline in seconds, after which it is ``timed_out``. ``checkpoints``: a
    distributed execution always checkpoints each step, so ``checkpoints=False`` is accepted
    only with ``distributed=False``. ``tokens``: record LLM token events (``step.token``) in
    the execution's event log.
    """

    distributed: bool = True
    timeout: float | None = Field(default=None, gt=0, description="execution deadline, seconds")
    checkpoints: bool = True
    tokens: bool = Field(default=True, description="record LLM token events (step.token)")

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
    """An execution: what to run, with which inputs, and which generation of it is current.

    ``generation`` starts at 1; ``RecoveryManager.recover_failed_execution`` rewrites the record
    with the next one (``generation_started_at`` restarts the execution's deadline).
    """

    execution_id: str
    workflow_id: str
    graph_version: str
    inputs: dict[str, Any]
    options: ExecutionOptions = ExecutionOptions()
    created_at: float = Field(default_factory=time.time)
    parent: ParentRef | None = None
    generation: int = Field(default=1, ge=1)
    generation_started_at: float | None = None

    @property
    def parent_id(self) -> str | None:
        """The id of the parent execution of a child (None: a root)."""
        return None if self.parent is None else self.parent.execution_id

    @property
    def deadline(self) -> float | None:
        timeout = self.options.timeout
        started = self.generation_started_at or self.created_at
        return None if timeout is None else started + timeout

    def past_deadline(self, now: float) -> bool:
        """Whether the execution's deadline (if it has one) has come by ``now``."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def next_generation(self, now: float) -> ExecutionRecord:
        return self.model_copy(
            update={"generation": self.generation + 1, "generation_started_at": now}
        )


class FinalStatus(_Model):
    """The sticky final status of an execution, with its root cause.

    Build it with the constructors (``completed``, ``failed``, ``cancelled``, ``timed_out``)
    so that each status reads the same wherever it is set.
    """

    status: FinalStatusName
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    failed_step: str | None = None
    finished_at: float = Field(default_factory=time.time)
    generation: int = 1

    @classmethod
    def completed(cls, outputs: dict[str, Any], generation: int = 1) -> FinalStatus:
        return cls(status="completed", outputs=outputs, generation=generation)

    @classmethod
    def failed(cls, error: str, failed_step: str | None = None) -> FinalStatus:
        return cls(status="failed", error=error, failed_step=failed_step)

    @classmethod
    def cancelled(cls, reason: str = "cancelled by request") -> FinalStatus:
        return cls(status="cancelled", error=reason)

    @classmethod
    def timed_out(cls, timeout: float | None) -> FinalStatus:
        return cls(status="timed_out", error=f"execution deadline of {timeout}s passed")


class Lease(_Record, frozen=True):
    owner: str
    expires_at: float
    token: int


class TaskResult(_Record, frozen=True):
    """What a finished step produced: output, action, state updates and its routing decision."""

    output: Any = None
    action: str | None = None
    state_updates: dict[str, Any] = msgspec.field(default_factory=dict)
    taken: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    seq: int = 0


Transition = Literal[
    "start",
    "heartbeat",
    "complete",
    "retry_later",
    "fall_back",
    "release",
    "reclaim",
    "due",
    "requeue",
    "wait",
    "iterate",
    "fail",
    "cancel",
    "skip",
]

TRANSITIONS: dict[Transition, frozenset[StepStatus]] = {
    "start": frozenset({"pending"}),
    "heartbeat": frozenset({"running"}),
    "complete": frozenset({"running", "waiting"}),
    "retry_later": frozenset({"running"}),
    "fall_back": frozenset({"running"}),
    "release": frozenset({"running"}),
    "reclaim": frozenset({"running"}),
    "due": frozenset({"pending"}),
    "requeue": frozenset({"pending"}),
    "wait": frozenset({"running"}),
    "iterate": frozenset({"waiting"}),
    "fail": frozenset({"pending", "running", "waiting"}),
    "cancel": frozenset({"pending", "running", "waiting"}),
    "skip": frozenset({"pending"}),
}
"""Which statuses each transition may leave (see ``StepRecord``)."""


class StepRecord(_Record, frozen=True):
    """One step of one execution: a small state machine. Every change is one of the transitions
    below (a method returning the next record), written as one fenced compare-and-set::

        (new) = pending ──start──► running ──complete──► completed
           ▲  │                    │  │ ▲
           │  └─skip──► skipped    │  │ └─ heartbeat
           │                       │  ├─ wait ──► waiting ──complete──► completed
           ├─ retry_later ─────────┤  │             └──fail / cancel──► failed / cancelled
           ├─ fall_back ───────────┤  ├─ fail ──► failed
           ├─ release ─────────────┤  └─ cancel ──► cancelled
           └─ reclaim ─────────────┘
        pending ──due / requeue──► pending ;  pending ──fail / cancel──► failed / cancelled
        waiting ──iterate──► waiting  (a loop's next iteration)

    A transition from any other status raises ``IllegalTransition``. ``attempts`` counts the
    attempts of the step's own node; after ``fall_back`` the step runs its ``fallback`` node,
    counted by ``fallback_attempts``. ``error`` keeps the last error, also on a completed step
    that retried or fell back (the primary's error), as the local engine records it.
    """

    node_id: str
    status: StepStatus = "pending"
    attempts: int = 0
    token: int = 0
    lease: Lease | None = None
    result: TaskResult | None = None
    error: str | None = None
    not_before: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    updated_at: float | None = None
    child_id: str | None = None
    awaiting: str | None = None  # the event a wait step waits for
    iteration: int = 0  # a loop step: the iteration whose child runs (child_id)
    # a loop step: the values carried between iterations
    carried: dict[str, Any] = msgspec.field(default_factory=dict)
    fallback: str | None = None
    fallback_attempts: int = 0
    lease_expiries: int = 0  # attempts whose worker died or hung (see RecoveryConfig)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STEP_STATUSES

    @property
    def output(self) -> Any:
        """The step's output once completed (as ``orchestration.StepRecord.output``)."""
        return None if self.result is None else self.result.output

    @property
    def action(self) -> str | None:
        """The step's routing action once completed."""
        return None if self.result is None else self.result.action

    @property
    def current_attempt(self) -> int:
        """The attempt number of the node now running: the fallback's once it stands in."""
        return self.fallback_attempts if self.fallback else self.attempts

    def lease_expired(self, now: float) -> bool:
        return self.status == "running" and (self.lease is None or self.lease.expires_at <= now)

    def due_at(self, now: float) -> bool:
        """A pending step whose retry delay has passed (or that has none)."""
        return self.status == "pending" and (self.not_before is None or self.not_before <= now)

    # -- transitions ---------------------------------------------------------------------------

    @classmethod
    def first_attempt(cls, node_id: str, owner: str, ttl: float, now: float) -> StepRecord:
        """A new step's first attempt under ``owner``'s lease: ``StepRecord(node_id=node_id)
        .start(owner, ttl, now)``, built in one go (a step's successor is built so, each step)."""
        return cls(
            node_id=node_id,
            status="running",
            attempts=1,
            token=1,
            lease=Lease(owner=owner, expires_at=now + ttl, token=1),
            started_at=now,
            updated_at=now,
        )

    def start(self, owner: str, ttl: float, now: float) -> StepRecord:
        token = self.token + 1
        counter = "fallback_attempts" if self.fallback else "attempts"
        return self._to(
            "start",
            now,
            status="running",
            token=token,
            lease=Lease(owner=owner, expires_at=now + ttl, token=token),
            not_before=None,
            started_at=now,
            **{counter: self.current_attempt + 1},
        )

    def heartbeat(self, ttl: float, now: float) -> StepRecord:
        self._allow("heartbeat")
        assert self.lease is not None  # a running step always holds one
        lease = Lease(owner=self.lease.owner, expires_at=now + ttl, token=self.lease.token)
        return self._to("heartbeat", now, lease=lease)

    def complete(self, result: TaskResult, now: float) -> StepRecord:
        return self._to(
            "complete", now, status="completed", lease=None, result=result, finished_at=now
        )

    def retry_later(self, error: str, delay: float, now: float) -> StepRecord:
        not_before = now + delay if delay > 0 else None
        return self._to(
            "retry_later", now, status="pending", lease=None, error=error, not_before=not_before
        )

    def fall_back(self, error: str, fallback: str, now: float) -> StepRecord:
        return self._to(
            "fall_back", now, status="pending", lease=None, error=error, fallback=fallback
        )

    def release(self, reason: str, now: float) -> StepRecord:
        return self._to("release", now, status="pending", lease=None, error=reason)

    def reclaim(self, reason: str, now: float) -> StepRecord:
        """Hand a dead or hung worker's step back, due at once: if the re-enqueue that follows
        is lost, the next sweep enqueues it as a due retry (not after ``requeue_after``)."""
        expiries = self.lease_expiries + 1
        return self._to(
            "reclaim",
            now,
            status="pending",
            lease=None,
            error=reason,
            lease_expiries=expiries,
            not_before=now,
        )

    def due(self, now: float) -> StepRecord:
        return self._to("due", now, not_before=None)

    def requeue(self, now: float) -> StepRecord:
        return self._to("requeue", now)

    def wait(
        self,
        now: float,
        *,
        child_id: str | None = None,
        event: str | None = None,
        until: float | None = None,
        iteration: int = 0,
    ) -> StepRecord:
        """Park without a worker slot: on a child execution (a subflow's, or ``iteration`` 1
        of a loop), or on a signal ``event`` (until ``until``, when the wait times out)."""
        return self._to(
            "wait",
            now,
            status="waiting",
            lease=None,
            child_id=child_id,
            awaiting=event,
            not_before=until,
            iteration=iteration,
        )

    def iterate(self, child_id: str, carried: dict[str, Any], now: float) -> StepRecord:
        """A loop step goes on with its next iteration's child, carrying ``carried``."""
        return self._to(
            "iterate", now, child_id=child_id, iteration=self.iteration + 1, carried=carried
        )

    def fail(self, error: str, now: float) -> StepRecord:
        return self._to("fail", now, status="failed", lease=None, error=error, finished_at=now)

    def cancel(self, now: float) -> StepRecord:
        return self._to("cancel", now, status="cancelled", lease=None, finished_at=now)

    def skip(self, now: float) -> StepRecord:
        return self._to("skip", now, status="skipped", finished_at=now)

    def _to(self, transition: Transition, now: float, **changes: Any) -> StepRecord:
        self._allow(transition)
        return msgspec.structs.replace(self, updated_at=now, **changes)  # unknown: TypeError

    def _allow(self, transition: Transition) -> None:
        if self.status not in TRANSITIONS[transition]:
            raise IllegalTransition(self.node_id, self.status, transition)


class Task(_Record, frozen=True):
    """A queue message: run (or re-check) one step of one generation of one execution."""

    execution_id: str
    node_id: str
    reason: TaskReason = "scheduled"
    generation: Annotated[int, msgspec.Meta(ge=1)] = 1
    enqueued_at: float = msgspec.field(default_factory=time.time)  # JSON has no NaN: finite


class AgendaEntry(_Record, frozen=True):
    """A scheduled step that is not yet done (see ``distributed.keys``): ``since`` is when it was
    scheduled or last re-enqueued by the recovery sweep."""

    execution_id: str
    node_id: str
    since: float


class SignalRecord(_Model):
    """A signal for a wait: kept until the wait takes it (one per event and execution)."""

    event: str
    payload: Any = None
    action: str | None = None
    sent_at: float = Field(default_factory=time.time)


StepRecords = Annotated[
    dict[str, StepRecord],
    PlainSerializer(lambda steps: {node: step.as_dict() for node, step in steps.items()}),
]
"""The step records of a snapshot, dumped as dicts (``model_dump``), as the other fields."""


class ExecutionSnapshot(_Model):
    """What ``get_execution_status`` returns."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    execution_id: str
    workflow_id: str
    status: str
    completed_steps: tuple[str, ...]
    running_steps: tuple[str, ...]
    total_steps: int
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    failed_step: str | None = None
    created_at: float
    finished_at: float | None = None
    steps: StepRecords = Field(default_factory=dict)
    generation: int = 1
    history: tuple[FinalStatus, ...] = ()  # final statuses of earlier generations, oldest first
    awaiting: tuple[str, ...] = ()  # events the open waits wait for

    @property
    def current_step(self) -> str | None:
        return self.running_steps[0] if self.running_steps else None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES
