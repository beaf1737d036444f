"""The per-execution event log: ordered, contiguous, resumable, followed live, bounded, expired;
embedded and on the cluster."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from crash_app import WORKFLOW, build_engine, cluster_runtime, pool_config
from scenario_support import Probe, RuntimeFactory, blueprint, delete_prefix
from support import REDIS_URL, assert_eventually, require_kafka, require_redis

from distributed import ExecutionNotFound, Runtime
from distributed.events import EventRecorder, ExecutionEvent, read_events
from distributed.hooks import ExecutionFinished, StepStarted
from distributed.keys import Keys
from orchestration import Engine, NodeContext, NodeResult, Services
from orchestration.graph import Node
from store import MemoryStore

WAIT = 60
HERE = Path(__file__).resolve().parent


def spawn_crash_worker(*args: str) -> subprocess.Popen[str]:
    """A worker process of ``crash_app.py`` (slow steps, to be killed in the middle of)."""
    paths = [str(HERE.parents[1]), str(HERE), str(HERE.parent)]
    return subprocess.Popen(
        [sys.executable, str(HERE / "crash_app.py"), *args],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        stdout=subprocess.PIPE,
        text=True,
    )


async def collect(events: AsyncIterator[ExecutionEvent]) -> list[ExecutionEvent]:
    return [event async for event in events]


@pytest.fixture
async def runtime(make_runtime: RuntimeFactory, engine: Engine) -> AsyncIterator[Runtime]:
    async with make_runtime(engine) as started:
        yield started


async def run_with_a_retry(runtime: Runtime, engine: Engine) -> str:
    nodes = {"a": {}, "b": {"fail_times": 1}, "c": {}}
    config = {"b": {"maxRetries": 2, "retryDelay": 10}}
    engine.register_blueprint(blueprint("evented", nodes, [("a", "b"), ("b", "c")], config))
    return await runtime.engine.execute_async("evented", {})


async def test_a_followed_run_yields_every_event_in_order_with_contiguous_offsets(
    runtime: Runtime, engine: Engine
) -> None:
    eid = await run_with_a_retry(runtime, engine)
    events = await asyncio.wait_for(collect(runtime.engine.events(eid, follow=True)), WAIT)

    assert [e.offset for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "execution.submitted"
    (last,) = [e for e in events if e.type == "execution.final"]
    assert last.data["status"] == "completed"
    assert last.offset > max(e.offset for e in events if e.type == "step.started")
    steps = [(e.type, e.step_id, e.attempt) for e in events if e.step_id is not None]
    assert steps == [
        ("step.started", "a", 1),
        ("step.finished", "a", 1),
        ("step.started", "b", 1),
        ("step.retrying", "b", 1),
        ("step.started", "b", 2),
        ("step.finished", "b", 2),
        ("step.started", "c", 1),
        ("step.finished", "c", 1),
    ]
    assert all(e.execution_id == eid for e in events)


async def test_resuming_at_any_offset_misses_nothing_and_repeats_nothing(
    runtime: Runtime, engine: Engine
) -> None:
    eid = await run_with_a_retry(runtime, engine)
    everything = await asyncio.wait_for(collect(runtime.engine.events(eid, follow=True)), WAIT)
    for offset in range(len(everything) + 1):
        rest = await collect(runtime.engine.events(eid, after=offset))
        assert rest == everything[offset:]


async def test_a_follower_that_starts_early_sees_the_run_live_and_ends_at_the_final_status(
    runtime: Runtime, engine: Engine, probe: Probe
) -> None:
    engine.register_blueprint(blueprint("gated", {"a": {"gate": "go"}, "b": {}}, [("a", "b")]))
    eid = await runtime.engine.execute_async("gated", {})
    seen: list[ExecutionEvent] = []

    async def follow() -> None:
        async for event in runtime.engine.events(eid, follow=True):
            seen.append(event)

    follower = asyncio.create_task(follow())
    await assert_eventually(lambda: any(e.type == "step.started" for e in seen))
    assert not follower.done()
    probe.open_gate("go")
    await asyncio.wait_for(follower, WAIT)
    assert [e.type for e in seen].count("execution.final") == 1
    assert [e.offset for e in seen] == list(range(1, len(seen) + 1))


class Reporter:
    """A node type that reports its progress through ``ctx.emit``."""

    def validate(self, node: Node) -> list[str]:
        return []

    async def run(self, node: Node, ctx: NodeContext, services: Services) -> NodeResult:
        ctx.emit("fetched", rows=120)
        ctx.emit("done", odd=object())  # not JSON: recorded by its repr, the step goes on
        return NodeResult(output="reported")


async def test_progress_a_step_emits_is_in_the_log_between_its_start_and_its_end(
    runtime: Runtime, engine: Engine
) -> None:
    engine.node_types.register("reporter", Reporter())
    definition = {
        "id": "reporting",
        "nodes": [{"id": "r", "uses": "reporter"}],
        "edges": [],
    }
    engine.register_blueprint(definition)
    eid = await runtime.engine.execute_async("reporting", {})
    events = await asyncio.wait_for(collect(runtime.engine.events(eid, follow=True)), WAIT)
    steps = [(e.type, e.step_id, e.attempt) for e in events if e.step_id == "r"]
    assert steps == [
        ("step.started", "r", 1),
        ("step.progress", "r", 1),
        ("step.progress", "r", 1),
        ("step.finished", "r", 1),
    ]
    progress = [e.data for e in events if e.type == "step.progress"]
    assert progress[0] == {"message": "fetched", "rows": 120}
    assert progress[1]["message"] == "done" and "object" in progress[1]["odd"]


def test_emit_without_a_listener_does_nothing_and_with_one_hands_over_the_data() -> None:
    node = Node(id="n", type="reporter")
    seen: list[tuple[str, object]] = []
    NodeContext(execution_id="e", node=node, state={}, outputs={}).emit("quiet")
    ctx = NodeContext(
        execution_id="e", node=node, state={}, outputs={}, emitter=lambda m, d: seen.append((m, d))
    )
    ctx.emit("loud", n=1)
    assert seen == [("loud", {"n": 1})]


async def test_the_events_of_an_unknown_execution_are_refused(runtime: Runtime) -> None:
    with pytest.raises(ExecutionNotFound):
        await collect(runtime.engine.events("no-such-execution"))


# -- the recorder and reader on a store, without a runtime ----------------------------------------


def started(eid: str, step: str, attempt: int = 1) -> StepStarted:
    return StepStarted(
        execution_id=eid,
        workflow_id="w",
        step_id=step,
        attempt=attempt,
        worker_id="w1",
        dispatch_latency=0.0,
    )


def final(eid: str) -> ExecutionFinished:
    return ExecutionFinished(
        execution_id=eid,
        workflow_id="w",
        status="completed",
        error=None,
        failed_step=None,
        generation=1,
        duration=1.0,
    )


async def test_the_log_keeps_only_the_newest_events_when_it_is_bounded() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, max_len=10)
    for n in range(30):
        recorder.step_started(started("e1", f"s{n}"))
    await recorder.flush()
    events = await collect(read_events(store, keys, "e1"))
    assert [e.offset for e in events] == list(range(21, 31))
    assert [e.step_id for e in events] == [f"s{n}" for n in range(20, 30)]


async def test_a_busy_process_s_events_never_pile_up_waiting_for_their_append() -> None:
    """Steps queue events on every turn of the loop (here 100 per turn, of 32 executions): a
    drain appends all that was queued when it began, in a few turns however much that is, so
    the events not in the logs yet stay about a drain's worth; they never grow with time."""
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, flush_interval=0.001)
    turns, per_turn, executions = 300, 100, 32
    for turn in range(turns):
        for n in range(per_turn):
            recorder.step_started(started(f"e{n % executions}", f"s{turn}"))
        await asyncio.sleep(0)
    logged = 0
    for n in range(executions):
        logged += len(await collect(read_events(store, keys, f"e{n}")))
    assert turns * per_turn - logged <= 10 * per_turn  # not appended yet: a few turns' worth
    await recorder.flush()


