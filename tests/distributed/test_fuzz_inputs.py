"""Fuzzing what enters the distributed engine (hypothesis): task payloads, inputs, execution
ids, signals and generated blueprints, on the embedded runtime (LevelDB + in-process broker).

Every case ends in a typed error (``OrchestrationError``, ``DistributedError``) or a correct
run -- a final status, the local engine's result -- within a bound: never another exception, a
hang or an execution without a final status. Targets:

* ``task-payload``: any bytes, any JSON, task-shaped objects with wrong types: ``decode_task``
  returns a ``Task`` or raises ``UndecodableTask``; a valid task survives encode/decode.
* ``distributed-inputs``: JSON inputs (unicode, NUL, big numbers, nesting) run to completion
  with the outputs the local engine gives.
* ``distributed-execution-id``: any execution id is refused with a typed error or runs, and
  its status can be read back under that id.
* ``distributed-signal``: any event name and JSON payload: refused with a typed error, or the
  wait completes with the payload as its output.
* ``distributed-blueprint``: random DAGs (joins, actions, conditions, retries, fallbacks) with
  scripted LLM replies end with the local engine's status and step statuses.

Runs are few in the suite (each costs milliseconds); ``benchmarks/fuzz.py`` runs many more.
Inputs and signal payloads that are not JSON (NaN, sets, bytes, nesting past what the store
reads back) are refused as the local engine refuses them: the tests at the end.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from typing import Any

import pytest
from fuzz_support import Target, run_target, stateless
from hypothesis import strategies as st
from scenario_support import FAST_POOL

from distributed import DistributedError, Runtime
from distributed.errors import UndecodableTask
from distributed.models import Task
from distributed.queue import decode_task
from orchestration import (
    Engine,
    OfflineProvider,
    OrchestrationError,
    ProviderError,
    ScriptedProvider,
)
from orchestration.jsonvalue import MAX_JSON_DEPTH, to_json_value

TYPED = (OrchestrationError, DistributedError)
RUN_TIMEOUT = 30.0  # an execution of a few millisecond steps that needs this long is lost


# -- strategies -----------------------------------------------------------------------------------

text = st.text(max_size=16) | st.sampled_from(["", "\x00", "a\x00b", "é", "🙂", "\u202e", "{{x}}"])
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**200)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=10,
)


def nested(depth: int, leaf: Any = "deep") -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


json_inputs = st.dictionaries(
    st.sampled_from(["v", "x", "topic"]) | text,
    json_values | st.integers(min_value=0, max_value=MAX_JSON_DEPTH - 4).map(nested),
    max_size=4,
)

# -- the embedded runtime -------------------------------------------------------------------------


class Embedded:
    """One embedded runtime for a whole hypothesis run; ``run`` drives a coroutine on its loop."""

    def __init__(self, local: Engine) -> None:
        self.local = local
        self.folder = tempfile.TemporaryDirectory(prefix="flowloom-fuzz-")
        self.loop = asyncio.Runner()
        self.runtime = Runtime.from_urls(
            local,
            store_url=f"leveldb://{self.folder.name}/store",
            broker_url="inproc://",
            pool=FAST_POOL,
        )
        self.ids = count()

    def __enter__(self) -> Embedded:
        self.loop.run(self.runtime.start())
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.loop.run(self.runtime.close())
        finally:
            self.loop.close()
            self.folder.cleanup()

    def run(self, coro: Any, timeout: float = RUN_TIMEOUT + 10) -> Any:
        async def bounded() -> Any:
            return await asyncio.wait_for(coro, timeout)

        return self.loop.run(bounded())

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids)}"


def local_outputs(engine: Engine, workflow: str, inputs: dict[str, Any]) -> Any:
    async def go() -> Any:
        return await asyncio.wait_for(engine.execute(workflow, inputs), RUN_TIMEOUT)

    return asyncio.run(go())


# -- target: task payloads ------------------------------------------------------------------------

task_shaped = st.fixed_dictionaries(
    {},
    optional={
        "execution_id": text | json_values,
        "node_id": text | json_values,
        "reason": st.sampled_from(["scheduled", "retry", "bogus"]) | json_values,
        "generation": st.integers() | json_values,
        "enqueued_at": st.floats() | json_values,
        "extra": json_values,
    },
)
payloads = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | task_shaped.map(lambda v: json.dumps(v).encode())
    | st.integers(min_value=1, max_value=70_000).map(lambda n: b"[" * n)
    | st.sampled_from(
        [
            b'{"execution_id": "e", "node_id": "n", "enqueued_at": NaN}',
            b'{"execution_id": "e\\u0000", "node_id": "n"}',
            b'{"execution_id": "\\ud800", "node_id": "n"}',
            b'\xef\xbb\xbf{"execution_id": "e", "node_id": "n"}',
            b'{"execution_id": "e", "node_id": "n", "generation": 1e999}',
        ]
    )
)
valid_ids = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1).filter(
    lambda s: "/" not in s
)
valid_tasks = st.builds(
    Task,
    execution_id=valid_ids,
    node_id=valid_ids,
    reason=st.sampled_from(["scheduled", "retry", "fallback", "recovered"]),
    generation=st.integers(min_value=1, max_value=2**31),
    enqueued_at=st.floats(min_value=0, max_value=4e9),
)


def check_payload(case: bytes | Task) -> str:
    if isinstance(case, Task):
        assert decode_task(case.to_bytes()) == case
        return "round trip"
    try:
        decode_task(case)
    except UndecodableTask as exc:
        assert str(exc).startswith("not a task")
        return "undecodable"
    return "decoded"


# -- target: inputs -------------------------------------------------------------------------------

ECHO = {
    "id": "echo",
    "nodes": [
        {"id": "pass", "uses": "output", "params": {"inputs": {"v": "v"}, "outputKey": "v_out"}},
        {
            "id": "render",
            "uses": "llm-process",
            "params": {"promptTemplate": "{{v}} {{x}} {{topic.0}}", "inputs": {"v": "v"}},
        },
        {"id": "out", "uses": "output", "params": {"promptTemplate": "{{render}}|{{v_out}}"}},
    ],
    "edges": [{"source": "pass", "target": "out"}, {"source": "render", "target": "out"}],
}


@contextmanager
def inputs_session() -> Iterator[Callable[[Any], str]]:
    local = Engine()
    local.register_blueprint(ECHO)
    with Embedded(local) as embedded:

        def check_inputs(inputs: dict[str, Any]) -> str:
            try:
                expected = local_outputs(local, "echo", inputs)
            except TYPED as exc:
                with pytest.raises(TYPED):
                    embedded.run(embedded.runtime.engine.execute_sync("echo", inputs))
                return f"refused: {type(exc).__name__}"
            snapshot = embedded.run(
                embedded.runtime.engine.execute_sync("echo", inputs, timeout=RUN_TIMEOUT)
            )
            assert snapshot.status == expected.status, (snapshot.status, snapshot.error)
            assert snapshot.outputs == expected.outputs
            return str(snapshot.status)

        yield check_inputs


# -- target: execution ids ------------------------------------------------------------------------

execution_ids = (
    valid_ids
    | st.text(max_size=20)
    | st.sampled_from(["a/b", "a\x00b", "\ud800", "x" * 600, " ", "a.b", "a#1", "..", "\u2028"])
)


@contextmanager
def ids_session() -> Iterator[Callable[[Any], str]]:
    local = Engine()
    local.register_blueprint({"id": "one", "nodes": [{"id": "o", "uses": "output"}]})
    with Embedded(local) as embedded:
        used: set[str] = set()

        def check_id(execution_id: str) -> str:
            if execution_id in used:
                return "already used"
            engine = embedded.runtime.engine
            try:
                returned = embedded.run(engine.execute_async("one", {}, execution_id=execution_id))
            except TYPED as exc:
                return f"refused: {type(exc).__name__}"
            used.add(execution_id)
            assert returned == execution_id
            snapshot = embedded.run(engine.wait(execution_id, timeout=RUN_TIMEOUT))
            assert snapshot.status == "completed" and snapshot.execution_id == execution_id
            return "ran"

        yield check_id


# -- target: signals ------------------------------------------------------------------------------

WAITS = {
    "id": "waits",
    "nodes": [{"id": "gate", "uses": "wait", "params": {"event": "go", "outputKey": "got"}}],
}


@contextmanager
def signal_session() -> Iterator[Callable[[Any], str]]:
    local = Engine()
    local.register_blueprint(WAITS)
    with Embedded(local) as embedded:

        def check_signal(case: tuple[str, Any, str | None]) -> str:
            event, payload, action = case
            engine = embedded.runtime.engine
            execution_id = embedded.run(engine.execute_async("waits", {}))
            try:
                embedded.run(engine.signal(execution_id, event, payload, action))
                outcome = "delivered"
            except TYPED as exc:
                outcome = f"refused: {type(exc).__name__}"
            if outcome == "delivered" and event == "go":
                snapshot = embedded.run(engine.wait(execution_id, timeout=RUN_TIMEOUT))
                assert snapshot.status == "completed", snapshot.error
                assert snapshot.steps["gate"].result.output == to_json_value(payload)
            embedded.run(engine.cancel(execution_id))
            snapshot = embedded.run(engine.wait(execution_id, timeout=RUN_TIMEOUT))
            assert snapshot.final
            return outcome

        yield check_signal


signals = st.tuples(
    st.just("go") | text,
    json_values,
    st.none() | st.sampled_from(["approve", "reject"]),
)


# -- target: generated blueprints, local and distributed ------------------------------------------

REPLIES = ["true", "false", "yes", "left", "right", " 'left' ", "", "fail"]


@st.composite
def generated_dags(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """A random DAG whose results do not depend on timing: templates read the node's direct
    predecessors and the inputs only."""
    size = draw(st.integers(min_value=1, max_value=6))
    ids = [f"n{i}" for i in range(size)]
    nodes, edges, replies = [], [], {}
    for index, node_id in enumerate(ids):
        uses = draw(st.sampled_from(["llm-process", "llm-condition", "llm-router", "output"]))
        earlier = ids[:index]
        sources = (
            draw(st.lists(st.sampled_from(earlier), max_size=3, unique=True)) if earlier else []
        )
        config: dict[str, Any] = {}
        if len(sources) > 1 and draw(st.booleans()):
            config["joinStrategy"] = draw(st.sampled_from(["all", "any", "quorum"]))
            if config["joinStrategy"] == "quorum":
                config["quorum"] = draw(st.integers(1, len(sources)))
        if draw(st.booleans()):
            config["maxRetries"] = draw(st.integers(1, 3))
            config["retryDelay"] = draw(st.integers(0, 2))
        if earlier and draw(st.integers(0, 4)) == 0:
            config["fallback"] = draw(st.sampled_from(earlier))
        reads = ["x", *sources] if config.get("joinStrategy", "all") == "all" else ["x"]
        params = {
            "promptTemplate": " ".join(f"{{{{{name}}}}}" for name in reads),
            "inputs": {name: name for name in reads},
        }
        nodes.append({"id": node_id, "uses": uses, "params": params, "config": config})
        if uses != "output":
            replies[node_id] = draw(st.sampled_from(REPLIES))
        for source in sources:
            edge: dict[str, Any] = {"source": source, "target": node_id}
            if draw(st.booleans()):
                edge["action"] = draw(st.sampled_from(["true", "false", "left", "right"]))
            if draw(st.integers(0, 3)) == 0:
                edge["condition"] = draw(st.sampled_from(["x > 0.5", "output == true", "x in y"]))
            edges.append(edge)
    inputs = draw(st.fixed_dictionaries({"x": st.floats(0, 1) | json_values}))
    return {"nodes": nodes, "edges": edges}, replies, inputs


async def finished_or_stuck(engine: Any, execution_id: str) -> Any:
    """The final snapshot; or, when every step is done (completed or skipped) yet the
    execution stays without a final status for a second, that snapshot. Fails after
    ``RUN_TIMEOUT`` otherwise (a lost execution)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    done_since: float | None = None
    while True:
        snapshot = await engine.get_execution_status(execution_id)
        if snapshot.final:
            return snapshot
        all_done = snapshot.steps and all(
            step.status in ("completed", "skipped") for step in snapshot.steps.values()
        )
        now = time.monotonic()
        done_since = (done_since or now) if all_done else None
        if done_since is not None and now - done_since > 1.0:
            return snapshot
        assert now < deadline, f"execution {execution_id} lost: {snapshot.status}"
        await asyncio.sleep(0.05)


