"""The hand-on (``dispatch.HandOn``): a step's commit leases the successors it alone decides to
its own slot, which runs the first next, and to free slots of its process, without a task
message; the last source of a join fires the join and leases it to its slot in one write; the
write that records a new execution leases its start steps to free slots of the process that
submits it; on both backend pairs.

What a crash does to a successor leased that way (the sweep reclaims it from the dead worker)
is tested with real processes in ``test_cluster_processes`` (the after-commit failpoint).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import replace
from typing import Any, cast

import pytest
from scenario_support import (
    FAST_POOL,
    VIEWS,
    Probe,
    RuntimeFactory,
    blueprint,
    plain,
    step_completed,
    views_blueprint,
)
from support import assert_eventually

from distributed import Runtime, StepRecord, Task
from distributed.persistence import TaskView, VersionedStep
from orchestration import Engine, Node, NodeContext, NodeResult
from store import Delete, Incr, KVStore, Put

WAIT = 60.0
CHAIN = ("a", "b", "c", "d")
DELIVERED_ONLY = replace(FAST_POOL, worker=replace(FAST_POOL.worker, eager=False))


def published(runtime: Runtime) -> list[list[str]]:
    """The node ids of every batch of tasks the runtime publishes from now on."""
    batches: list[list[str]] = []
    queue = runtime.engine.context.queue
    enqueue_many = queue.enqueue_many

    async def counted(tasks: Sequence[Task]) -> None:
        if tasks:
            batches.append([t.node_id for t in tasks])
        await enqueue_many(tasks)

    queue.enqueue_many = counted  # type: ignore[method-assign]  # the real queue, observed
    return batches


def register_chain(engine: Engine) -> None:
    edges = list(itertools.pairwise(CHAIN))
    engine.register_blueprint(blueprint("chain", plain(*CHAIN), edges))


async def test_a_chain_submitted_where_workers_run_publishes_no_task(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    register_chain(engine)
    async with make_runtime(engine) as runtime:
        batches = published(runtime)
        eid = await runtime.engine.execute_async("chain", {})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == dict.fromkeys(CHAIN, 1)
    assert batches == [], "a was leased at creation; b, c and d were handed on"


async def test_a_diamond_submitted_where_workers_run_publishes_no_task(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    nodes = ("a", "b", "c", "d")
    edges = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
    engine.register_blueprint(blueprint("diamond", plain(*nodes), edges))
    async with make_runtime(engine) as runtime:
        batches = published(runtime)
        persistence = runtime.engine.persistence
        reads: list[Sequence[str]] = []
        steps_of = persistence.steps_of

        async def read(eid: str, node_ids: Sequence[str]) -> dict[str, VersionedStep | None]:
            reads.append(node_ids)
            return await steps_of(eid, node_ids)

        persistence.steps_of = read  # type: ignore[method-assign]  # the real one, observed
        eids, snapshots = [], []
        for _ in range(5):  # one at a time: the pool has free slots for both branches
            eids.append(await runtime.engine.execute_async("diamond", {}))
            snapshots.append(await runtime.engine.wait(eids[-1], timeout=WAIT))
        await persistence.flush_unscheduled()  # the last step leaves in an owed write
        agendas = [[e async for e in runtime.engine.persistence.agenda(eid)] for eid in eids]
    assert [s.status for s in snapshots] == ["completed"] * 5
    assert all(probe.runs_of(eid) == dict.fromkeys(nodes, 1) for eid in eids)
    assert batches == [], "the branches went to free slots, the join to the last"
    assert agendas == [[]] * 5, "a branch or the join was left on the agenda"
    assert reads == [], "a step read its view: the join's comes with the write that fires it"


async def test_without_eager_dispatch_every_step_goes_through_the_queue(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    register_chain(engine)
    async with make_runtime(engine, DELIVERED_ONLY) as runtime:
        batches = published(runtime)
        eid = await runtime.engine.execute_async("chain", {})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == dict.fromkeys(CHAIN, 1)
    assert batches == [[node] for node in CHAIN]


class ContextSetter:
    """A node type that notes the value of ``marker`` it finds and, when its params say
    ``set``, leaves ``marker`` set to its node id (as code that sets a context variable and
    never resets it)."""

    marker: ContextVar[str | None] = ContextVar("test_marker", default=None)

    def __init__(self) -> None:
        self.found: dict[str, str | None] = {}

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Any) -> NodeResult:
        self.found[node.id] = self.marker.get()
        if node.params.get("set"):
            self.marker.set(node.id)
        return NodeResult(output=node.id)


async def test_a_context_variable_a_step_leaves_set_does_not_reach_the_steps_after_it(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    setter = ContextSetter()
    engine.node_types.register("setter", setter)
    chain = blueprint("chain", {"a": {"set": True}, "b": {}, "c": {"set": True}, "d": {}}, [])
    for node in chain["nodes"]:
        node["uses"] = "setter"
    chain["edges"] = [{"source": s, "target": t} for s, t in itertools.pairwise(CHAIN)]
    engine.register_blueprint(chain)
    async with make_runtime(engine) as runtime:
        batches = published(runtime)
        snapshot = await runtime.engine.execute_sync("chain", {}, timeout=WAIT)
    assert snapshot.status == "completed"
    assert batches == [], "b, c and d ran in a's slot"
    assert setter.found == dict.fromkeys(CHAIN), "each step began with its slot's context"


class LeaseReads:
    """A real store that notes, per step key, what each combined read-and-lease did."""

    def __init__(self, inner: KVStore) -> None:
        self.inner, self.calls = inner, list[tuple[str, bool]]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get_and_batch_if(
        self,
        keys: Sequence[str],
        expected: Mapping[str, bytes | None],
        ops: Sequence[Put | Delete | Incr],
    ) -> tuple[bool, list[bytes | None]]:
        applied, values = await self.inner.get_and_batch_if(keys, expected, ops)
        self.calls.append((keys[2].rsplit("/", 1)[-1], applied))
        return applied, values


async def test_a_delivered_step_is_leased_by_the_write_that_reads_its_execution(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """A task from the queue for a step with no record costs one store call before the step
    runs: the read of what it needs and its lease, in one conditional write."""
    register_chain(engine)
    spies: list[LeaseReads] = []

    def spy(store: KVStore) -> KVStore:
        spies.append(LeaseReads(store))
        return cast(KVStore, spies[-1])

    async with make_runtime(engine, DELIVERED_ONLY, wrap_store=spy) as runtime:
        eid = await runtime.engine.execute_async("chain", {})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == dict.fromkeys(CHAIN, 1)
    assert spies[0].calls == [(node, True) for node in CHAIN]


async def test_the_queued_copy_of_a_task_started_eagerly_is_acked_unread(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """A task enqueued in a process with workers (here the retry of a step that failed once,
    due at once) starts there at once and is published too: its copy, delivered to a worker
    here, is acked without a read of the store (even while the eager run is still going on)."""
    config = {"flaky": {"maxRetries": 2, "retryDelay": 0}}  # two attempts, the second at once
    engine.register_blueprint(blueprint("flaky", {"flaky": {"fail_times": 1}}, [], config))
    spies: list[LeaseReads] = []

    def spy(store: KVStore) -> KVStore:
        spies.append(LeaseReads(store))
        return cast(KVStore, spies[-1])

    async with make_runtime(engine, wrap_store=spy) as runtime:
        dispatch, dropped = runtime.engine.context.dispatch, list[str]()
        taken = dispatch.taken

        def observed(task: Task) -> bool:
            begun = taken(task)
            if begun:
                dropped.append(task.node_id)
            return begun

        dispatch.taken = observed  # type: ignore[method-assign]  # the real one, observed
        batches = published(runtime)
        eid = await runtime.engine.execute_async("flaky", {})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
        await assert_eventually(lambda: dropped == ["flaky"], timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == {"flaky": 2}
    assert batches == [["flaky"]], "the first attempt was leased at creation, the retry published"
    # the retry's eager run read the step (it has a record: no lease in that read); the copy not
    assert spies[0].calls == [("flaky", False)], "the copy was read"


async def test_a_chain_never_reads_all_of_its_step_records(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """The first step sees the inputs alone (it has no ancestors: nothing to read), each
    successor starts with the view its predecessor carried, and the last one's view, which
    holds every step, is the execution's result: no scan of the step records at all."""
    register_chain(engine)
    async with make_runtime(engine) as runtime:
        persistence = runtime.engine.persistence
        scans: list[str] = []
        steps = persistence.steps

        async def counted(eid: str) -> dict[str, VersionedStep]:
            scans.append(eid)
            return await steps(eid)

        persistence.steps = counted  # type: ignore[method-assign]  # the real one, observed
        eid = await runtime.engine.execute_async("chain", {})
        await assert_eventually(lambda: _final(runtime, eid), timeout=WAIT)
        assert scans == [], "the step records were read"
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert snapshot.outputs == {"d": "d:"}


