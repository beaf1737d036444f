"""Time-boxed shutdown steps: wait so long for a close, then leave it behind with a warning."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

__all__ = ["within"]

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