@contextmanager
def blueprint_session() -> Iterator[Callable[[Any], str]]:
    provider = ScriptedProvider(fallback=OfflineProvider())
    local = Engine(provider=provider)
    with Embedded(local) as embedded:

        def check_blueprint(case: tuple[dict[str, Any], dict[str, str], dict[str, Any]]) -> str:
            shape, replies, inputs = case
            graph_id = embedded.next_id("generated")
            # Examples run one at a time, so the replies can be keyed by node id alone.
            provider.by_node = {
                node: ProviderError("scripted failure") if reply == "fail" else reply
                for node, reply in replies.items()
            }
            try:
                local.register_blueprint({"id": graph_id, **shape})
            except OrchestrationError:
                return "refused"  # e.g. a fallback-only node with edges of its own
            expected = local_outputs(local, graph_id, inputs)
            engine = embedded.runtime.engine
            execution_id = embedded.run(engine.execute_async(graph_id, inputs))
            snapshot = embedded.run(finished_or_stuck(engine, execution_id))
            assert snapshot.final, "every step done, the execution left running (lost)"
            assert snapshot.status == expected.status, (snapshot.error, expected.error)
            if snapshot.status != "completed":
                # A failure stops the run; which of two parallel failures comes first, and what
                # the siblings had done by then, depends on timing (the local engine cancels
                # them, a worker may finish first).
                assert snapshot.error and snapshot.failed_step in snapshot.steps
                return str(snapshot.status)
            # A fallback-only node has a step of its own in a local result, not in a snapshot
            # (which names it in its primary's step): compare the graph's own steps.
            standby = local.graph(graph_id).fallback_only_nodes()
            statuses = {n: step.status for n, step in snapshot.steps.items() if n not in standby}
            expected_statuses = {
                n: step.status for n, step in expected.steps.items() if n not in standby
            }
            assert statuses == expected_statuses
            if all(n["config"].get("joinStrategy", "all") == "all" for n in shape["nodes"]):
                assert snapshot.outputs == expected.outputs
            return str(snapshot.status)

        yield check_blueprint


