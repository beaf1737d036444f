"""Doorbells: a task enqueued in one process starts at once on an idle worker of another.

Eager dispatch (``distributed.dispatch``) starts a task on a free slot of the process that
enqueues it. A process without a free slot of its own -- a client, or a worker whose slots are
busy -- also rings a doorbell: it offers the tasks its own workers did not take to the live
workers of other processes that had free slots (each renews its liveness key with the number,
``Worker.free_slots``), round robin, at most that many each, over the store's publish/listen
(one ``PUBLISH`` per worker rung on Redis; a client's new execution rings in the write that
records it, ``create_execution``). A worker that hears a ring starts each task it has a
free slot for, as it would one of its own process's (``Worker.try_take``); one that is busy or
stopping lets it be. The task was published to the queue all the same, and the steps it names
are on the agenda, so a ring adds speed, never a duty: a ring lost, unheard or refused leaves
the task to the broker's delivery, as before. The queued copy of a task a ring started is
dropped by whoever receives it (the step is running or done), as eager copies are.

Why: the broker's delivery is the slow hop of a cluster (a Kafka-protocol broker answers a
consumer's long poll within milliseconds at best; Tansu holds it for half of
``fetch_max_wait_ms``), and it is paid by every execution's first step, by the successors a
step cannot hand on to its own process, and by a fan-out wider than one process's free slots.

A ring is a list of tasks as on the queue (JSON, one per line), decoded as untrusted input
(``decode_task``): one that does not decode is logged and dropped; its queued copy is
dead-lettered with the reason where it is delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from .dispatch import LocalDispatch
from .errors import UndecodableTask
from .listening import listen_until_closed
from .models import Task
from .persistence import WorkflowPersistence
from .queue import decode_task
from .timebox import reraise_if_cancelling

__all__ = ["Doorbells", "answer_rings", "decode_ring", "encode_ring"]

log = logging.getLogger(__name__)

REFRESH = 1.0  # seconds a process trusts the list of live workers it read


def encode_ring(tasks: Sequence[Task]) -> bytes:
    return b"\n".join(task.to_bytes() for task in tasks)


def decode_ring(message: bytes) -> list[Task]:
    """The tasks of a ring that decode; those that do not are logged and left out."""
    tasks = []
    for line in message.split(b"\n"):
        if not line:
            continue
        try:
            tasks.append(decode_task(line))
        except UndecodableTask as exc:
            log.warning("ignoring a ring: %s", exc)
    return tasks


class Doorbells:
    """Rings the workers of other processes with the tasks this process did not start: those
    that reported free slots when they last renewed their liveness (every quarter of its TTL),
    each with at most as many tasks as it had free slots. Under load no worker has any, and
    nobody is rung."""

    def __init__(
        self,
        persistence: WorkflowPersistence,
        dispatch: LocalDispatch,
        *,
        refresh: float = REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.persistence = persistence
        self.dispatch = dispatch
        self.refresh = refresh
        self.clock = clock
        self._free: dict[str, int] = {}  # worker id -> free slots, as last read
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()
        self._next = 0

    async def ring(self, tasks: Sequence[Task]) -> None:
        """Offer ``tasks`` to the live workers of other processes, round robin, one message
        per worker; a failure is logged (the queue delivers the tasks)."""
        try:
            rings = (self.persistence.ring(w, m) for w, m in (await self.rings(tasks)).items())
            await asyncio.gather(*rings)
        except Exception as exc:
            reraise_if_cancelling(exc)
            log.debug("could not ring other workers (%r); the queue delivers", exc)

    async def rings(self, tasks: Sequence[Task], *, probe: bool = False) -> dict[str, bytes]:
        """The rings that would offer ``tasks`` to the live workers of other processes: the
        message for each worker (for a write that sends them itself, ``create_execution``).
        Reads the workers' free slots when the last read is ``refresh`` seconds old (none
        if that read fails).
        ``probe``: if no worker reported a free slot, the first task goes to one live worker
        all the same, round robin: the reports are up to a renewal old (just after a burst
        every worker reported none), and one that freed a slot since takes it (a client's
        rings ride on the write that records the execution: a probe costs it nothing)."""
        if not tasks:
            return {}
        try:
            live = await self._remote_workers()
        except Exception as exc:
            reraise_if_cancelling(exc)
            log.debug("could not ring other workers (%r); the queue delivers", exc)
            return {}
        offered = self._share(tasks, {worker: n for worker, n in live.items() if n > 0})
        if not offered and probe and live:
            workers = sorted(live)
            offered = {workers[self._next % len(workers)]: [tasks[0]]}
            self._next += 1
        return {worker: encode_ring(shared) for worker, shared in offered.items()}

    def _share(self, tasks: Sequence[Task], free: dict[str, int]) -> dict[str, list[Task]]:
        """The tasks for each worker, round robin, at most its free slots each."""
        offered: dict[str, list[Task]] = {}
        workers = list(free)
        for task in tasks:
            if not workers:
                break
            worker = workers[self._next % len(workers)]
            self._next += 1
            offered.setdefault(worker, []).append(task)
            if len(offered[worker]) >= free[worker]:
                workers.remove(worker)
        return offered

    async def _remote_workers(self) -> dict[str, int]:
        """The live workers of other processes with the free slots each reported, as read at
        most ``refresh`` seconds ago."""
        if self.clock() - self._read_at >= self.refresh:
            async with self._reading:
                if self.clock() - self._read_at >= self.refresh:
                    self._free = await self.persistence.free_slots()
                    self._read_at = self.clock()
        local = self.dispatch.is_local
        return {w: n for w, n in self._free.items() if not local(w)}


async def answer_rings(
    persistence: WorkflowPersistence, worker_id: str, take: Callable[[Task], bool]
) -> None:
    """Hand every task rung for ``worker_id`` to ``take`` (which starts it if a slot is free),
    until the store closes (the queue delivers meanwhile when the store fails)."""

    def hear(message: bytes) -> None:
        for task in decode_ring(message):
            take(task)

    await listen_until_closed(lambda: persistence.rings(worker_id), hear, f"rings for {worker_id}")
