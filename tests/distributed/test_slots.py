"""A worker's slots (``distributed.slots``): what an offer sees as free."""

from __future__ import annotations

import asyncio

from distributed.slots import Slots


async def test_a_slot_released_while_a_woken_waiter_has_yet_to_run_is_free_for_an_offer() -> None:
    """``asyncio.Semaphore.locked()`` stays True while a waiter a release woke has yet to
    run, though its slot is counted taken already: a second release in that turn left a slot
    free that every offer saw as taken (most first tasks of an embedded run went through the
    queue instead of starting at once)."""
    slots = Slots(2)
    await slots.acquire()
    await slots.acquire()
    waiting = asyncio.create_task(slots.wait_free())  # the fetch loop, every slot busy
    await asyncio.sleep(0)
    slots.release()  # wakes it: it runs a turn later
    slots.release()

    assert not slots.locked()
    slots.promise()
    assert slots.locked()  # the one slot left is promised
    await waiting  # it took no slot
    await slots.acquire(promised=True)
    assert not slots.locked()
    await slots.acquire()
    assert slots.locked()