async def _final(runtime: Runtime, eid: str) -> bool:
    return await runtime.engine.persistence.final(eid) is not None


@pytest.mark.parametrize("knows_definition", [True, False], ids=["guessed", "read apart"])
async def test_a_delivered_step_reads_the_records_of_its_ancestors_alone(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe, knows_definition: bool
) -> None:
    """Taken from the queue, a step reads its ancestors' records, not every step record of its
    execution: in the call that leases it when this process ran a step of the execution before
    (it knows the definition, ``RecentDefinitions``), else in a read of their own. ``reader``
    sees ``root`` and ``slow``, not ``fast``, a parallel branch that completed before it
    started; the join sees all four."""
    engine.register_blueprint(views_blueprint("views", gate="go"))
    async with make_runtime(engine, DELIVERED_ONLY) as runtime:
        persistence = runtime.engine.persistence
        if not knows_definition:
            runtime.engine.context.recent.size = 0  # it remembers no execution
        with_lease: dict[str, list[str]] = {}
        apart: list[list[str]] = []
        lease_or_view, steps_of = persistence.lease_or_view, persistence.steps_of

        async def lease(
            eid: str, generation: int, started: StepRecord, upstream: Sequence[str] = ()
        ) -> tuple[VersionedStep | None, TaskView]:
            with_lease[started.node_id] = list(upstream)
            return await lease_or_view(eid, generation, started, upstream)

        async def read(eid: str, node_ids: Sequence[str]) -> dict[str, VersionedStep | None]:
            apart.append(list(node_ids))
            return await steps_of(eid, node_ids)

        persistence.lease_or_view, persistence.steps_of = lease, read  # type: ignore[method-assign]
        eid = await runtime.engine.execute_async("views", {"x": 1})
        await step_completed(runtime, eid, "fast", timeout=WAIT)
        probe.open_gate("go")
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    for node in ("reader", "join"):
        result = snapshot.steps[node].result
        assert result is not None and result.output == VIEWS[node]
    ancestors = {"fast": ["root"], "slow": ["root"], "reader": ["root", "slow"]}
    ancestors["join"] = ["fast", "reader", "root", "slow"]
    if knows_definition:  # the root ran here first: the others' views came with their leases
        assert with_lease == {"root": [], **ancestors}
        assert apart == []
    else:
        assert with_lease == {node: [] for node in ["root", *ancestors]}
        assert sorted(apart) == sorted(ancestors.values())


