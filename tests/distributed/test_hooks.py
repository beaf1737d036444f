"""Lifecycle hooks see every execution and step event once, on both backends; a failing hook
breaks nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from scenario_support import Probe, RuntimeFactory, blueprint
from support import assert_eventually

from distributed import (
    DeadLettered,
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    FinalStatus,
    Hooks,
    HookSet,
    RetryScheduled,
    Runtime,
    StepFinished,
    StepStarted,
    Task,
)
from orchestration import Engine

WAIT = 60


class Recorder(Hooks):
    def __init__(self) -> None:
        self.events: list[Any] = []

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        self.events.append(event)

    def step_started(self, event: StepStarted) -> None:
        self.events.append(event)

    def step_finished(self, event: StepFinished) -> None:
        self.events.append(event)

    def retry_scheduled(self, event: RetryScheduled) -> None:
        self.events.append(event)

    def dead_lettered(self, event: DeadLettered) -> None:
        self.events.append(event)

    def execution_final(self, event: ExecutionFinished) -> None:
        self.events.append(event)

    def execution_control(self, event: ExecutionControl) -> None:
        self.events.append(event)

    def of(self, kind: type, execution_id: str | None = None) -> list[Any]:
        return [
            e
            for e in self.events
            if isinstance(e, kind) and execution_id in (None, getattr(e, "execution_id", None))
        ]


class Broken(Hooks):
    """Every hook raises: the runtime must log it and carry on."""

    def step_started(self, event: StepStarted) -> None:
        raise RuntimeError("observer bug")

    def execution_final(self, event: ExecutionFinished) -> None:
        raise RuntimeError("observer bug")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def observed(
    make_runtime: RuntimeFactory, engine: Engine, recorder: Recorder
) -> AsyncIterator[Runtime]:
    runtime = make_runtime(engine)
    runtime.engine.context.hooks.add(Broken())
    runtime.engine.context.hooks.add(recorder)
    async with runtime:
        yield runtime


async def test_each_step_is_seen_once_per_attempt_and_the_final_status_once(
    observed: Runtime, engine: Engine, recorder: Recorder, probe: Probe
) -> None:
    nodes = {"a": {}, "b": {"fail_times": 1}, "c": {}}
    config = {"b": {"maxRetries": 2, "retryDelay": 10}}
    engine.register_blueprint(blueprint("observed", nodes, [("a", "b"), ("b", "c")], config))
    snapshot = await observed.engine.execute_sync("observed", {}, timeout=WAIT)
    eid = snapshot.execution_id
    assert snapshot.status == "completed"

    assert [e.workflow_id for e in recorder.of(ExecutionSubmitted, eid)] == ["observed"]
    started = Counter((e.step_id, e.attempt) for e in recorder.of(StepStarted, eid))
    assert started == {("a", 1): 1, ("b", 1): 1, ("b", 2): 1, ("c", 1): 1}
    finished = {(e.step_id, e.attempt): e.outcome for e in recorder.of(StepFinished, eid)}
    assert finished == {
        ("a", 1): "completed",
        ("b", 1): "retry",
        ("b", 2): "completed",
        ("c", 1): "completed",
    }
    assert all(e.dispatch_latency >= 0 for e in recorder.of(StepStarted, eid))
    assert all(e.duration >= 0 for e in recorder.of(StepFinished, eid))
    (retry,) = recorder.of(RetryScheduled, eid)
    assert (retry.step_id, retry.attempt, retry.delay) == ("b", 1, pytest.approx(0.01))
    (final,) = recorder.of(ExecutionFinished, eid)
    assert (final.status, final.workflow_id, final.generation) == ("completed", "observed", 1)


async def test_the_final_hook_fires_once_even_when_several_writers_race(
    observed: Runtime, engine: Engine, recorder: Recorder
) -> None:
    engine.register_blueprint(blueprint("slow", {"a": {"delay": 5}}, []))
    eid = await observed.engine.execute_async("slow", {})
    results = [await observed.engine.cancel(eid) for _ in range(3)]
    await observed.engine.time_out(eid)
    assert results == [True, False, False]
    finals = recorder.of(ExecutionFinished, eid)
    assert [f.status for f in finals] == ["cancelled"]


async def test_the_final_hook_fires_once_when_one_process_finalizes_twice_at_once(
    observed: Runtime, engine: Engine, recorder: Recorder
) -> None:
    """Two finalizes of one execution in one process (a join's commit and the sweep finishing
    a branch's advance): the claim to tell is this process's until it is marked told, so both
    pass it; the hooks still hear the final status once."""
    engine.register_blueprint(blueprint("slow", {"a": {"delay": 5}}, []))
    eid = await observed.engine.execute_async("slow", {})
    record = await observed.engine.persistence.record(eid)
    assert record is not None
    finalize = observed.engine.scheduler.finalize
    await asyncio.gather(*(finalize(record, FinalStatus.completed({})) for _ in range(4)))
    finals = recorder.of(ExecutionFinished, eid)
    assert [f.status for f in finals] == ["completed"]


async def test_pause_resume_and_dead_letters_are_reported(
    observed: Runtime, engine: Engine, recorder: Recorder
) -> None:
    engine.register_blueprint(blueprint("held", {"a": {"delay": 0.5}, "b": {}}, [("a", "b")]))
    eid = await observed.engine.execute_async("held", {})
    await observed.engine.pause(eid)
    await observed.engine.resume(eid)
    await observed.engine.queue.enqueue(Task(execution_id="nobody", node_id="x"))
    await observed.engine.wait(eid, timeout=WAIT)
    assert [e.action for e in recorder.of(ExecutionControl, eid)] == ["paused", "resumed"]
    await assert_eventually(lambda: recorder.of(DeadLettered, "nobody"), timeout=WAIT)
    (dead,) = recorder.of(DeadLettered, "nobody")
    assert "unknown execution" in dead.reason and dead.step_id == "x"


def test_a_hook_set_swallows_and_logs_a_failing_hook(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    hooks = HookSet([Broken(), recorder])
    event = StepStarted(
        execution_id="e",
        workflow_id="w",
        step_id="s",
        attempt=1,
        worker_id="w1",
        dispatch_latency=0,
    )
    hooks.step_started(event)
    assert recorder.events == [event]
    assert "Broken.step_started failed" in caplog.text
