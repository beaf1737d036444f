"""A worker's slots: how many steps it runs at once, with the slots promised to tasks not yet
in one.

A task a worker takes eagerly (``Worker.try_take``) gets its slot in a task of its own, a turn
of the event loop later. Counted by the semaphore alone, every offer made in the same turn (the
recovery sweep enqueuing many executions' steps at once, a burst of rings) saw the slots still
free, and the worker accepted them all, to run one after another in its own slots instead of
leaving them to the queue and to the idle workers of other processes. ``promise`` counts such a
task against the free slots at once.
"""

from __future__ import annotations

import asyncio

__all__ = ["Slots"]


class Slots:
    """``concurrency`` slots: a semaphore that also knows how many of its free slots are
    promised."""

    def __init__(self, concurrency: int) -> None:
        self._semaphore = asyncio.Semaphore(concurrency)
        self._promised = 0

    def locked(self) -> bool:
        """True if no slot is free for one more task (every free one may be promised).
        Counted from the semaphore's value, not ``Semaphore.locked()``: that stays True while
        a waiter a release woke has yet to run (a turn of the loop) though the value already
        counts that waiter's slot as taken, and every offer then saw a worker with slots free
        as full (in an embedded run, most executions' first task went through the queue)."""
        return self._semaphore._value <= self._promised  # no public reading of it

    def promise(self) -> None:
        """Count a free slot as taken by a task that will ``acquire(promised=True)`` it."""
        self._promised += 1

    async def wait_free(self) -> None:
        """Return once a slot is free, without taking it (the fetch loop's: it takes one
        when a delivery comes, so eager tasks may use every slot while it waits)."""
        if self._semaphore.locked():
            await self._semaphore.acquire()
            self._semaphore.release()

    async def acquire(self, *, promised: bool = False) -> None:
        """Take a slot, waiting for one to be released if none is free; ``promised``: the
        slot ``promise`` counted (given back to the count even if the wait is cancelled)."""
        try:
            await self._semaphore.acquire()
        finally:
            if promised:
                self._promised -= 1

    def release(self) -> None:
        self._semaphore.release()
