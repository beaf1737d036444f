"""One task per worker extends the leases of all its running steps.

A lease is extended ``interval`` seconds after it was taken, and again ``interval`` after each
extension ended; an extension that fails on the store is tried again a beat later (the lease's
expiry is the backstop), one that finds the lease moved calls the step's ``on_lost``. A step
that ends before its first beat -- almost every step -- costs a dictionary entry, not a task
and a timer of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import LeaseLost
from .lease import StepLease
from .timebox import reraise_if_cancelling

__all__ = ["Heartbeats"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Beat:
    due: float  # time.monotonic() of the next extension; inf while one runs
    on_lost: Callable[[], None]


class Heartbeats:
    """The leases a worker holds, extended every ``interval`` seconds by ``run``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._held: dict[StepLease, _Beat] = {}
        self._extending: set[asyncio.Task[None]] = set()

    def hold(self, lease: StepLease, on_lost: Callable[[], None]) -> None:
        """Extend ``lease`` from ``interval`` seconds on, until ``drop``."""
        self._held[lease] = _Beat(time.monotonic() + self.interval, on_lost)

    def drop(self, lease: StepLease) -> None:
        """Stop extending ``lease``; an extension under way ends (the step's commit waits for
        it on the lease's lock), and a lost lease it finds is no longer reported."""
        self._held.pop(lease, None)

    async def run(self) -> None:
        """Extend the leases that are due, each in a task of its own (a slow store call holds
        up no other lease); sleep until the next is due. A lease held while this sleeps is due
        no sooner than the sleep ends: ``interval`` after it was taken."""
        try:
            while True:
                now = time.monotonic()
                for lease, beat in list(self._held.items()):
                    if beat.due <= now:
                        beat.due = float("inf")
                        extending = asyncio.create_task(self._extend(lease, beat))
                        self._extending.add(extending)
                        extending.add_done_callback(self._extending.discard)
                due = min((beat.due for beat in self._held.values()), default=now + self.interval)
                await asyncio.sleep(min(max(due - time.monotonic(), 0.0), self.interval))
        finally:
            for extending in self._extending:
                extending.cancel()

    async def _extend(self, lease: StepLease, beat: _Beat) -> None:
        try:
            await lease.extend()
        except LeaseLost:
            if self._held.get(lease) is beat:
                del self._held[lease]
                log.warning("lease lost on %s/%s", lease.eid, lease.record.node_id)
                beat.on_lost()
            return
        except Exception as exc:  # a store hiccup: try again next beat
            reraise_if_cancelling(exc)
            log.exception("heartbeat failed on %s/%s", lease.eid, lease.record.node_id)
        beat.due = time.monotonic() + self.interval
