"""``wait`` is woken when the final status is told (``distributed.final_watch``), in its own
process or, through the store's notice, in another one, not at its next poll; on both backend
pairs (the other process: Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from scenario_support import Probe, RuntimeFactory, blueprint, hearing_finals, plain
from support import assert_eventually, require_redis

from distributed import EngineConfig, FinalStatus, KVPersistence, Runtime, WaitTimeout
from distributed.final_watch import FinalWatch
from distributed.hooks import ExecutionFinished
from orchestration import Engine
from store import KVStore

SLOW_POLL = EngineConfig(poll_interval=30.0, max_poll_interval=30.0)


async def test_wait_returns_when_this_process_tells_the_final_status_not_at_its_next_poll(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("pair", plain("a", "b"), [("a", "b")]))
    async with make_runtime(engine) as runtime:
        runtime.engine.config = SLOW_POLL  # a poll would come after 30 s
        begun = time.monotonic()
        eids = [await runtime.engine.execute_async("pair", {}) for _ in range(3)]
        snapshots = await asyncio.gather(*(runtime.engine.wait(e, timeout=20) for e in eids))
        waited = time.monotonic() - begun
        assert not runtime.engine.context.finals._events, "a waiter's event was left behind"
    assert [s.status for s in snapshots] == ["completed"] * 3
    assert waited < 10, f"wait returned after {waited:.1f} s: at a poll, not when told"


@pytest.mark.parametrize("make_runtime", ["cluster"], indirect=True)
async def test_wait_is_woken_by_a_final_status_another_process_tells(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """A client without workers, polling every 30 s, returns once the workers' runtime (its
    own store and broker connections, as another process) tells the status: the notice."""
    engine.register_blueprint(blueprint("held", {"a": {"gate": "a"}, "b": {}}, [("a", "b")]))
    async with make_runtime(engine, workers=False) as client, make_runtime(engine):
        client.engine.config = SLOW_POLL
        eid = await client.engine.execute_async("held", {})
        waiter = asyncio.ensure_future(client.engine.wait(eid, timeout=20))
        await assert_eventually(lambda: _listeners(client), timeout=10)
        begun = time.monotonic()
        probe.open_gate("a")
        snapshot = await waiter
        waited = time.monotonic() - begun
    assert snapshot.status == "completed"
    assert waited < 10, f"wait returned after {waited:.1f} s: at a poll, not when told"


async def test_a_final_status_stored_is_told_though_its_writer_never_tells_the_hooks(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    """The write that stores a final status sends its notice: a waiter wakes even when the
    writer dies before it calls the ``execution_final`` hooks (here: ``set_final`` alone)."""
    engine.register_blueprint(blueprint("pair", plain("a", "b"), [("a", "b")]))
    async with make_runtime(engine, workers=False) as client:
        client.engine.config = SLOW_POLL
        persistence, finals = client.engine.persistence, client.engine.context.finals
        eid = await client.engine.execute_async("pair", {})
        waiter = asyncio.ensure_future(client.engine.wait(eid, timeout=20))
        await assert_eventually(lambda: hearing_finals(persistence, finals), timeout=10)
        begun = time.monotonic()
        await persistence.set_final(eid, FinalStatus.cancelled(), "a worker about to die")
        snapshot = await waiter
        waited = time.monotonic() - begun
    assert snapshot.status == "cancelled"
    assert waited < 10, f"wait returned after {waited:.1f} s: at a poll, not when told"


class Reads:
    """A store that records which read each call was (``get``, ``get_many`` or ``scan``)."""

    def __init__(self, inner: KVStore, calls: list[str]) -> None:
        self.inner, self.calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name not in ("get", "get_many", "scan"):
            return found

        def read(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return found(*args, **kwargs)

        return read


def recording_reads(calls: list[str]) -> Callable[[KVStore], KVStore]:
    """A ``wrap_store`` whose store records its reads in ``calls``."""

    def wrap(store: KVStore) -> KVStore:
        return Reads(store, calls)  # type: ignore[return-value]

    return wrap


async def test_a_waiting_client_reads_the_execution_once_per_poll_and_the_steps_once_at_the_end(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    """The record, the final status and the pause flag come in one read (one round trip on
    Redis): each poll of ``wait`` is that read, and a snapshot adds the scan of the steps."""
    engine.register_blueprint(blueprint("pair", plain("a", "b"), [("a", "b")]))
    reads: list[str] = []
    async with make_runtime(engine, workers=False, wrap_store=recording_reads(reads)) as client:
        client.engine.config = EngineConfig(poll_interval=0.01, max_poll_interval=0.01)
        eid = await client.engine.execute_async("pair", {})
        reads.clear()
        snapshot = await client.engine.get_execution_status(eid)
        assert (snapshot.status, reads) == ("pending", ["get_many", "scan"])
        reads.clear()
        with pytest.raises(WaitTimeout):
            await client.engine.wait(eid, timeout=0.3)
        assert set(reads) == {"get_many"} and len(reads) >= 3, reads


async def test_a_client_that_hears_final_statuses_polls_only_at_the_longest_interval(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    """Until its listener has heard a notice, ``wait`` backs off from ``poll_interval``; once
    it hears them (any execution's), it reads at ``max_poll_interval`` only."""
    engine.register_blueprint(blueprint("pair", plain("a", "b"), [("a", "b")]))
    reads: list[str] = []
    async with make_runtime(engine, workers=False, wrap_store=recording_reads(reads)) as client:
        client.engine.config = EngineConfig(poll_interval=0.01, max_poll_interval=5.0)
        eid = await client.engine.execute_async("pair", {})
        finals = client.engine.context.finals
        reads.clear()
        with pytest.raises(WaitTimeout):
            await client.engine.wait(eid, timeout=0.5)
        assert not finals.hearing and len(reads) >= 6, reads  # 0.01, 0.015, 0.0225, ...

        persistence = client.engine.persistence
        await assert_eventually(lambda: hearing_finals(persistence, finals), timeout=10)
        reads.clear()
        begun = time.monotonic()
        with pytest.raises(WaitTimeout):
            await client.engine.wait(eid, timeout=0.5)
        waited = time.monotonic() - begun
        assert len(reads) == 2, reads  # the first read, and one at the deadline
        assert waited < 2, f"the wait overran its timeout: {waited:.1f} s"
        await client.engine.close()
        assert not finals.hearing


async def _listeners(runtime: Runtime) -> int:
    """How many connections listen for final statuses on the runtime's store (Redis)."""
    persistence = runtime.engine.persistence
    assert isinstance(persistence, KVPersistence)
    prefix = getattr(persistence.store, "prefix")  # noqa: B009  # a RedisStore
    channel = f"{prefix}\x00channel:{persistence.keys.finals_channel()}"
    redis = aioredis.from_url(require_redis())
    try:
        counts = await redis.pubsub_numsub(channel)
    finally:
        await redis.aclose()
    return int(counts[0][1])


async def test_a_watch_is_set_only_by_its_own_executions_final_status() -> None:
    watch = FinalWatch()
    with watch.watch("e1") as first, watch.watch("e1") as second, watch.watch("e2") as other:
        watch.execution_final(_finished("e1"))
        assert first.is_set() and second.is_set() and not other.is_set()
    assert not watch._events


def _finished(execution_id: str) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id=execution_id,
        workflow_id="w",
        status="completed",
        error=None,
        failed_step=None,
        generation=1,
        duration=0.0,
    )
