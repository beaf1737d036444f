"""``FinalWatch``: wakes ``DistributedEngine.wait`` the moment this process tells a final status.

``wait`` polls the store, backing off from ``EngineConfig.poll_interval`` to
``max_poll_interval``. When the status is told in the waiter's own process (an embedded runtime,
or a client that also runs workers), the ``execution_final`` hook fires there, in the writer
that won, after the status is stored; this hook sets the waiters' events, so ``wait`` returns
at once instead of at its next poll. Waiters elsewhere keep polling, which is also the fallback
here: a wake-up only ever comes early, never instead of the store's answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from .hooks import ExecutionFinished, Hooks

__all__ = ["FinalWatch", "sleep_unless_set"]


class FinalWatch(Hooks):
    """The events of the ``wait`` calls of this process, by execution id."""

    def __init__(self) -> None:
        self._events: dict[str, list[asyncio.Event]] = {}

    @contextlib.contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set once this process tells the execution's final status."""
        event = asyncio.Event()
        events = self._events.setdefault(execution_id, [])
        events.append(event)
        try:
            yield event
        finally:
            events.remove(event)
            if not events:
                del self._events[execution_id]

    def execution_final(self, event: ExecutionFinished) -> None:
        for waiting in self._events.get(event.execution_id, ()):
            waiting.set()


async def sleep_unless_set(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