TARGETS = [
    Target("task-payload", payloads | valid_tasks, stateless(check_payload), 200),
    Target("distributed-inputs", json_inputs, inputs_session, 25, None),
    Target("distributed-execution-id", execution_ids, ids_session, 25, None),
    Target("distributed-signal", signals, signal_session, 20, None),
    Target("distributed-blueprint", generated_dags(), blueprint_session, 20, None),
]


@pytest.mark.parametrize("target", TARGETS, ids=lambda target: target.name)
def test_fuzz(target: Target) -> None:
    run_target(target)


# -- found by fuzzing ---------------------------------------------------------------------------

NOT_JSON = [
    pytest.param(math.nan, id="NaN"),
    pytest.param(math.inf, id="Infinity"),
    pytest.param({1, 2}, id="a set"),
    pytest.param(b"\xff", id="bytes"),
    pytest.param(object(), id="an object"),
    pytest.param("\ud800", id="a lone surrogate"),
    pytest.param(nested(210), id="nested 210 deep"),
    pytest.param(nested(300), id="nested 300 deep"),
]


@pytest.mark.parametrize("value", NOT_JSON)
def test_inputs_that_are_not_json_are_refused_like_the_local_engine_does(value: Any) -> None:
    local = Engine()
    local.register_blueprint(ECHO)
    with pytest.raises(OrchestrationError):
        local_outputs(local, "echo", {"v": value})
    with Embedded(local) as embedded, pytest.raises(TYPED):
        embedded.run(embedded.runtime.engine.execute_async("echo", {"v": value}), timeout=10)


