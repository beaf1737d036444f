"""Run a callable under a ``RetryPolicy``, with tenacity doing the looping.

``retry_with_policy`` (asyncio) and ``retry_with_policy_sync`` (plain code) translate one
``RetryPolicy`` into tenacity's stop, wait and retry strategies:

- **stop** after ``policy.max_attempts`` attempts (every attempt counts; 1 = no retry);
- **wait** ``policy.delay_for(n)`` seconds after the ``n``-th failed attempt — the very method
  the distributed worker uses to schedule a durable retry, so one policy waits the same in
  both engines (``initial_interval * backoff_coefficient ** (n - 1)``, capped at
  ``max_interval``, then spread by ``± jitter``);
- **retry** only when ``policy.should_retry(n, error)``: ``NonRetryableError`` and the class
  names in ``non_retryable_error_types`` fail at once, and so does anything that is not an
  ``Exception`` (``asyncio.CancelledError``, ``KeyboardInterrupt``): cancellation is never
  retried. An async retry also stops when its task is being cancelled, even if the callable
  turned the cancellation into an ordinary error.

When the attempts run out, the last error is re-raised as it is (never tenacity's
``RetryError``). ``policy`` and ``fn`` are positional-only, and ``on_retry`` and ``sleep`` are
reserved keywords; every other argument goes to ``fn``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from tenacity import AsyncRetrying, RetryCallState, Retrying, stop_after_attempt
from tenacity.retry import retry_base
from tenacity.wait import wait_base

from orchestration.graph import RetryPolicy

__all__ = [
    "OnRetry",
    "default_retry_policy",
    "retry_with_policy",
    "retry_with_policy_sync",
]

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""``on_retry(attempt, error, delay)``: attempt ``attempt`` failed with ``error``; the next one
starts after ``delay`` seconds. Called before the sleep; an error it raises ends the retries."""


def default_retry_policy() -> RetryPolicy:
    """A sensible policy for calls to flaky services (LLM APIs, networks).

    - ``max_attempts=3``: the first attempt and two retries;
    - ``initial_interval=1.0``: 1 s before the second attempt;
    - ``backoff_coefficient=2.0``: then 2 s before the third (4 s, 8 s, … with more attempts);
    - ``max_interval=60.0``: no wait longer than 60 s (before jitter);
    - ``jitter=0.1``: each wait spread by ± 10 % so that clients do not retry in lockstep;
    - ``non_retryable_error_types=()``: only ``NonRetryableError`` fails at once.

    ``RetryPolicy()`` itself (one attempt, no retry) stays the default of a step.
    """
    return RetryPolicy(
        max_attempts=3,
        initial_interval=1.0,
        backoff_coefficient=2.0,
        max_interval=60.0,
        jitter=0.1,
    )


class _PolicyWait(wait_base):
    """Tenacity wait: ``policy.delay_for`` the number of attempts made so far."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.policy.delay_for(retry_state.attempt_number)


class _PolicyRetry(retry_base):
    """Tenacity retry predicate: ``policy.should_retry`` for the failed attempt."""

    def __init__(self, policy: RetryPolicy, *, in_task: bool = False) -> None:
        self.policy = policy
        self.in_task = in_task

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        if outcome is None or not outcome.failed:
            return False
        if self.in_task and _cancelling():
            return False
        error = outcome.exception()
        assert error is not None  # a failed outcome always holds its error
        return self.policy.should_retry(retry_state.attempt_number, error)


def _cancelling() -> bool:
    """Whether the current asyncio task has a cancellation pending."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _before_sleep(on_retry: OnRetry | None) -> Callable[[RetryCallState], None] | None:
    """Tenacity ``before_sleep`` hook that reports to ``on_retry``."""
    if on_retry is None:
        return None

    def report(retry_state: RetryCallState) -> None:
        assert retry_state.outcome is not None  # tenacity sleeps only after an attempt
        error = retry_state.outcome.exception()
        assert error is not None  # and only after a failed one
        on_retry(retry_state.attempt_number, error, retry_state.upcoming_sleep)

    return report


def _strategies(policy: RetryPolicy, on_retry: OnRetry | None, *, in_task: bool) -> dict[str, Any]:
    """Keyword arguments shared by ``Retrying`` and ``AsyncRetrying``."""
    return {
        "stop": stop_after_attempt(policy.max_attempts),
        "wait": _PolicyWait(policy),
        "retry": _PolicyRetry(policy, in_task=in_task),
        "before_sleep": _before_sleep(on_retry),
        "reraise": True,
    }


@overload
async def retry_with_policy(
    policy: RetryPolicy,
    fn: Callable[..., Awaitable[T]],
    /,
    *args: Any,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **kwargs: Any,
) -> T: ...


@overload
async def retry_with_policy(
    policy: RetryPolicy,
    fn: Callable[..., T],
    /,
    *args: Any,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **kwargs: Any,
) -> T: ...


async def retry_with_policy(
    policy: RetryPolicy,
    fn: Callable[..., Awaitable[T] | T],
    /,
    *args: Any,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)``, awaited if it returns an awaitable, retried per ``policy``.

    Returns the first successful result; re-raises the last error unchanged when the policy
    gives up (see the module docstring). ``on_retry(attempt, error, delay)`` is told of each
    failed attempt that will be retried; ``sleep`` waits between attempts (inject a fake one
    in tests). Cancelling the calling task cancels the running attempt or the wait at once.
    """

    async def attempt() -> T:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return result

    retrying = AsyncRetrying(sleep=sleep, **_strategies(policy, on_retry, in_task=True))
    result: T = await retrying(attempt)
    return result


def retry_with_policy_sync(
    policy: RetryPolicy,
    fn: Callable[..., T],
    /,
    *args: Any,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` retried per ``policy`` in plain synchronous code.

    The same rules as ``retry_with_policy``; ``sleep`` blocks the thread between attempts, so
    never call this from a coroutine (use ``retry_with_policy`` there).
    """
    retrying = Retrying(sleep=sleep, **_strategies(policy, on_retry, in_task=False))
    return retrying(functools.partial(fn, *args, **kwargs))
