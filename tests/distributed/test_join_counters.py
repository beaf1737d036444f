"""Join counters: a join (two or more incoming edges) is decided from two counters -- its edges
resolved so far and taken -- that each edge's resolving write adds to once, so a step's commit
reads two keys per join it leads into whatever the join's fan-in, and an edge resolved again
(a re-run advance) is not counted again. On both backend pairs, and on the persistence alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scenario_support import Probe, RuntimeFactory, blueprint, plain

from distributed import KVPersistence
from distributed.models import StepRecord, TaskResult
from distributed.persistence import JoinCount
from orchestration import Engine
from store import KVStore, MemoryStore

WAIT = 60.0


class ReadBacks:
    """A store that records how many join counters each ``batch_if_get`` read back (the write
    that fires a join also reads its ancestors' step records: the join's view)."""

    def __init__(self, inner: KVStore) -> None:
        self.inner, self.sizes = inner, list[int]()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def batch_if_get(
        self, expected: Mapping[str, bytes | None], ops: Sequence[Any], keys: Sequence[str]
    ) -> list[bytes | None] | None:
        self.sizes.append(sum("/arrived/" in key or "/taken/" in key for key in keys))
        return await self.inner.batch_if_get(expected, ops, keys)


async def test_a_wide_join_is_decided_reading_two_counters_per_commit(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    branches = [f"b{i}" for i in range(40)]
    edges = [("a", b) for b in branches] + [(b, "join") for b in branches]
    engine.register_blueprint(blueprint("wide", plain("a", *branches, "join"), edges))
    spies: list[ReadBacks] = []

    def spy(store: KVStore) -> KVStore:
        spies.append(ReadBacks(store))
        return spies[-1]  # type: ignore[return-value]

    async with make_runtime(engine, wrap_store=spy) as runtime:
        eid = await runtime.engine.execute_async("wide", {})
        snapshot = await runtime.engine.wait(eid, timeout=WAIT)
    assert snapshot.status == "completed"
    assert probe.runs_of(eid) == dict.fromkeys(["a", *branches, "join"], 1)
    assert spies[0].sizes.count(2) >= len(branches), "each branch's commit read the counters"
    assert max(spies[0].sizes) == 2, "a commit read more than one join's two counters"


async def test_an_edge_resolved_again_is_counted_once() -> None:
    persistence = KVPersistence(MemoryStore())
    joins = {"a->j": "j", "b->j": "j"}
    await persistence.resolve_edges("e", {"a->j": True}, joins)
    await persistence.resolve_edges("e", {"a->j": True, "b->j": False}, joins)
    await persistence.resolve_edges("e", {"b->j": False}, joins)
    assert await persistence.join_counts("e", ["j", "k"]) == {
        "j": JoinCount(arrived=2, taken=1),
        "k": JoinCount(arrived=0, taken=0),
    }


async def test_a_commit_counts_its_edges_and_a_re_run_advance_does_not() -> None:
    persistence = KVPersistence(MemoryStore())
    running = StepRecord(node_id="a").start("w", 30.0, 0.0)
    version = await persistence.swap_step("e", None, running)
    assert version is not None
    edges = {"a->j": True, "a->k": False}
    committed = await persistence.commit_step(
        "e",
        version,
        version.record.complete(TaskResult(taken=("a->j",), skipped=("a->k",)), 0.0),
        edges=edges,
        fired=[],
        now=0.0,
        arrivals={"j": JoinCount(1, 1), "k": JoinCount(1, 0)},
    )
    assert committed is not None
    assert committed.joins == {"j": JoinCount(1, 1), "k": JoinCount(1, 0)}
    await persistence.resolve_edges("e", edges, {"a->j": "j", "a->k": "k"})  # the re-run
    assert await persistence.join_counts("e", ["j", "k"]) == committed.joins
