"""A worker's lease on one step: acquire, heartbeat, and commit, all fenced by the lease token.

Taking the lease bumps the step's fencing token. Heartbeats and the final commit are
compare-and-sets against the version this worker last wrote, serialised by a lock, so a worker
whose lease was reclaimed (by the recovery sweep, after expiry) can neither extend it nor commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence

from .errors import LeaseLost
from .models import StepRecord
from .persistence import Committed, Finish, JoinCount, VersionedStep, WorkflowPersistence

__all__ = ["StepLease", "acquire_lease"]


async def acquire_lease(
    persistence: WorkflowPersistence,
    eid: str,
    node_id: str,
    current: VersionedStep | None,
    *,
    owner: str,
    ttl: float,
    now: float | None = None,
) -> StepLease | None:
    """Start a new attempt of a pending step under a fresh lease; None if another worker won."""
    previous = current.record if current else StepRecord(node_id=node_id)
    started = previous.start(owner, ttl, time.time() if now is None else now)
    version = await persistence.swap_step(eid, current, started)
    return None if version is None else StepLease(persistence, eid, version, ttl)


class StepLease:
    """The version of a step this worker holds; every write goes through ``swap``."""

    def __init__(
        self, persistence: WorkflowPersistence, eid: str, version: VersionedStep, ttl: float
    ):
        self.persistence = persistence
        self.eid = eid
        self.version = version
        self.ttl = ttl
        self._lock = asyncio.Lock()

    @property
    def record(self) -> StepRecord:
        return self.version.record

    async def swap(self, new: StepRecord) -> VersionedStep:
        """Replace the held version; raise ``LeaseLost`` if the step moved under us."""
        async with self._lock:
            return await self._swap(new)

    async def _swap(self, new: StepRecord) -> VersionedStep:
        version = await self.persistence.swap_step(self.eid, self.version, new)
        if version is None:
            raise LeaseLost(self.eid, self.record.node_id)
        self.version = version
        return version

    async def commit(
        self,
        new: StepRecord,
        *,
        edges: Mapping[str, bool],
        fired: Sequence[str],
        now: float,
        hand_on: Sequence[VersionedStep] = (),
        retire: bool = False,
        arrivals: Mapping[str, JoinCount] | None = None,
        final: Finish | None = None,
    ) -> Committed:
        """Record a completed step with its edges and the successors it alone fires (see
        ``WorkflowPersistence.commit_step``), in one write; ``LeaseLost`` if the step moved.
        ``hand_on``: successors' first attempts, leased to workers of this process, written
        with it if they can start (see ``commit_step``; if not, the step is committed without
        them), and with them, if ``retire``, the step leaves the agenda. ``arrivals``: what
        the edges add to the counters of joins, read back after the write
        (``Committed.joins``). ``final``: the execution's final status, which the step
        completes, written with it if the execution has none yet (if it has, the step is
        committed without it: ``Committed.finished``)."""
        plain: tuple[Sequence[VersionedStep], Finish | None] = ((), None)
        extra = (hand_on, final)
        async with self._lock:
            for started, finish in (extra, plain) if hand_on or final is not None else (plain,):
                committed = await self.persistence.commit_step(
                    self.eid,
                    self.version,
                    new,
                    edges=edges,
                    fired=fired,
                    now=now,
                    started=started,
                    retire=retire and bool(started),
                    arrivals=arrivals,
                    final=finish,
                )
                if committed is not None:
                    self.version = committed.step
                    return committed
            raise LeaseLost(self.eid, self.record.node_id)

    async def extend(self) -> None:
        """Renew the lease; ``LeaseLost`` if the step is no longer running. The renewal is
        built under the lock from the version held then: a heartbeat that waited there for
        the step's commit or cancel (its write under way) must not write the running record
        it would have built before, over the step's end."""
        async with self._lock:
            if self.record.status != "running":
                raise LeaseLost(self.eid, self.record.node_id)
            await self._swap(self.record.heartbeat(self.ttl, time.time()))

    async def release(self, error: str) -> None:
        """Give the step back as pending so another worker can take it at once."""
        with contextlib.suppress(LeaseLost):
            await self.swap(self.record.release(error, time.time()))
