"""``retry_with_policy``: tenacity driven by a ``RetryPolicy``, in and out of the local engine.

Waits go through an injected fake sleep that records each delay, so the delays are checked
exactly and no test sleeps for real.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from tenacity import RetryError

import orchestration.runner
from orchestration import (
    Engine,
    FunctionStep,
    NonRetryableError,
    RetryPolicy,
    StepInput,
    Workflow,
    default_retry_policy,
    retry_with_policy,
    retry_with_policy_sync,
)

BACKOFF = RetryPolicy(
    max_attempts=5, initial_interval=1.0, backoff_coefficient=2.0, max_interval=5.0
)


class FakeSleep:
    """Records every delay instead of sleeping (async and sync flavours)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)

    def sync(self, delay: float) -> None:
        self.delays.append(delay)


class Flaky:
    """Fails with ``ConnectionError`` (a fresh one each time) until call ``succeed_on``."""

    def __init__(self, succeed_on: int | None = None, error: type[Exception] = ConnectionError):
        self.calls = 0
        self.succeed_on = succeed_on
        self.error = error
        self.raised: list[Exception] = []

    def __call__(self, value: str = "ok") -> str:
        self.calls += 1
        if self.succeed_on is not None and self.calls >= self.succeed_on:
            return value
        self.raised.append(self.error(f"failure {self.calls}"))
        raise self.raised[-1]

    async def run_async(self, value: str = "ok") -> str:
        await asyncio.sleep(0)
        return self(value)


async def _soon(event: asyncio.Event) -> None:
    """Wait for ``event`` with a deadline, so a broken retry fails instead of hanging."""
    async with asyncio.timeout(5):
        await event.wait()


# -- async and sync callables ---------------------------------------------------------------


async def test_an_async_callable_is_retried_until_it_succeeds() -> None:
    flaky, sleep = Flaky(succeed_on=3), FakeSleep()
    result = await retry_with_policy(BACKOFF, flaky.run_async, "done", sleep=sleep)
    assert result == "done" and flaky.calls == 3
    assert sleep.delays == [1.0, 2.0]


async def test_a_plain_sync_callable_is_called_and_retried_by_the_async_form() -> None:
    flaky, sleep = Flaky(succeed_on=2), FakeSleep()
    assert await retry_with_policy(BACKOFF, flaky, value="sync", sleep=sleep) == "sync"
    assert flaky.calls == 2 and sleep.delays == [1.0]


async def test_a_callable_returning_an_awaitable_is_awaited() -> None:
    flaky = Flaky(succeed_on=2)
    result = await retry_with_policy(BACKOFF, lambda: flaky.run_async("lazy"), sleep=FakeSleep())
    assert result == "lazy" and flaky.calls == 2


def test_the_sync_form_retries_plain_code_with_the_same_delays() -> None:
    flaky, sleep = Flaky(succeed_on=4), FakeSleep()
    assert retry_with_policy_sync(BACKOFF, flaky, "sync", sleep=sleep.sync) == "sync"
    assert flaky.calls == 4 and sleep.delays == [1.0, 2.0, 4.0]


async def test_policy_and_fn_are_positional_only_so_fn_may_take_those_keywords() -> None:
    def echo(*, policy: str, fn: str) -> str:
        return policy + fn

    assert retry_with_policy_sync(RetryPolicy(), echo, policy="a", fn="b") == "ab"
    assert await retry_with_policy(RetryPolicy(), echo, policy="c", fn="d") == "cd"


# -- attempts, delays, the last error ------------------------------------------------------


async def test_attempts_stop_at_max_attempts_and_delays_back_off_to_the_cap() -> None:
    flaky, sleep = Flaky(), FakeSleep()
    with pytest.raises(ConnectionError):
        await retry_with_policy(BACKOFF, flaky, sleep=sleep)
    assert flaky.calls == 5
    assert sleep.delays == [1.0, 2.0, 4.0, 5.0]


