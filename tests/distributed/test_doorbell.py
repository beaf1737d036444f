"""Doorbells (``distributed.doorbell``): a process rings the workers of other processes with the
tasks its own workers did not take; a worker with a free slot starts them at once, the broker's
copies are dropped where they arrive. On real stores (memory for the ringing rules, Redis and
the Kafka-protocol broker for two runtimes that share them).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from scenario_support import Probe, RuntimeFactory, blueprint, plain
from support import assert_eventually

from distributed import KVPersistence, Runtime, Task
from distributed.dispatch import LocalDispatch
from distributed.doorbell import Doorbells, decode_ring, encode_ring
from orchestration import Engine
from store import MemoryStore

WAIT = 30.0


def tasks(*nodes: str) -> list[Task]:
    return [Task(execution_id="e", node_id=node) for node in nodes]


def test_a_ring_carries_tasks_as_on_the_queue_and_drops_what_does_not_decode(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent = tasks("a", "b")
    assert decode_ring(encode_ring(sent)) == sent
    bad = b"\n".join([sent[0].to_bytes(), b"{not json", b'{"execution_id":"x/y","node_id":"n"}'])
    with caplog.at_level(logging.WARNING, logger="distributed.doorbell"):
        assert decode_ring(bad + b"\n") == sent[:1]
    assert len([r for r in caplog.records if "ignoring a ring" in r.message]) == 2
    assert decode_ring(b"") == []


class LocalRunner:
    """A runner registered in the ringing process's dispatch, always busy."""

    def __init__(self, runner_id: str) -> None:
        self.id = runner_id

    def try_take(self, task: Task, carried: object = None) -> bool:
        return False

    def take_when_free(self, task: Task) -> bool:
        return False

    async def reserve(self) -> None:
        return None


@pytest.fixture
async def persistence() -> AsyncIterator[KVPersistence]:
    async with MemoryStore() as store:
        yield KVPersistence(store)


async def _hear(persistence: KVPersistence, worker_id: str, heard: list[list[str]]) -> None:
    async for message in persistence.rings(worker_id):
        if message:  # an empty ring (``listening``) carries no task
            heard.append([task.node_id for task in decode_ring(message)])


async def listening(persistence: KVPersistence, worker_ids: list[str]) -> None:
    """Until every worker's channel has a listener: an empty ring is heard, and carries no task."""
    channels = [persistence.keys.doorbell(w) for w in worker_ids]

    async def all_heard() -> bool:
        return all([await persistence.store.publish(c, b"") for c in channels])

    await assert_eventually(all_heard, timeout=WAIT)


async def test_rings_go_round_robin_to_live_workers_of_other_processes_only(
    persistence: KVPersistence,
) -> None:
    dispatch = LocalDispatch()
    dispatch.register(LocalRunner("here"))
    for worker in ("here", "w1", "w2"):
        await persistence.touch_worker(worker, 30, free_slots=4)
    heard: dict[str, list[list[str]]] = {w: [] for w in ("here", "w1", "w2")}
    listeners = [asyncio.create_task(_hear(persistence, w, heard[w])) for w in heard]
    await listening(persistence, list(heard))
    bells = Doorbells(persistence, dispatch)
    await bells.ring(tasks("a", "b", "c"))
    await bells.ring(tasks("d"))
    await bells.ring([])
    await assert_eventually(lambda: sum(len(h) for h in heard.values()) == 3)
    for listener in listeners:
        listener.cancel()
    assert heard["here"] == []  # its own process's runners were offered the tasks already
    assert sorted(heard["w1"] + heard["w2"]) == [["a", "c"], ["b"], ["d"]]


async def test_a_worker_is_rung_with_at_most_the_slots_it_had_free(
    persistence: KVPersistence,
) -> None:
    await persistence.touch_worker("busy", 30, free_slots=0)
    await persistence.touch_worker("one", 30, free_slots=1)
    await persistence.touch_worker("two", 30, free_slots=2)
    await persistence.store.put(persistence.keys.worker("odd"), b"lots", ttl=30)  # ignored
    heard: dict[str, list[list[str]]] = {w: [] for w in ("busy", "one", "two", "odd")}
    listeners = [asyncio.create_task(_hear(persistence, w, heard[w])) for w in heard]
    await listening(persistence, list(heard))
    await Doorbells(persistence, LocalDispatch()).ring(tasks("a", "b", "c", "d", "e"))
    await assert_eventually(lambda: len(heard["one"]) == len(heard["two"]) == 1)
    for listener in listeners:
        listener.cancel()
    assert heard["busy"] == heard["odd"] == []  # d and e are left to the broker
    assert sorted([*heard["one"][0], *heard["two"][0]]) == ["a", "b", "c"]
    assert len(heard["one"][0]) == 1


