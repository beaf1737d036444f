"""``wait`` is woken when its own process tells the final status (``distributed.final_watch``),
not at its next poll; elsewhere it polls; on both backend pairs."""

from __future__ import annotations

import asyncio
import time

from scenario_support import Probe, RuntimeFactory, blueprint, plain

from distributed import EngineConfig
from distributed.final_watch import FinalWatch
from distributed.hooks import ExecutionFinished
from orchestration import Engine

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
