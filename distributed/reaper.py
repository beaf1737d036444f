"""``Reaper``: the periodic sweep that keeps executions moving when workers die or wait.

Any pool may run one; every action is a compare-and-set or an idempotent enqueue, so several
reapers at once are safe. Each sweep, for every active execution:

- past its deadline: final status ``timed_out``;
- a running step whose lease expired (its worker died or hung): back to pending, re-enqueued;
- a pending retry whose delay has passed: enqueued (delayed retries hold no worker slot);
- a waiting subflow step whose child is final: woken (in case that wake-up was lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from .models import ExecutionRecord, FinalStatus
from .persistence import VersionedStep
from .scheduler import Scheduler

__all__ = ["Reaper", "SweepReport"]

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did."""

    expired_leases: int = 0
    due_retries: int = 0
    timed_out: int = 0


class Reaper:
    def __init__(self, scheduler: Scheduler, *, interval: float = 1.0) -> None:
        self.scheduler = scheduler
        self.persistence = scheduler.persistence
        self.interval = interval

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("reaper sweep failed; trying again next interval")

    async def sweep(self) -> SweepReport:
        report = SweepReport()
        now = time.time()
        async for eid in self.persistence.active_executions():
            record = await self.persistence.record(eid)
            if record is not None and await self.persistence.final(eid) is None:
                await self._sweep_execution(record, now, report)
        return report

    async def _sweep_execution(
        self, record: ExecutionRecord, now: float, report: SweepReport
    ) -> None:
        eid = record.execution_id
        if record.deadline is not None and now >= record.deadline:
            error = f"execution deadline of {record.options.timeout}s passed"
            await self.scheduler.finalize(eid, FinalStatus(status="timed_out", error=error))
            report.timed_out += 1
            return
        for version in (await self.persistence.steps(eid)).values():
            await self._sweep_step(eid, version, now, report)

    async def _sweep_step(
        self, eid: str, version: VersionedStep, now: float, report: SweepReport
    ) -> None:
        step = version.record
        if step.lease_expired(now):
            owner = step.lease.owner if step.lease else "?"
            error = f"lease of worker {owner} expired"
            pending = step.model_copy(update={"status": "pending", "lease": None, "error": error})
            if await self.persistence.swap_step(eid, version, pending):
                log.warning("step %s/%s: %s; re-enqueued", eid, step.node_id, error)
                await self.scheduler.enqueue(eid, [step.node_id], "recovered")
                report.expired_leases += 1
        elif step.status == "pending" and step.not_before is not None and step.not_before <= now:
            due = step.model_copy(update={"not_before": None})
            if await self.persistence.swap_step(eid, version, due):
                await self.scheduler.enqueue(eid, [step.node_id], "retry")
                report.due_retries += 1
        elif step.status == "waiting":
            await self.scheduler.wake_if_child_final(eid, step)