@pytest.mark.parametrize("key", [1, True, (1,)], ids=["int", "bool", "tuple"])
def test_inputs_with_keys_that_are_not_strings_match_the_local_engine(key: Any) -> None:
    local = Engine()
    local.register_blueprint(ECHO)
    with Embedded(local) as embedded:
        engine = embedded.runtime.engine
        try:
            expected = local_outputs(local, "echo", {key: 1})
        except OrchestrationError:
            with pytest.raises(TYPED):
                embedded.run(engine.execute_async("echo", {key: 1}), timeout=10)
            return
        snapshot = embedded.run(engine.execute_sync("echo", {key: 1}, timeout=RUN_TIMEOUT))
        assert snapshot.outputs == expected.outputs


@pytest.mark.parametrize(
    "payload", [pytest.param(object(), id="object"), pytest.param(math.nan, id="NaN")]
)
def test_a_signal_payload_that_is_not_json_is_refused(payload: Any) -> None:
    local = Engine()
    local.register_blueprint(WAITS)
    with Embedded(local) as embedded:
        engine = embedded.runtime.engine
        execution_id = embedded.run(engine.execute_async("waits", {}))
        with pytest.raises(TYPED):
            embedded.run(engine.signal(execution_id, "go", payload))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"execution_id": "e", "node_id": "n", "generation": 0}',
        b'{"execution_id": "e", "node_id": "n", "generation": -5}',
        b'{"execution_id": "e", "node_id": "n", "enqueued_at": NaN}',
        b'{"execution_id": "e", "node_id": "n", "enqueued_at": Infinity}',
    ],
)
def test_a_task_with_an_impossible_generation_or_time_does_not_decode(payload: bytes) -> None:
    """Found by task-payload: decode_task accepted generation 0 or less and a NaN/Infinity
    enqueued_at (a NaN dispatch latency, and NaN != NaN defeated the duplicate check)."""
    with pytest.raises(UndecodableTask):
        decode_task(payload)


