"""``Reaper``: the periodic sweep that keeps executions moving when workers die or wait.

Any pool may run one; every action is a compare-and-set or an idempotent enqueue, so several
reapers at once are safe. Each sweep, for every active execution:

- past its deadline: final status ``timed_out``;
- a running step whose lease expired (its worker died or hung): back to pending, re-enqueued;
  after ``max_lease_expiries`` such deaths the step fails instead (a step that kills its worker
  every time must not crash-loop the cluster forever);
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
from .timebox import reraise_if_cancelling

__all__ = ["Reaper", "SweepReport"]

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did."""

    expired_leases: int = 0
    due_retries: int = 0
    timed_out: int = 0


class Reaper:
    def __init__(
        self, scheduler: Scheduler, *, interval: float = 1.0, max_lease_expiries: int = 5
    ) -> None:
        self.scheduler = scheduler
        self.persistence = scheduler.persistence
        self.interval = interval
        self.max_lease_expiries = max_lease_expiries

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception as exc:
                reraise_if_cancelling(exc)
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
            await self._reclaim(eid, version, report)
        elif step.status == "pending" and step.not_before is not None and step.not_before <= now:
            due = step.model_copy(update={"not_before": None})
            if await self.persistence.swap_step(eid, version, due):
                await self.scheduler.enqueue(eid, [step.node_id], "retry")
                report.due_retries += 1
        elif step.status == "waiting":
            await self.scheduler.wake_if_child_final(eid, step)

    async def _reclaim(self, eid: str, version: VersionedStep, report: SweepReport) -> None:
        """Hand a dead worker's step to another worker, or fail it past the expiry limit."""
        step = version.record
        owner = step.lease.owner if step.lease else "?"
        expiries = step.lease_expiries + 1
        error = f"lease of worker {owner} expired ({expiries} of {self.max_lease_expiries})"
        if expiries >= self.max_lease_expiries:
            await self._fail_poison_step(eid, version, error)
            return
        update = {"status": "pending", "lease": None, "error": error, "lease_expiries": expiries}
        if await self.persistence.swap_step(eid, version, step.model_copy(update=update)):
            log.warning("step %s/%s: %s; re-enqueued", eid, step.node_id, error)
            await self.scheduler.enqueue(eid, [step.node_id], "recovered")
            report.expired_leases += 1

    async def _fail_poison_step(self, eid: str, version: VersionedStep, error: str) -> None:
        step = version.record
        error = f"{error}: the step keeps killing or hanging its worker, so it is failed"
        update = {
            "status": "failed",
            "lease": None,
            "error": error,
            "finished_at": time.time(),
            "lease_expiries": step.lease_expiries + 1,
        }
        if await self.persistence.swap_step(eid, version, step.model_copy(update=update)):
            log.error("step %s/%s: %s", eid, step.node_id, error)
            final = FinalStatus(status="failed", error=error, failed_step=step.node_id)
            await self.scheduler.finalize(eid, final)
