"""The work of a step does not grow with the size of its workflow: a step of a fan-out of 200
into one join makes about as many Python calls as a step of a fan-out of 20. Counted, not
timed (``sys.setprofile`` counts the calls of the thread that runs the engine's loop), so the
figure does not move with the machine. Two quadratic paths this pins: routing the fan-out's
root compared every skipped edge with every taken one, and each branch's advance looked at
every edge into the join to see whether it had resolved one of them."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from scenario_support import blueprint, plain

from distributed import PoolConfig, Runtime, WorkerConfig
from orchestration import Engine

WAIT = 60.0


def fan(width: int) -> dict[str, Any]:
    branches = [f"b{i}" for i in range(width)]
    edges = [("root", b) for b in branches] + [(b, "join") for b in branches]
    return blueprint(f"fan-{width}", plain("root", *branches, "join"), edges)


async def calls_per_step(engine: Engine, width: int) -> float:
    """Python calls per step of one fan-out execution, the runtime warmed up by another."""
    pool = PoolConfig(worker_count=1, concurrency=8, worker=WorkerConfig(grace_period=1.0))
    runtime = Runtime.from_urls(engine, store_url="memory://", broker_url="inproc://", pool=pool)
    async with runtime:
        await runtime.engine.wait(await runtime.engine.execute_async(f"fan-{width}"), timeout=WAIT)
        calls = 0

        def count(frame: FrameType, event: str, arg: Any) -> None:
            nonlocal calls
            calls += event == "call"

        sys.setprofile(count)
        try:
            eid = await runtime.engine.execute_async(f"fan-{width}")
            snapshot = await runtime.engine.wait(eid, timeout=WAIT)
        finally:
            sys.setprofile(None)
    assert snapshot.status == "completed"
    return calls / (width + 2)


async def test_a_step_of_a_fan_out_of_200_costs_about_what_one_of_20_does(engine: Engine) -> None:
    for width in (20, 200):
        engine.register_blueprint(fan(width))
    small, large = await calls_per_step(engine, 20), await calls_per_step(engine, 200)
    assert large < 1.3 * small, f"{large:.0f} calls per step at 200 wide, {small:.0f} at 20"
