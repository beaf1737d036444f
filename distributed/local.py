"""Executions with ``ExecutionOptions(distributed=False)``: run in this process, recorded alike.

The local engine runs the whole graph in memory; the outcome (steps and final status) is then
written to the persistence, so ``status``, ``wait`` and ``list`` treat it like any other. A
local run is not durable: if this process dies mid-run, the execution is left unfinished.
"""

from __future__ import annotations

import asyncio

from orchestration import Engine, ExecutionResult

from .models import ExecutionRecord, FinalStatus, StepRecord, TaskResult
from .scheduler import Scheduler

__all__ = ["run_locally"]


async def run_locally(engine: Engine, scheduler: Scheduler, record: ExecutionRecord) -> None:
    persistence = scheduler.persistence
    await persistence.create_execution(record, ())
    eid = record.execution_id
    try:
        result = await engine.execute(
            record.workflow_id, record.inputs, timeout=record.options.timeout
        )
    except asyncio.CancelledError:
        await scheduler.finalize(eid, FinalStatus(status="cancelled", error="cancelled by request"))
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
    await scheduler.finalize(eid, final)


def _step_records(result: ExecutionResult) -> list[StepRecord]:
    records = []
    for node_id, step in result.steps.items():
        completed = step.status == "completed"
        records.append(
            StepRecord(
                node_id=node_id,
                status=step.status,
                attempt=step.attempts,
                result=TaskResult(output=step.output, action=step.action) if completed else None,
                error=step.error,
                started_at=step.started_at,
                finished_at=step.finished_at,
            )
        )
    return records
