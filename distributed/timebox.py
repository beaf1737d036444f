"""Shutdown that cannot hang: time-boxed steps, and cancellation that libraries cannot swallow."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

__all__ = ["cancelling", "reraise_if_cancelling", "within"]

log = logging.getLogger(__name__)


async def within(awaitable: Awaitable[object], seconds: float, what: str) -> bool:
    """Await ``awaitable`` for at most ``seconds``; past that cancel it *without* waiting for it
    (a client stuck on an unresponsive server may not honour the cancel). True if it finished."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if task in done:
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed: %r", what, task.exception())
        return True
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    log.warning("%s did not finish within %ss; left behind", what, seconds)
    return False


def cancelling() -> bool:
    """Whether the current task has been asked to cancel (even if something swallowed it)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def reraise_if_cancelling(error: BaseException) -> None:
    """Call in an ``except Exception`` block: if this task has been asked to cancel, raise
    ``CancelledError``. A client library that turns a cancellation into its own error (a
    timeout, a connection error) must not make a loop run on or a stop wait forever."""
    if cancelling():
        raise asyncio.CancelledError from error
