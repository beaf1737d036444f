"""Recording a step's outcome: completed (then advance), retry later, or failed (fail fast).

Each outcome is one fenced compare-and-set of the step record (``StepLease.swap``), so a worker
whose lease moved cannot record anything, and a result is recorded once (first writer wins).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from orchestration import Graph, NodeResult, UnroutableAction, apply_updates, route

from .lease import StepLease
from .models import ExecutionRecord, FinalStatus, TaskResult
from .scheduler import Scheduler
from .steps import StepOutcome

__all__ = ["StepCommitter"]

log = logging.getLogger(__name__)


class StepCommitter:
    """Turns a ``StepOutcome`` into the step's next record and the execution's next move."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.persistence = scheduler.persistence

    async def commit(
        self,
        record: ExecutionRecord,
        graph: Graph,
        held: StepLease,
        outcome: StepOutcome,
        state: Mapping[str, Any],
    ) -> None:
        """Raises ``LeaseLost`` when the step moved to another worker."""
        if outcome.result is not None:
            await self._complete(record, graph, held, outcome.result, state)
        elif outcome.retry_in is not None:
            await self._retry(held, outcome)
        else:
            await self._fail(held, outcome.describe_error())

    async def _complete(
        self,
        record: ExecutionRecord,
        graph: Graph,
        held: StepLease,
        result: NodeResult,
        state: Mapping[str, Any],
    ) -> None:
        node_id = held.record.node_id
        try:
            routing = route(graph, node_id, result, apply_updates(state, node_id, result))
        except UnroutableAction as exc:
            await self._fail(held, f"{type(exc).__name__}: {exc}")
            return
        seq = await self.persistence.next_seq(record.execution_id)
        outcome = TaskResult(
            output=result.output,
            action=result.action,
            state_updates=dict(result.state_updates),
            taken=tuple(e.key for e in routing.taken),
            skipped=tuple(e.key for e in routing.skipped),
            seq=seq,
        )
        done = held.record.model_copy(
            update={
                "status": "completed",
                "lease": None,
                "error": None,
                "result": outcome,
                "finished_at": time.time(),
            }
        )
        await held.swap(done)
        await self.scheduler.advance(record.execution_id, graph, done)

    async def _retry(self, held: StepLease, outcome: StepOutcome) -> None:
        delay = outcome.retry_in or 0.0
        pending = held.record.model_copy(
            update={
                "status": "pending",
                "lease": None,
                "error": outcome.describe_error(),
                "not_before": time.time() + delay,
            }
        )
        await held.swap(pending)
        if delay <= 0:
            await self.scheduler.enqueue(held.eid, [pending.node_id], "retry")
        # A delayed retry holds no worker slot: the reaper enqueues it when it is due.

    async def _fail(self, held: StepLease, error: str) -> None:
        node_id = held.record.node_id
        failed = held.record.model_copy(
            update={"status": "failed", "lease": None, "error": error, "finished_at": time.time()}
        )
        await held.swap(failed)
        final = FinalStatus(status="failed", error=error, failed_step=node_id)
        await self.scheduler.finalize(held.eid, final)