async def test_on_retry_hears_each_retried_attempt_with_its_error_and_delay() -> None:
    flaky, seen = Flaky(), []
    with pytest.raises(ConnectionError):
        await retry_with_policy(
            BACKOFF, flaky, sleep=FakeSleep(), on_retry=lambda *args: seen.append(args)
        )
    assert seen == [(n, flaky.raised[n - 1], BACKOFF.delay_for(n)) for n in (1, 2, 3, 4)]


async def test_the_last_error_is_reraised_unchanged_not_a_retry_error() -> None:
    flaky = Flaky()
    with pytest.raises(ConnectionError) as raised:
        await retry_with_policy(RetryPolicy(3, 0.0), flaky, sleep=FakeSleep())
    assert raised.value is flaky.raised[-1] and str(raised.value) == "failure 3"
    assert not isinstance(raised.value, RetryError)


def test_the_sync_form_reraises_the_last_error_unchanged_too() -> None:
    flaky = Flaky()
    with pytest.raises(ConnectionError) as raised:
        retry_with_policy_sync(RetryPolicy(2, 0.0), flaky, sleep=FakeSleep().sync)
    assert raised.value is flaky.raised[-1] and flaky.calls == 2


async def test_a_policy_of_one_attempt_never_retries_or_sleeps() -> None:
    flaky, sleep = Flaky(), FakeSleep()
    with pytest.raises(ConnectionError):
        await retry_with_policy(RetryPolicy(), flaky, sleep=sleep)
    assert flaky.calls == 1 and sleep.delays == []


async def test_jittered_delays_stay_within_the_jitter_fraction_and_vary() -> None:
    policy = RetryPolicy(max_attempts=4, initial_interval=1.0, backoff_coefficient=2.0, jitter=0.1)
    delays: list[float] = []
    for _ in range(50):
        sleep = FakeSleep()
        with pytest.raises(ConnectionError):
            await retry_with_policy(policy, Flaky(), sleep=sleep)
        for base, delay in zip((1.0, 2.0, 4.0), sleep.delays, strict=True):
            assert base * 0.9 <= delay <= base * 1.1
        delays.append(sleep.delays[0])
    assert len(set(delays)) > 1


# -- what is never retried ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "policy"),
    [
        (NonRetryableError, BACKOFF),
        (KeyError, RetryPolicy(5, 1.0, non_retryable_error_types=("KeyError",))),
    ],
)
async def test_non_retryable_errors_fail_on_the_first_attempt(
    error: type[Exception], policy: RetryPolicy
) -> None:
    flaky, sleep = Flaky(error=error), FakeSleep()
    with pytest.raises(error):
        await retry_with_policy(policy, flaky, sleep=sleep)
    with pytest.raises(error):
        retry_with_policy_sync(policy, flaky, sleep=sleep.sync)
    assert flaky.calls == 2 and sleep.delays == []


async def test_a_cancelled_error_from_the_callable_is_not_retried() -> None:
    calls: list[int] = []

    async def cancelled() -> None:
        calls.append(1)
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await retry_with_policy(BACKOFF, cancelled, sleep=FakeSleep())
    assert calls == [1]


async def test_cancelling_the_task_during_an_attempt_stops_at_once() -> None:
    started, calls = asyncio.Event(), []

    async def hangs() -> None:
        calls.append(1)
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry_with_policy(BACKOFF, hangs, sleep=FakeSleep()))
    await _soon(started)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == [1]


