"""Executions with ``ExecutionOptions(distributed=False)``: run in this process, recorded alike.

The local engine runs the whole graph in memory; the outcome (steps and final status) is then
written to the persistence, so ``status``, ``wait`` and ``list`` treat it like any other. A
local run is not durable: if this process dies mid-run, the execution is left unfinished.
"""

from __future__ import annotations

import asyncio

from orchestration import ExecutionResult

from .context import RuntimeContext
from .hooks import ExecutionSubmitted
from .models import ExecutionRecord, FinalStatus, StepRecord, TaskResult

__all__ = ["run_locally", "submit_locally"]


async def submit_locally(context: RuntimeContext, record: ExecutionRecord) -> bool:
    """Record the execution (False if the id exists); ``run_locally`` then runs it."""
    if not await context.persistence.create_execution(record, ()):
        return False
    event = ExecutionSubmitted(execution_id=record.execution_id, workflow_id=record.workflow_id)
    context.hooks.execution_submitted(event)
    return True


async def run_locally(context: RuntimeContext, record: ExecutionRecord) -> None:
    """Run a recorded execution on the local engine; record its steps and final status."""
    persistence, scheduler = context.persistence, context.scheduler
    eid = record.execution_id
    try:
        result = await context.engine.execute(
            record.workflow_id, record.inputs, timeout=record.options.timeout, execution_id=eid
        )
    except asyncio.CancelledError:
        await scheduler.finalize(record, FinalStatus.cancelled())
        raise
    for step in _step_records(result):
        await persistence.swap_step(eid, None, step)
    assert result.status != "running"  # execute() returns only final results
    final = FinalStatus(
        status=result.status,
        outputs=dict(result.outputs),
        error=result.error,
        failed_step=result.failed_step,
    )
    await scheduler.finalize(record, final)


def _step_records(result: ExecutionResult) -> list[StepRecord]:
    records = []
    for node_id, step in result.steps.items():
        completed = step.status == "completed"
        records.append(
            StepRecord(
                node_id=node_id,
                status=step.status,
                attempts=step.attempts,
                result=TaskResult(output=step.output, action=step.action) if completed else None,
                error=step.error,
                fallback=step.fallback,
                fallback_attempts=step.fallback_attempts,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
    return records
