"""Signals and runtimes for commands: the first SIGINT/SIGTERM asks for a graceful stop, the
second exits at once; a client runtime (no workers) that is always closed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from orchestration import Engine

from ..runtime import Runtime
from ..settings import Settings
from .exitcodes import EXIT_INTERRUPTED

__all__ = ["Interrupted", "Signals", "client", "interruptible"]

T = TypeVar("T")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The user pressed Ctrl-C (or the process got SIGTERM) while the command waited."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Install on the running loop: the first signal sets ``received``; the second one calls
    ``os._exit(EXIT_INTERRUPTED)`` after printing ``second_message``."""

    def __init__(self, second_message: str = "second signal: exiting now") -> None:
        self.received = asyncio.Event()
        self.signum: int | None = None
        self.second_message = second_message

    def __enter__(self) -> Signals:
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)
        return self

    def __exit__(self, *exc: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in _SIGNALS:
            loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        if self.received.is_set():
            sys.stderr.write(f"{self.second_message}\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        self.signum = signum
        self.received.set()

    async def wait(self) -> int:
        """Wait for the first signal; return its number."""
        await self.received.wait()
        assert self.signum is not None
        return self.signum


async def interruptible(work: Awaitable[T], signals: Signals) -> T:
    """Await ``work``; raise ``Interrupted`` (cancelling it) when a signal comes first."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(signals.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Interrupted(signals.signum or signal.SIGINT)


@contextlib.asynccontextmanager
async def client(settings: Settings, engine: Engine | None = None) -> AsyncIterator[Runtime]:
    """A runtime without workers on ``settings`` (to submit, read and control executions)."""
    runtime = Runtime.from_settings(engine or Engine(), settings, workers=False)
    try:
        yield runtime
    finally:
        await runtime.close(close_timeout=5.0)