async def test_the_log_expires_with_the_execution_s_retention_once_final() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, retention=0.2)
    recorder.step_started(started("e1", "a"))
    recorder.execution_final(final("e1"))
    await recorder.flush()
    assert len(await collect(read_events(store, keys, "e1"))) == 2

    async def expired() -> bool:
        return await store.log_read(keys.events("e1")) == []

    await assert_eventually(expired)


async def test_a_store_error_drops_the_batch_and_breaks_nothing() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)
    await store.close()
    recorder.step_started(started("e1", "a"))
    await recorder.flush()  # logged, not raised


async def test_a_follower_ends_when_the_execution_is_final_and_its_final_event_was_lost() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)
    recorder.step_started(started("e1", "a"))
    await recorder.flush()

    async def is_final() -> bool:
        return True

    events = read_events(store, keys, "e1", follow=True, is_final=is_final, final_grace=0.05)
    assert [e.type for e in await asyncio.wait_for(collect(events), 10)] == ["step.started"]


async def test_events_of_a_retried_attempt_are_told_apart_by_their_attempt() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)
    recorder.step_started(started("e1", "a", attempt=1))
    recorder.step_started(started("e1", "a", attempt=2))
    await recorder.flush()
    events = await collect(read_events(store, keys, "e1"))
    assert [(e.step_id, e.attempt) for e in events] == [("a", 1), ("a", 2)]
    assert events[0].to_json()["attempt"] == 1


