"""Eager dispatch: a task enqueued in a process that runs workers starts there at once.

Every task is published to the queue for durability, and the scheduler also offers it to the
workers of its own process (``LocalDispatch.offer``): a worker with a free slot starts it without
waiting for the broker to deliver it (like Temporal's eager activities). The broker's copy is then
dropped by whichever worker receives it (the step is running or done), so nothing runs twice that
would not have anyway; a worker that dies after taking an eager task is like one that dies after
taking a delivered one (the lease expires, or its liveness lapses; the sweep re-enqueues).

**Hand-on without a message.** The successors a step alone decides go further: the step's
commit also writes their first attempts, the first leased to the committing slot, which runs
it right after, the others to free slots of this process held for them (``reserve``)
(``WorkflowPersistence.commit_step``, ``HandOn``) -- no task is published for them and no
store read or lease write precedes them. The last source of a join fires it and leases it to
its own slot the same way (``fire_join``), and ``execute_async`` in a process that also runs
the pool leases an execution's start steps to free slots of its own in the write that records
the execution (``create_execution``); the start steps no slot was free for are dispatched as
any task. A step leased so is as durable as any running step: it is on the agenda, and if its
worker dies before or while running it, the sweep reclaims it from the dead owner (liveness)
and enqueues it; if the answer to the write is lost, the slot is given back, and the sweep
reclaims the step once its lease expires.

The recovery sweep enqueues through the same path, so a step it reclaims from a dead worker
starts in the sweeper's own process at once, instead of waiting on the dead worker's partition
for the broker group to rebalance.

The registry belongs to a ``RuntimeContext`` (the one a ``Runtime``'s engine, pool and sweep
share), so tasks are only offered to workers of the same store and queue.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, TypeVar

from orchestration import Graph

from .models import ExecutionRecord, StepRecord, Task
from .persistence import VersionedStep
from .snapshot import Snapshot

__all__ = [
    "Carried",
    "HandOn",
    "LocalDispatch",
    "TaskRunner",
    "handed_on_task",
    "leased_first_attempt",
    "release_slots",
    "take_leased",
]


class Carried(NamedTuple):
    """What the step that alone decided a successor hands it when both run in one process:
    the execution's record and graph, and the view the successor starts with (its
    predecessor's and its result; a join's, read by the write that fired it). The successor
    then takes its lease in one conditional write (the step not started, the execution
    neither final nor paused) instead of reading the execution first."""

    record: ExecutionRecord
    graph: Graph
    snapshot: Snapshot


class HandOn(NamedTuple):
    """A slot that takes a successor leased to it in its predecessor's commit: ``owner`` and
    ``ttl`` make the lease, ``take`` queues the successor to run in the slot next (the task is
    never published), with its carried view and its leased first attempt. ``release`` gives
    the slot back untaken (a slot held for the commit by ``LocalDispatch.reserve``)."""

    owner: str
    ttl: float
    take: Callable[[Task, Carried, VersionedStep], None]
    release: Callable[[], None] = lambda: None


log = logging.getLogger(__name__)


def leased_first_attempt(node_id: str, slot: HandOn, now: float) -> VersionedStep:
    """The first attempt of step ``node_id``, leased to ``slot``: the write that fires the
    step (a commit, or the one that records a new execution) writes it."""
    started = StepRecord.first_attempt(node_id, slot.owner, slot.ttl, now)
    return VersionedStep(started.to_bytes(), started)


def handed_on_task(record: ExecutionRecord, node_id: str, now: float) -> Task:
    """The task of a step handed on to a slot (never published)."""
    return Task(
        execution_id=record.execution_id,
        node_id=node_id,
        generation=record.generation,
        enqueued_at=now,
    )


def take_leased(
    slots: Sequence[HandOn],
    leased: Sequence[VersionedStep],
    record: ExecutionRecord,
    carried: Carried,
    now: float,
) -> None:
    """Hand each step of ``leased`` (written, leased to the slot beside it) to its slot, with
    the view it starts with (``carried``)."""
    for slot, first in zip(slots, leased, strict=True):
        slot.take(handed_on_task(record, first.record.node_id, now), carried, first)


def release_slots(slots: Sequence[HandOn]) -> None:
    """Give back slots held for steps that will not be handed on to them."""
    for slot in slots:
        slot.release()


class TaskRunner(Protocol):
    """A worker that may take a task without a delivery."""

    id: str

    def try_take(self, task: Task, carried: Carried | None = None) -> bool:
        """Start ``task`` now if a slot is free; False if busy or stopping."""
        ...

    def take_when_free(self, task: Task) -> bool:
        """Run ``task`` in the next slot that frees up; False if stopping."""
        ...

    async def reserve(self) -> HandOn | None:
        """Hold a free slot for a successor a commit leases to this runner; None if busy."""
        ...


_TaskKey = tuple[str, str, int, float]
_V = TypeVar("_V")
_REMEMBERED = 10_000


class LocalDispatch:
    """The task runners of this process, offered every task this process enqueues, and the
    tasks they took (so a worker of this process acks their queued copies without reading
    the store)."""

    def __init__(self) -> None:
        self._runners: dict[str, TaskRunner] = {}
        self._next = 0
        self._taken: OrderedDict[_TaskKey, None] = OrderedDict()
        self._waiting: OrderedDict[_TaskKey, Carried] = OrderedDict()

    def forget(self, task: Task) -> None:
        """A runner took ``task`` but its run ended in an error, or it stopped before the
        run began: its queued copy is to run after all."""
        self._taken.pop(_key(task), None)

    def taken(self, task: Task) -> bool:
        """Whether this is the queued copy of a task a runner here took (asked once per
        task): then it is moot, whether the run began or waits for its slot."""
        key = _key(task)
        if key not in self._taken:
            return False
        del self._taken[key]
        return True

    def register(self, runner: TaskRunner) -> None:
        self._runners[runner.id] = runner

    def unregister(self, runner: TaskRunner) -> None:
        self._runners.pop(runner.id, None)

    @property
    def has_runners(self) -> bool:
        """True if a worker of this process takes tasks eagerly."""
        return bool(self._runners)

    def is_local(self, runner_id: str) -> bool:
        """True if the runner is alive in this process."""
        return runner_id in self._runners

    def offer(
        self,
        tasks: Sequence[Task],
        carried: Mapping[str, Carried] | None = None,
        *,
        wait: bool = False,
    ) -> list[Task]:
        """Start each task on a runner with a free slot, round robin, with what its
        predecessor ``carried`` to it (by node id); return those not started. A task started
        is marked taken at once: its queued copy, should a worker here receive it once the run
        began, is acked unread (``taken``). What a task not started carried is kept for its
        queued copy.
        ``wait``: a task no slot is free for runs in the next one that frees up (the recovery
        sweep's: its queued copy may sit on a dead worker's partition until a rebalance)."""
        runners = list(self._runners.values())
        left = []
        for task in tasks:
            hint = (carried or {}).get(task.node_id)
            if self._start(runners, task, hint):
                continue
            if wait and runners:
                runner = runners[self._next % len(runners)]
                self._next += 1
                if runner.take_when_free(task):
                    _remember(self._taken, _key(task), None)
                    continue
            elif hint is not None and runners:
                _remember(self._waiting, _key(task), hint)
            left.append(task)
        return left

    async def reserve(self, wanted: int) -> list[HandOn]:
        """Hold up to ``wanted`` free slots of this process's runners, one runner after
        another, for the successors a commit leases to them (``HandOn``); each is taken or
        released (also when the call is cancelled midway)."""
        if wanted <= 0:  # a chain's step: its own slot takes its one successor
            return []
        runners, held = list(self._runners.values()), list[HandOn]()
        try:
            for i in range(len(runners)):
                runner = runners[(self._next + i) % len(runners)]
                while len(held) < wanted and (slot := await runner.reserve()) is not None:
                    held.append(slot)
                if len(held) == wanted:
                    break
        except BaseException:  # cancelled while a runner's slot came free: none is kept
            release_slots(held)
            raise
        return held

    def carried(self, task: Task) -> Carried | None:
        """What the predecessor of a delivered task carried, if it was enqueued here."""
        return self._waiting.pop(_key(task), None)

    def _start(self, runners: list[TaskRunner], task: Task, hint: Carried | None) -> bool:
        for i in range(len(runners)):
            runner = runners[(self._next + i) % len(runners)]
            if runner.try_take(task, hint):
                _remember(self._taken, _key(task), None)  # before anything else runs
                self._next = (self._next + i + 1) % len(runners)
                return True
        return False


def _key(task: Task) -> _TaskKey:
    return (task.execution_id, task.node_id, task.generation, task.enqueued_at)


def _remember(memory: OrderedDict[_TaskKey, _V], key: _TaskKey, value: _V) -> None:
    memory[key] = value
    if len(memory) > _REMEMBERED:
        memory.popitem(last=False)
