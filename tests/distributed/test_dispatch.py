"""``LocalDispatch.reserve``: the free slots of this process's runners held for the successors a
commit (or the write that records a new execution) leases to them."""

from __future__ import annotations

import asyncio

import pytest

from distributed import Task
from distributed.dispatch import Carried, HandOn, LocalDispatch


class SlotRunner:
    """A runner with ``free`` slots; asked for one more, it waits (as a worker does for a turn
    behind a waiter a release woke) until ``freed`` is set, then has none."""

    def __init__(self, runner_id: str, free: int) -> None:
        self.id, self.free, self.released = runner_id, free, 0
        self.freed, self.waiting = asyncio.Event(), asyncio.Event()

    def try_take(self, task: Task, carried: Carried | None = None) -> bool:
        return False

    def take_when_free(self, task: Task) -> bool:
        return False

    async def reserve(self) -> HandOn | None:
        if self.free == 0:
            self.waiting.set()
            await self.freed.wait()
            return None
        self.free -= 1
        return HandOn(self.id, 1.0, lambda *_: None, self._release)

    def _release(self) -> None:
        self.released += 1


async def test_reserve_holds_free_slots_of_one_runner_after_another() -> None:
    dispatch, first, second = LocalDispatch(), SlotRunner("w1", 2), SlotRunner("w2", 2)
    for runner in (first, second):
        dispatch.register(runner)
        runner.freed.set()
    held = await dispatch.reserve(3)
    assert [slot.owner for slot in held] == ["w1", "w1", "w2"]
    assert await dispatch.reserve(0) == []


async def test_a_reservation_cancelled_midway_gives_back_the_slots_it_held() -> None:
    dispatch, runner = LocalDispatch(), SlotRunner("w1", 1)
    dispatch.register(runner)
    reserving = asyncio.create_task(dispatch.reserve(2))
    await runner.waiting.wait()  # it held the free slot and waits for a second one
    reserving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reserving
    assert runner.released == 1, "the slot held before the cancel was kept"