async def test_cancelling_the_task_during_the_wait_stops_at_once() -> None:
    waiting, flaky = asyncio.Event(), Flaky()

    async def sleep_forever(delay: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(retry_with_policy(BACKOFF, flaky, sleep=sleep_forever))
    await _soon(waiting)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flaky.calls == 1


async def test_a_cancellation_a_library_turned_into_an_error_is_not_retried() -> None:
    started, calls = asyncio.Event(), []

    async def swallows_cancel() -> None:
        calls.append(1)
        if len(calls) > 1:  # a retry (the bug under test) fails fast instead of hanging
            raise ConnectionError("retried")
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise ConnectionError("connection closed") from None

    task = asyncio.create_task(retry_with_policy(BACKOFF, swallows_cancel, sleep=FakeSleep()))
    await _soon(started)
    task.cancel()
    with pytest.raises(ConnectionError, match="connection closed"):
        await task
    assert calls == [1]


# -- the policy itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_interval": -1.0}, "initial_interval"),
        ({"max_interval": -0.5}, "max_interval"),
        ({"backoff_coefficient": 0.5}, "backoff_coefficient"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
        ({"initial_interval": float("nan")}, "initial_interval"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_named(
    fields: dict[str, Any], field_name: str
) -> None:
    with pytest.raises(ValueError, match=f"invalid RetryPolicy: {field_name} must be"):
        RetryPolicy(**fields)


def test_every_problem_of_a_policy_is_reported_at_once() -> None:
    with pytest.raises(ValueError, match=r"max_attempts.*; jitter"):
        RetryPolicy(max_attempts=0, jitter=2.0)


def test_error_type_names_must_be_a_collection_not_one_string() -> None:
    with pytest.raises(TypeError, match="not a str"):
        RetryPolicy(non_retryable_error_types="KeyError")  # type: ignore[arg-type]
    assert RetryPolicy(non_retryable_error_types=["KeyError"]).non_retryable_error_types == (  # type: ignore[arg-type]
        "KeyError",
    )


def test_boundary_values_are_valid_policies() -> None:
    policy = RetryPolicy(1, 0.0, 1.0, 0.0, 1.0)
    assert policy.delay_for(3) == 0.0


def test_the_default_policy_is_three_attempts_1s_doubling_capped_at_60s_with_10pc_jitter() -> None:
    policy = default_retry_policy()
    assert policy == RetryPolicy(3, 1.0, 2.0, 60.0, 0.1, ())
    assert 0.9 <= policy.delay_for(1) <= 1.1 and 1.8 <= policy.delay_for(2) <= 2.2


# -- the local engine -----------------------------------------------------------------------


def _engine_with(step: FunctionStep) -> Engine:
    engine = Engine()
    engine.register_workflow(Workflow("wf").add_step(step))
    return engine


@pytest.fixture
def engine_sleep(monkeypatch: pytest.MonkeyPatch) -> FakeSleep:
    """The local engine's retries, with waits recorded instead of slept."""
    sleep = FakeSleep()
    patched = functools.partial(retry_with_policy, sleep=sleep)
    monkeypatch.setattr(orchestration.runner, "retry_with_policy", patched)
    return sleep


async def test_the_local_engine_retries_a_failing_step_with_the_policy_delays(
    engine_sleep: FakeSleep,
) -> None:
    flaky = Flaky(succeed_on=3)

    def step(state: StepInput) -> str:
        return flaky()

    policy = RetryPolicy(max_attempts=3, initial_interval=10.0, backoff_coefficient=3.0)
    result = await _engine_with(FunctionStep("flaky", step, retry=policy)).execute("wf", {})
    assert result.status == "completed" and result.outputs == {"flaky": "ok"}
    assert result.steps["flaky"].attempts == 3 and flaky.calls == 3
    assert result.steps["flaky"].error == "ConnectionError: failure 2"
    assert engine_sleep.delays == [10.0, 30.0]


async def test_the_local_engine_records_every_attempt_and_the_last_error_on_failure(
    engine_sleep: FakeSleep,
) -> None:
    flaky = Flaky()

    def step(state: StepInput) -> str:
        return flaky()

    policy = RetryPolicy(max_attempts=4, initial_interval=5.0)
    result = await _engine_with(FunctionStep("broken", step, retry=policy)).execute("wf", {})
    assert result.status == "failed" and result.failed_step == "broken"
    assert result.steps["broken"].attempts == 4 and flaky.calls == 4
    assert result.error == result.steps["broken"].error == "ConnectionError: failure 4"
    assert engine_sleep.delays == [5.0, 10.0, 20.0]
