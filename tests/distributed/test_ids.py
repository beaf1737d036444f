"""Execution ids: one rule (``distributed.ids``), checked where ids enter -- the API (a typed
error, nothing stored) and the queue (a task with an invalid id does not decode)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import AsyncIterator

import pytest

from distributed import Runtime, Task
from distributed.errors import InvalidExecutionId, UndecodableTask
from distributed.ids import (
    MAX_DERIVED_ID_LENGTH,
    MAX_ID_LENGTH,
    check_execution_id,
    execution_id_problem,
    step_id_problem,
)
from distributed.queue import decode_task
from orchestration import Engine

VALID = [
    "0f8e2c4b9a7d4e1f8c3b2a1d0e9f8a7b",  # the default: uuid4 hex
    "invoice 2024-07 #3",
    "a.b.1",  # a loop iteration's id: {parent}.{node}.{n}
    "run#2:retry",
    "Größe-данные-数据-🚀",
    "x" * MAX_ID_LENGTH,
]
INVALID = [
    ("", "must not be empty"),
    ("a/b", "contains '/'"),
    ("a\x00b", "contains NUL (U+0000) at position 1"),
    ("line\nbreak", "contains a control character (U+000A)"),
    ("tab\there", "contains a control character (U+0009)"),
    ("del\x7f", "contains a control character (U+007F)"),
    ("c1\x85", "contains a control character (U+0085)"),
    ("lone\udcffsurrogate", "contains a lone surrogate (not UTF-8) (U+DCFF)"),
    ("sep\u2028arator", "contains a line separator (U+2028)"),
    ("x" * (MAX_DERIVED_ID_LENGTH + 1), f"over the limit of {MAX_DERIVED_ID_LENGTH}"),
]


def test_the_refused_characters_are_exactly_the_categories_cc_cs_zl_and_zp() -> None:
    refused = {"Cc", "Cs", "Zl", "Zp"}
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        expected = unicodedata.category(char) in refused
        assert (step_id_problem(f"a{char}") is not None) is expected, hex(code)


@pytest.mark.parametrize("value", VALID)
def test_valid_execution_ids(value: str) -> None:
    assert execution_id_problem(value) is None
    assert check_execution_id(value, new=True) == value


def test_a_new_id_is_shorter_than_one_that_names_a_child_execution() -> None:
    child = "x" * MAX_ID_LENGTH + ".subflow-node.3"  # a child of a long caller-chosen id
    assert execution_id_problem(child) is None
    assert execution_id_problem(child, new=True) == (
        f"is {len(child)} characters long, over the limit of {MAX_ID_LENGTH}"
    )


@pytest.mark.parametrize(("value", "problem"), INVALID, ids=[repr(v[:12]) for v, _ in INVALID])
def test_invalid_execution_ids_say_why(value: str, problem: str) -> None:
    found = execution_id_problem(value)
    assert found is not None and problem in found, found
    with pytest.raises(InvalidExecutionId) as raised:
        check_execution_id(value)
    assert problem in str(raised.value) and str(raised.value).startswith("invalid execution id")
    assert "\n" not in str(raised.value)  # one line, whatever the id holds


def test_a_task_with_an_invalid_id_does_not_decode() -> None:
    for eid, node, problem in [
        ("a\x00b", "n", "invalid execution id 'a\\x00b': contains NUL"),
        ("a/b", "n", "invalid execution id 'a/b': contains '/'"),
        ("ok", "", "invalid step id '': must not be empty"),
        ("ok", "n\x00", "invalid step id 'n\\x00': contains NUL"),
    ]:
        with pytest.raises(UndecodableTask, match=r"^not a task: ") as raised:
            decode_task(_task(eid, node))
        assert problem in str(raised.value), str(raised.value)
    assert decode_task(Task(execution_id="a.b.1", node_id="x/y").to_bytes()).node_id == "x/y"


def test_a_message_over_the_task_size_limit_is_not_parsed() -> None:
    with pytest.raises(UndecodableTask, match="over the task size limit of 64 KiB"):
        decode_task(b"{" * (64 * 1024 + 1))
    with pytest.raises(
        UndecodableTask,
        match=r"message of 2.0 KiB \(2056 bytes\) is over the task size limit of 1 KiB",
    ):
        decode_task(_task("e" * 2000, "n"), max_bytes=1024)


def _task(execution_id: str, node_id: str) -> bytes:
    """A task message as any producer could write it (the model is not asked)."""
    task = {"execution_id": execution_id, "node_id": node_id, "enqueued_at": 1.0}
    return json.dumps(task).encode()


@pytest.fixture
async def client() -> AsyncIterator[Runtime]:
    engine = Engine()
    engine.register_blueprint({"id": "wf", "nodes": [{"id": "a", "uses": "output"}], "edges": []})
    runtime = Runtime.from_urls(
        engine, store_url="memory://", broker_url="inproc://", workers=False
    )
    async with runtime:
        yield runtime


async def test_the_api_refuses_invalid_ids_with_a_typed_error_and_stores_nothing(
    client: Runtime,
) -> None:
    engine = client.engine
    with pytest.raises(InvalidExecutionId, match="over the limit of 512"):
        await engine.execute_async("wf", {}, execution_id="x" * (MAX_ID_LENGTH + 1))
    for bad in ("a\x00b", "a/b", "x" * (MAX_DERIVED_ID_LENGTH + 1)):
        with pytest.raises(InvalidExecutionId):
            await engine.execute_async("wf", {}, execution_id=bad)
        for call in (
            engine.get_execution_status(bad),
            engine.wait(bad, timeout=1),
            engine.cancel(bad),
            engine.pause(bad),
            engine.resume(bad),
            engine.time_out(bad),
            engine.signal(bad, "event"),
        ):
            with pytest.raises(InvalidExecutionId):
                await call
        with pytest.raises(InvalidExecutionId):
            async for _ in engine.events(bad):
                pass
    assert [eid async for eid in engine.persistence.all_executions()] == []
    eid = await engine.execute_async("wf", {}, execution_id="order 42.v2#1")
    assert (await engine.get_execution_status(eid)).execution_id == "order 42.v2#1"
