"""The commit of a step that completes its execution stores the final status too: one write,
not a commit and a ``set_final`` after it. The status is stored as ``set_final`` stores it
(claimed by the committing scheduler, the execution off the active index, its notice sent),
only if the execution has none yet; if it has one (cancelled while the step ran), the step is
committed without it and the status in force stays."""

from __future__ import annotations

import asyncio
from typing import Any

from scenario_support import Probe, RuntimeFactory, blueprint, plain

from distributed import FinalStatus, KVPersistence
from distributed.hooks import ExecutionFinished, Hooks
from distributed.lease import StepLease
from distributed.models import StepRecord, TaskResult
from distributed.persistence import Finish, VersionedStep
from orchestration import Engine
from store import MemoryStore

WAIT = 60.0
DONE = FinalStatus.completed({"a": 1})


class Finals(Hooks):
    def __init__(self) -> None:
        self.told: list[ExecutionFinished] = []

    def execution_final(self, event: ExecutionFinished) -> None:
        self.told.append(event)


async def test_the_last_step_of_a_chain_stores_the_final_status_with_its_result(
    make_runtime: RuntimeFactory, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("trio", plain("a", "b", "c"), [("a", "b"), ("b", "c")]))
    async with make_runtime(engine) as runtime:
        persistence = runtime.engine.persistence
        finals = Finals()
        runtime.engine.context.hooks.add(finals)
        calls: list[str] = []
        set_final = persistence.set_final

        async def observed(eid: str, final: FinalStatus, claimer: str) -> Any:
            calls.append(eid)
            return await set_final(eid, final, claimer)

        persistence.set_final = observed  # type: ignore[method-assign]  # the real one, observed
        eids = [await runtime.engine.execute_async("trio", {}) for _ in range(3)]
        snapshots = await asyncio.gather(*(runtime.engine.wait(e, timeout=WAIT) for e in eids))
        await persistence.flush_unscheduled()
        agendas = [[e async for e in persistence.agenda(eid)] for eid in eids]
    assert [s.status for s in snapshots] == ["completed"] * 3
    assert all(probe.runs_of(eid) == dict.fromkeys("abc", 1) for eid in eids)
    assert calls == [], "a final status was stored in a write of its own"
    assert sorted(e.execution_id for e in finals.told) == sorted(eids), "told once each"
    assert agendas == [[]] * 3


async def _running(persistence: KVPersistence, eid: str) -> VersionedStep:
    version = await persistence.swap_step(eid, None, StepRecord(node_id="a").start("w", 30, 0))
    assert version is not None
    return version


def _completed(version: VersionedStep) -> StepRecord:
    return version.record.complete(TaskResult(output=1), 0.0)


async def test_a_commit_stores_the_final_status_claims_it_and_sends_its_notice() -> None:
    persistence = KVPersistence(MemoryStore())
    version = await _running(persistence, "e")
    notices = persistence.finals_told()
    heard = asyncio.ensure_future(anext(notices))
    await asyncio.sleep(0.01)  # listening
    committed = await persistence.commit_step(
        "e", version, _completed(version), edges={}, fired=[], now=0.0, final=Finish(DONE, "me")
    )
    assert committed is not None and committed.finished
    assert await asyncio.wait_for(heard, 5) == "e"
    assert await persistence.final("e") == DONE
    assert not await persistence.claim_announcement("e", 1, "another")
    assert await persistence.claim_announcement("e", 1, "me")
    step = await persistence.step("e", "a")
    assert step is not None and step.record.status == "completed"


async def test_a_commit_into_a_final_execution_writes_nothing_the_lease_then_commits_alone() -> (
    None
):
    persistence = KVPersistence(MemoryStore())
    version = await _running(persistence, "e")
    cancelled = FinalStatus.cancelled()
    assert await persistence.set_final("e", cancelled, "canceller") == (cancelled, True)
    new = _completed(version)
    final = Finish(DONE, "me")
    kwargs: dict[str, Any] = {"edges": {}, "fired": [], "now": 0.0, "final": final}
    assert await persistence.commit_step("e", version, new, **kwargs) is None
    assert await persistence.step("e", "a") == version, "the step was written without the final"

    committed = await StepLease(persistence, "e", version, 30).commit(new, **kwargs)
    assert not committed.finished
    assert committed.step.record.status == "completed"
    assert await persistence.final("e") == cancelled