# -- a worker SIGKILLed mid-step ------------------------------------------------------------------


async def test_a_step_re_run_after_its_worker_was_killed_has_its_own_attempt_s_events(
    tmp_path: Path,
) -> None:
    require_redis()
    broker_url = f"kafka://{require_kafka()}"
    tag = f"flowloom-events-crash-{uuid.uuid4().hex[:8]}"
    prefix, run_log = f"{tag}:", tmp_path / "runs.log"
    victim = spawn_crash_worker("cluster", REDIS_URL, prefix, broker_url, tag)
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"
        client = cluster_runtime(build_engine(), REDIS_URL, prefix, broker_url, tag, workers=False)
        async with client:
            eid = await client.engine.execute_async(WORKFLOW, {"run_log": str(run_log)})

            async def slow_steps_started() -> bool:
                events = await collect(client.engine.events(eid))
                return sum(e.type == "step.started" and e.step_id != "fan" for e in events) == 3

            await assert_eventually(slow_steps_started, timeout=60, message="victim busy")
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            survivor = cluster_runtime(
                build_engine(), REDIS_URL, prefix, broker_url, tag, pool=pool_config(tag, 2)
            )
            async with survivor:
                follow = collect(client.engine.events(eid, follow=True))
                events = await asyncio.wait_for(follow, 90)
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait(timeout=10)
        await delete_prefix(prefix)

    assert [e.offset for e in events] == list(range(1, len(events) + 1))
    assert [e.data["status"] for e in events if e.type == "execution.final"] == ["completed"]
    for step in ("s1", "s2", "s3"):
        started = [(e.attempt, e.data["worker_id"]) for e in events if e.type == "step.started"
                   if e.step_id == step]  # fmt: skip
        finished = [e.attempt for e in events if e.type == "step.finished" and e.step_id == step]
        assert len(started) == 2 and started[0][0] < started[1][0], started
        assert started[0][1] != started[1][1]  # the victim, then a survivor
        assert finished == [started[1][0]]  # only the re-run attempt finished


def test_an_entry_at_rest_is_the_event_without_its_offset_and_decodes_back() -> None:
    event = ExecutionEvent(
        type="step.finished",
        execution_id="e",
        at=1.5,
        step_id="s",
        attempt=2,
        data={"outcome": "completed", "odd": set},  # not JSON: written as its repr
        offset=7,
    )
    raw = event.encode()
    expected = event.to_json()
    del expected["offset"]  # the store assigns it
    expected["data"] = {"outcome": "completed", "odd": repr(set)}
    assert json.loads(raw) == expected
    again = ExecutionEvent.decode(7, raw)
    assert (again.type, again.execution_id, again.at, again.step_id, again.attempt) == (
        "step.finished",
        "e",
        1.5,
        "s",
        2,
    )
