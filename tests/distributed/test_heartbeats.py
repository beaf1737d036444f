"""A worker's heartbeats: one task extends every lease it holds, on a real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from distributed import KVPersistence, LeaseLost
from distributed.heartbeats import Heartbeats
from distributed.lease import StepLease, acquire_lease
from store import KVStore, MemoryStore

INTERVAL = 0.1


@pytest.fixture
async def persistence() -> AsyncIterator[KVPersistence]:
    async with MemoryStore() as store:
        yield KVPersistence(store)


async def _lease(persistence: KVPersistence, node: str) -> StepLease:
    lease = await acquire_lease(persistence, "e", node, None, owner="w", ttl=1.0)
    assert lease is not None
    return lease


async def _expires_at(persistence: KVPersistence, node: str) -> float:
    current = await persistence.step("e", node)
    assert current is not None and current.record.lease is not None
    return current.record.lease.expires_at


async def test_held_leases_are_extended_every_interval_and_dropped_ones_never(
    persistence: KVPersistence,
) -> None:
    beats = Heartbeats(INTERVAL)
    held, dropped = await _lease(persistence, "held"), await _lease(persistence, "dropped")
    lost: list[str] = []
    beats.hold(held, lambda: lost.append("held"))
    beats.hold(dropped, lambda: lost.append("dropped"))
    beats.drop(dropped)
    first, before = (
        await _expires_at(persistence, "held"),
        await _expires_at(persistence, "dropped"),
    )
    running = asyncio.create_task(beats.run())
    expiries = {first}
    deadline = time.monotonic() + 5 * INTERVAL + 0.2
    while time.monotonic() < deadline:
        expiries.add(await _expires_at(persistence, "held"))
        await asyncio.sleep(INTERVAL / 10)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert 4 <= len(expiries) - 1 <= 6  # one extension per interval
    assert await _expires_at(persistence, "dropped") == before
    assert lost == []


async def test_a_lease_that_moved_is_reported_once_and_no_longer_extended(
    persistence: KVPersistence,
) -> None:
    beats = Heartbeats(INTERVAL)
    lease = await _lease(persistence, "a")
    lost: list[float] = []
    beats.hold(lease, lambda: lost.append(time.monotonic()))
    current = await persistence.step("e", "a")
    assert current is not None
    moved = current.record.release("taken away", time.time())
    assert await persistence.swap_step("e", current, moved) is not None
    began = time.monotonic()
    running = asyncio.create_task(beats.run())
    await asyncio.sleep(4 * INTERVAL)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert len(lost) == 1
    assert INTERVAL - 0.02 <= lost[0] - began <= 2 * INTERVAL
    after = await persistence.step("e", "a")
    assert after is not None and after.record.status == "pending"  # not extended back


class FlakyLease(StepLease):
    """A real lease whose first extension fails as a store would."""

    failures = 1

    async def extend(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store blipped")
        await super().extend()


async def test_a_failed_extension_is_tried_again_a_beat_later(
    persistence: KVPersistence,
) -> None:
    beats = Heartbeats(INTERVAL)
    lease = await _lease(persistence, "a")
    flaky = FlakyLease(persistence, "e", lease.version, lease.ttl)
    beats.hold(flaky, lambda: None)
    first = await _expires_at(persistence, "a")
    running = asyncio.create_task(beats.run())
    await asyncio.sleep(2.5 * INTERVAL)
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert flaky.failures == 0
    assert await _expires_at(persistence, "a") > first


class SlowSwaps:
    """A store whose compare-and-set takes a while: a write of the step's end under way."""

    def __init__(self, inner: KVStore) -> None:
        self.inner = inner

    async def compare_and_set(
        self, key: str, expected: bytes | None, new: bytes, *, ttl: float | None = None
    ) -> bool:
        await asyncio.sleep(0.05)
        return await self.inner.compare_and_set(key, expected, new, ttl=ttl)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("end", ["cancel", "fail"])
async def test_a_heartbeat_that_waited_for_the_step_s_end_does_not_undo_it(end: str) -> None:
    """The heartbeat runs beside the step; one that comes while the step's end is being
    written waits for the lease's lock, then finds the step no longer running (it wrote the
    running record it had built before, over the end: the step looked running again)."""
    persistence = KVPersistence(SlowSwaps(MemoryStore()))  # type: ignore[arg-type]
    lease = await _lease(persistence, "a")
    now = time.time()
    ended = lease.record.cancel(now) if end == "cancel" else lease.record.fail("boom", now)
    ending = asyncio.ensure_future(lease.swap(ended))
    await asyncio.sleep(0.01)  # the end's write under way, the lease's lock held
    with pytest.raises(LeaseLost):
        await lease.extend()
    await ending
    stored = await persistence.step("e", "a")
    assert stored is not None and stored.record.status == ended.status
