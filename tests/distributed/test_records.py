"""The hot-path records (msgspec structs) at rest: the JSON earlier versions wrote (pydantic's)
reads the same, and is what they write; what does not decode is refused with a ValueError."""

from __future__ import annotations

import json

import pytest

from distributed import ExecutionSnapshot, StepRecord, TaskResult
from distributed.models import AgendaEntry, Task

NOW = 1_700_000_000.5


def completed() -> StepRecord:
    result = TaskResult(output={"answer": [1, "two"]}, action="next", taken=("a->b",), seq=7)
    return StepRecord(node_id="a").start("worker-1", 5.0, NOW).complete(result, NOW + 1)


def test_a_record_is_written_without_its_default_fields_in_the_order_of_its_fields() -> None:
    assert completed().to_bytes() == (
        b'{"node_id":"a","status":"completed","attempts":1,"token":1,'
        b'"result":{"output":{"answer":[1,"two"]},"action":"next","taken":["a->b"],"seq":7},'
        b'"started_at":1700000000.5,"finished_at":1700000001.5,"updated_at":1700000001.5}'
    )


def test_a_record_written_with_every_field_reads_the_same() -> None:
    record = StepRecord(node_id="a").start("worker-1", 5.0, NOW)
    full = record.as_dict()
    assert full["lease"] == {"owner": "worker-1", "expires_at": NOW + 5.0, "token": 1}
    assert full["error"] is None and full["carried"] == {}
    assert StepRecord.from_bytes(json.dumps(full).encode()) == record
    assert StepRecord.from_bytes(record.to_bytes()) == record


@pytest.mark.parametrize(
    "raw",
    [
        b'{"node_id":"a","status":"done"}',  # not a status
        b'{"node_id":"a","attempts":"1"}',  # not an int
        b'{"node_id":"a","colour":"red"}',  # not a field
        b'{"status":"pending"}',  # no node
        b'{"node_id":"a"',  # not JSON
    ],
)
def test_a_record_that_does_not_decode_raises_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        StepRecord.from_bytes(raw)


def test_an_agenda_entry_round_trips() -> None:
    entry = AgendaEntry(execution_id="e1", node_id="n", since=NOW)
    assert entry.to_bytes() == b'{"execution_id":"e1","node_id":"n","since":1700000000.5}'
    assert AgendaEntry.from_bytes(entry.to_bytes()) == entry


def test_a_task_is_spelled_as_earlier_versions_published_it() -> None:
    task = Task(execution_id="e", node_id="n", reason="retry", generation=2, enqueued_at=NOW)
    assert task.to_bytes() == (
        b'{"execution_id":"e","node_id":"n","reason":"retry","generation":2,'
        b'"enqueued_at":1700000000.5}'
    )
    plain = Task(execution_id="e", node_id="n", enqueued_at=NOW)  # when it was enqueued: always
    assert plain.to_bytes() == b'{"execution_id":"e","node_id":"n","enqueued_at":1700000000.5}'
    assert Task.from_bytes(task.to_bytes()) == task


def test_a_snapshot_dumps_its_step_records_with_every_field() -> None:
    snapshot = ExecutionSnapshot(
        execution_id="e1",
        workflow_id="w",
        status="completed",
        completed_steps=("a",),
        running_steps=(),
        total_steps=1,
        created_at=NOW,
        steps={"a": completed()},
    )
    dumped = snapshot.model_dump(mode="json")["steps"]["a"]
    assert dumped == json.loads(json.dumps(completed().as_dict()))
    assert dumped["result"]["taken"] == ["a->b"] and dumped["lease"] is None
    assert snapshot.model_dump()["steps"]["a"]["result"]["output"] == {"answer": [1, "two"]}
