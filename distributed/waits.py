"""Wait nodes in distributed runs: a step parked without a worker slot until its signal.

A worker that reaches a ``wait`` node takes the signal if it was already sent (it is kept in
the store, once per event) and completes the step; otherwise it parks the step as ``waiting``
on the event, until the wait's timeout. ``DistributedEngine.signal`` stores the signal and
enqueues the waiting step; the recovery sweep also wakes waiting steps whose signal arrived
or whose timeout passed, so a lost wake-up only delays the step. See ``orchestration.waits``
for the semantics, shared with the local engine.
"""

from __future__ import annotations

from orchestration import Node, Signal, WaitSpec, WaitTimedOut
from orchestration.waits import timed_out_result

from .context import RuntimeContext
from .lease import StepLease
from .models import ExecutionRecord, SignalRecord, StepRecord
from .persistence import WorkflowPersistence
from .steps import StepOutcome

__all__ = ["park_or_take", "wait_outcome"]


async def park_or_take(
    context: RuntimeContext, record: ExecutionRecord, held: StepLease, node: Node
) -> StepOutcome | None:
    """At a wait node: the outcome of a signal already sent, else park the step (None)."""
    spec = WaitSpec.of(node)
    sent = await context.persistence.signal(record.execution_id, spec.event)
    if sent is not None:
        return StepOutcome(_signal(sent).result(spec))
    now = context.clock()
    until = None if spec.timeout is None else now + spec.timeout
    await held.swap(held.record.wait(now, event=spec.event, until=until))
    await context.scheduler.wake_if_ready(record, held.record)  # a signal sent meanwhile
    return None


async def wait_outcome(
    persistence: WorkflowPersistence, eid: str, node: Node, step: StepRecord, now: float
) -> StepOutcome | None:
    """A waiting step's outcome once its signal came or its timeout passed; None meanwhile."""
    spec = WaitSpec.of(node)
    sent = await persistence.signal(eid, spec.event)
    if sent is not None:
        return StepOutcome(_signal(sent).result(spec))
    if step.not_before is None or step.not_before > now:
        return None
    try:
        return StepOutcome(timed_out_result(node.id, spec))
    except WaitTimedOut as exc:
        return StepOutcome(error=exc)


def _signal(sent: SignalRecord) -> Signal:
    return Signal(sent.event, sent.payload, sent.action)
