"""The step record's state machine: every legal transition, and every illegal one refused."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from distributed import IllegalTransition, StepRecord, TaskResult
from distributed.models import TRANSITIONS, StepStatus, Transition

NOW = 1000.0
STATUSES: tuple[StepStatus, ...] = (
    "pending",
    "running",
    "waiting",
    "completed",
    "failed",
    "skipped",
    "cancelled",
)

MOVES: dict[Transition, Callable[[StepRecord], StepRecord]] = {
    "start": lambda s: s.start("worker-1", 5.0, NOW),
    "heartbeat": lambda s: s.heartbeat(5.0, NOW),
    "complete": lambda s: s.complete(TaskResult(output="out"), NOW),
    "retry_later": lambda s: s.retry_later("RuntimeError: boom", 2.0, NOW),
    "fall_back": lambda s: s.fall_back("RuntimeError: boom", "spare", NOW),
    "release": lambda s: s.release("worker stopped", NOW),
    "reclaim": lambda s: s.reclaim("lease expired", NOW),
    "due": lambda s: s.due(NOW),
    "requeue": lambda s: s.requeue(NOW),
    "wait": lambda s: s.wait(NOW, child_id="child-1"),
    "iterate": lambda s: s.iterate("child-2", {"k": 1}, NOW),
    "fail": lambda s: s.fail("RuntimeError: boom", NOW),
    "cancel": lambda s: s.cancel(NOW),
    "skip": lambda s: s.skip(NOW),
}

EXPECTED_STATUS: dict[Transition, StepStatus | None] = {
    "start": "running",
    "heartbeat": None,  # unchanged
    "complete": "completed",
    "retry_later": "pending",
    "fall_back": "pending",
    "release": "pending",
    "reclaim": "pending",
    "due": None,
    "requeue": None,
    "wait": "waiting",
    "iterate": None,
    "fail": "failed",
    "cancel": "cancelled",
    "skip": "skipped",
}


def in_status(status: StepStatus) -> StepRecord:
    """A plausible record in ``status`` (running ones hold a lease)."""
    record = StepRecord(node_id="a")
    if status == "pending":
        return record
    running = record.start("worker-0", 5.0, NOW - 10)
    if status == "running":
        return running
    return msgspec.structs.replace(running, status=status, lease=None)


LEGAL = [(t, s) for t in MOVES for s in STATUSES if s in TRANSITIONS[t]]
ILLEGAL = [(t, s) for t in MOVES for s in STATUSES if s not in TRANSITIONS[t]]


def test_every_transition_has_a_move_and_an_expected_status() -> None:
    assert set(MOVES) == set(TRANSITIONS) == set(EXPECTED_STATUS)


@pytest.mark.parametrize(("transition", "status"), LEGAL, ids=[f"{t}-from-{s}" for t, s in LEGAL])
def test_a_legal_transition_gives_the_expected_status(transition: Transition, status: str) -> None:
    before = in_status(status)  # type: ignore[arg-type]
    after = MOVES[transition](before)
    assert after.status == (EXPECTED_STATUS[transition] or before.status)
    assert after.updated_at == NOW
    assert after.node_id == before.node_id


@pytest.mark.parametrize(
    ("transition", "status"), ILLEGAL, ids=[f"{t}-from-{s}" for t, s in ILLEGAL]
)
def test_an_illegal_transition_is_refused(transition: Transition, status: str) -> None:
    with pytest.raises(IllegalTransition) as refused:
        MOVES[transition](in_status(status))  # type: ignore[arg-type]
    assert refused.value.transition == transition and refused.value.status == status


def test_no_terminal_status_can_be_left() -> None:
    for terminal in ("completed", "failed", "skipped", "cancelled"):
        assert not any(terminal in allowed for allowed in TRANSITIONS.values())


def test_start_takes_a_fresh_lease_with_a_higher_fencing_token() -> None:
    first = StepRecord(node_id="a").start("w1", 5.0, NOW)
    second = first.reclaim("expired", NOW + 6).start("w2", 5.0, NOW + 6)
    assert first.lease is not None and second.lease is not None
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.token == second.lease.token > first.token
    assert second.lease.owner == "w2" and second.lease.expires_at == NOW + 11
    assert second.lease_expiries == 1


def test_a_first_attempt_is_a_new_record_started() -> None:
    built = StepRecord.first_attempt("a", "w1", 5.0, NOW)
    started = StepRecord(node_id="a").start("w1", 5.0, NOW)
    assert built == started and built.to_bytes() == started.to_bytes()


def test_a_delayed_retry_is_not_due_before_its_time() -> None:
    pending = StepRecord(node_id="a").start("w", 5.0, NOW).retry_later("boom", 3.0, NOW)
    assert not pending.due_at(NOW + 2.9)
    assert pending.due_at(NOW + 3.0)
    assert pending.due(NOW + 3).not_before is None


def test_after_a_fallback_the_fallback_attempts_are_counted_apart() -> None:
    primary = StepRecord(node_id="a").start("w", 5.0, NOW)
    fallen = primary.fall_back("RuntimeError: boom", "spare", NOW)
    running = fallen.start("w", 5.0, NOW)
    assert (running.attempts, running.fallback_attempts, running.current_attempt) == (1, 1, 1)
    done = running.complete(TaskResult(output="from spare"), NOW)
    assert done.fallback == "spare" and done.error == "RuntimeError: boom"
