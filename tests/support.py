"""Helpers shared by the test suites: service gating and deadline polling (never sleep to wait)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest

T = TypeVar("T")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KAFKA_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Consumer options for the test broker (Tansu). It holds a new group's first JoinGroup for half
# the session timeout, rounded up to a whole second, so a 2 s session costs every Kafka test 1 s
# instead of the 3 s of a 6 s one; heartbeats every 250 ms; a short fetch long poll.
KAFKA_OPTIONS = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 250, "fetch_max_wait_ms": 20}
KAFKA_QUERY = "&".join(f"{name}={value}" for name, value in KAFKA_OPTIONS.items())


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip locally, fail in CI, when a service the test needs is not answering."""
    if _answers(host, port):
        return
    message = f"{name} is not answering at {host}:{port} (run: scripts/services up)"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def require_redis() -> str:
    parts = urlsplit(REDIS_URL)
    require_service("Redis", parts.hostname or "127.0.0.1", parts.port or 6379)
    return REDIS_URL


def require_kafka() -> str:
    host, _, port = KAFKA_BOOTSTRAP.split(",")[0].removeprefix("kafka://").partition(":")
    require_service("Kafka-protocol broker", host, int(port or 9092))
    return KAFKA_BOOTSTRAP


async def assert_eventually(
    probe: Callable[[], Awaitable[T]] | Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition not met",
) -> T:
    """Poll ``probe`` until it returns a truthy value or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} within {timeout}s")
        await asyncio.sleep(interval)


async def assert_never(
    probe: Callable[[], Awaitable[object]] | Callable[[], object],
    *,
    during: float,
    interval: float = 0.02,
    message: str = "condition became true",
) -> None:
    """Poll ``probe`` for ``during`` seconds and fail as soon as it returns a truthy value: how a
    test shows that something does *not* happen within a stated window (never a bare sleep)."""
    deadline = time.monotonic() + during
    while True:
        result = probe()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            raise AssertionError(f"{message} (within the {during:.2f}s window)")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


async def while_running(main: Awaitable[T], *background: asyncio.Task[Any]) -> T:
    """Await ``main`` while ``background`` tasks run; if one of them ends first (an assertion
    failed inside it, say), raise its error at once instead of letting ``main`` hit its timeout.
    The background tasks keep running when ``main`` finishes first."""
    waiting = asyncio.ensure_future(main)
    done, _ = await asyncio.wait({waiting, *background}, return_when=asyncio.FIRST_COMPLETED)
    if waiting in done:
        return waiting.result()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    for task in done:
        error = None if task.cancelled() else task.exception()
        if error is not None:
            raise error
    names = ", ".join(task.get_name() for task in done)
    raise AssertionError(f"background task {names} ended before the awaited result")