def test_an_execution_whose_steps_are_all_done_is_finalized() -> None:
    """Found by distributed-blueprint: 'a' skips both its edges; 'c' was decided WAIT before
    'b' was skipped, then SKIP in the same advance, but the sticky waiting flag kept
    check_completion from running: every step done, the execution 'running' forever."""
    blueprint = {
        "id": "skip-cascade",
        "nodes": [{"id": node, "uses": "output", "params": {}} for node in ("a", "b", "c")],
        "edges": [
            {"source": "a", "target": "c", "condition": "x > 0.5"},
            {"source": "a", "target": "b", "condition": "x > 0.5"},
            {"source": "b", "target": "c"},
        ],
    }
    local = Engine()
    local.register_blueprint(blueprint)
    assert local_outputs(local, "skip-cascade", {"x": 0}).status == "completed"
    with Embedded(local) as embedded:
        engine = embedded.runtime.engine
        snapshot = embedded.run(engine.execute_sync("skip-cascade", {"x": 0}, timeout=2))
        assert snapshot.status == "completed"


def test_a_join_skipped_in_a_cascade_is_not_judged_by_the_edges_the_commit_read() -> None:
    """Found by distributed-blueprint: 'b' commits last, skipping its edges into 'c' and 'd';
    'c' is skipped, which skips c->d and then 'd' in the same advance; the advance then judged
    'd' again by the edges b's commit had read (without c->d): WAIT, so nobody checked
    completion -- every step done, the execution 'running' forever."""
    nodes = ("a", "b", "c", "d")
    blueprint = {
        "id": "stale-join",
        "nodes": [{"id": node, "uses": "output", "params": {}} for node in nodes],
        "edges": [
            {"source": source, "target": target, "condition": "x > 0.5"}
            for source, target in (("a", "c"), ("b", "c"), ("a", "d"), ("b", "d"), ("c", "d"))
        ],
    }
    local = Engine()
    local.register_blueprint(blueprint)
    assert local_outputs(local, "stale-join", {"x": 0}).status == "completed"
    with Embedded(local) as embedded:
        engine = embedded.runtime.engine
        for _ in range(10):  # whichever of a and b commits last
            snapshot = embedded.run(engine.execute_sync("stale-join", {"x": 0}, timeout=5))
            assert snapshot.status == "completed"