async def test_a_probe_offers_the_first_task_to_a_busy_worker_when_none_reported_free_slots(
    persistence: KVPersistence,
) -> None:
    """A client's new execution: every report says busy (just after a burst, say), yet one
    live worker of another process is offered the first task; never one of this process."""
    dispatch = LocalDispatch()
    dispatch.register(LocalRunner("here"))
    for worker in ("here", "w1", "w2"):
        await persistence.touch_worker(worker, 30, free_slots=0)
    bells = Doorbells(persistence, dispatch)
    assert await bells.rings(tasks("a", "b")) == {}
    probes = [await bells.rings(tasks("a", "b"), probe=True) for _ in range(4)]
    assert [sorted(p) for p in probes] == [["w1"], ["w2"], ["w1"], ["w2"]]
    assert [[t.node_id for t in decode_ring(m)] for p in probes for m in p.values()] == [["a"]] * 4
    await persistence.touch_worker("w2", 30, free_slots=1)
    bells = Doorbells(persistence, dispatch)  # reads the reports again
    rung = await bells.rings(tasks("a", "b"), probe=True)
    assert {w: [t.node_id for t in decode_ring(m)] for w, m in rung.items()} == {"w2": ["a"]}


async def test_the_list_of_workers_is_read_again_after_the_refresh_interval_only(
    persistence: KVPersistence,
) -> None:
    now = [0.0]
    bells = Doorbells(persistence, LocalDispatch(), refresh=1.0, clock=lambda: now[0])
    heard: list[list[str]] = []
    listener = asyncio.create_task(_hear(persistence, "late", heard))
    await listening(persistence, ["late"])
    await bells.ring(tasks("before"))  # no live worker: nothing is sent
    await persistence.touch_worker("late", 30, free_slots=1)
    await bells.ring(tasks("cached"))  # the list read a moment ago is still trusted
    now[0] = 1.0
    await bells.ring(tasks("after"))
    await assert_eventually(lambda: heard == [["after"]])
    listener.cancel()


async def test_a_store_that_fails_a_ring_costs_nothing_but_the_ring(
    persistence: KVPersistence, caplog: pytest.LogCaptureFixture
) -> None:
    bells = Doorbells(persistence, LocalDispatch())
    await persistence.store.close()
    with caplog.at_level(logging.DEBUG, logger="distributed.doorbell"):
        await bells.ring(tasks("a"))  # does not raise: the queue delivers the task
    assert any("could not ring" in r.message for r in caplog.records)


def withhold_deliveries(runtime: Runtime, release: asyncio.Event) -> None:
    """The runtime's workers receive nothing from the broker until ``release`` is set."""
    queue = runtime.engine.context.queue
    make_consumer = queue.consumer

    async def consumer(group: str) -> object:
        real = await make_consumer(group)
        fetch = real.next

        async def held() -> object:
            await release.wait()
            return await fetch()

        real.next = held  # type: ignore[method-assign]  # the real consumer, held back
        return real

    queue.consumer = consumer  # type: ignore[method-assign,assignment]


@pytest.mark.parametrize("make_runtime", ["cluster"], indirect=True)
async def test_a_clients_execution_runs_on_a_rung_worker_while_the_broker_delivers_nothing(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("rung", plain("a", "b", "c"), [("a", "b"), ("a", "c")]))
    release = asyncio.Event()
    workers = make_runtime(engine)
    withhold_deliveries(workers, release)
    async with workers, make_runtime(engine, workers=False) as client:
        persistence = client.engine.persistence
        assert isinstance(persistence, KVPersistence)
        assert workers.pool is not None
        await listening(persistence, [worker.id for worker in workers.pool.workers])
        rang, ring = list[str](), persistence.ring

        async def counted(worker_id: str, message: bytes) -> None:
            rang.append(worker_id)
            await ring(worker_id, message)

        persistence.ring = counted  # type: ignore[method-assign]  # the real one, observed
        eid = await client.engine.execute_async("rung", {})
        snapshot = await client.engine.wait(eid, timeout=WAIT)
        assert snapshot.status == "completed"
        assert probe.runs_of(eid) == {"a": 1, "b": 1, "c": 1}
        assert rang == [], "the client rings in the write that records the execution"
        release.set()  # the broker's copies arrive now, and are dropped
        again = await client.engine.execute_sync("rung", {}, timeout=WAIT)
        assert again.status == "completed"
        await asyncio.sleep(0.5)
    assert probe.runs_of(eid) == {"a": 1, "b": 1, "c": 1}