async def test_a_step_committed_while_its_execution_is_paused_hands_nothing_on(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    """The commit leases the successor only if the execution is neither paused nor final;
    otherwise the step is committed alone and the successor waits for the resume."""
    engine.register_blueprint(blueprint("held-chain", {"a": {"gate": "a"}, "b": {}}, [("a", "b")]))
    async with make_runtime(engine) as runtime:
        eid = await runtime.engine.execute_async("held-chain", {})
        await assert_eventually(lambda: (eid, "a") in probe.started, timeout=WAIT)
        await runtime.engine.pause(eid)
        probe.open_gate("a")
        persistence = runtime.engine.persistence
        await assert_eventually(
            lambda: _status(runtime, eid, "a"), timeout=WAIT, message="a never committed"
        )
        assert await persistence.step(eid, "b") is None, "b was started while paused"
        await runtime.engine.resume(eid)
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == {"a": 1, "b": 1}


async def _status(runtime: Runtime, eid: str, node: str) -> bool:
    step = await runtime.engine.persistence.step(eid, node)
    return step is not None and step.record.status == "completed"


async def test_offers_made_in_one_turn_take_no_more_tasks_than_there_are_free_slots(
    make_runtime: RuntimeFactory, engine: Engine
) -> None:
    """A burst of eager offers in one turn of the loop (the sweep enqueuing many executions'
    steps at once): a worker takes as many tasks as it has free slots, and leaves the rest to
    the queue (and to the doorbells of other processes) instead of queueing them behind its
    own slots. Every slot is free for them: the worker's wait for the broker's next delivery
    holds none (it held one, and a worker of one slot took no eager task at all)."""
    one_worker = replace(FAST_POOL, worker_count=1, concurrency=3)
    async with make_runtime(engine, pool=one_worker) as runtime:
        assert runtime.pool is not None
        worker = runtime.pool.workers[0]
        await assert_eventually(lambda: worker.free_slots == 3, timeout=WAIT)
        tasks = [Task(execution_id=f"no-such-{i}", node_id="a") for i in range(5)]
        left = runtime.engine.context.dispatch.offer(tasks)
    assert left == tasks[3:]
