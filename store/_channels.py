"""``Channels``: ``publish``/``listen`` among the tasks of one process, for the stores that one
process owns (memory and LevelDB). A message goes to each iteration of ``listen`` on the
channel at the moment it is published (none is kept for later listeners); one that has not
taken its last ``_BACKLOG`` messages misses the next ones: notices are hints, never the record.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

__all__ = ["Channels"]

_BACKLOG = 1000


class _Listener:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(_BACKLOG)

    def offer(self, message: bytes | None) -> None:
        """Queue ``message`` (None: the store closed) from any thread; dropped if full."""
        try:
            if asyncio.get_running_loop() is self.loop:
                self._put(message)
                return
        except RuntimeError:  # no loop in this thread
            pass
        self.loop.call_soon_threadsafe(self._put, message)

    def _put(self, message: bytes | None) -> None:
        if message is None:  # the end goes in even when the backlog is full
            while self.queue.full():
                self.queue.get_nowait()
        if not self.queue.full():
            self.queue.put_nowait(message)


class Channels:
    """The listeners of each channel of one store (safe to publish from any thread)."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[_Listener]] = {}
        self._lock = threading.Lock()

    def publish(self, channel: str, message: bytes) -> int:
        """Offer ``message`` to the channel's listeners; how many there were."""
        with self._lock:
            listeners = list(self._listeners.get(channel, ()))
        for listener in listeners:
            listener.offer(message)
        return len(listeners)

    async def listen(self, channel: str) -> AsyncIterator[bytes]:
        """The messages published on ``channel`` from the first ``__anext__`` on, until
        ``close``."""
        listener = _Listener()
        with self._lock:
            self._listeners.setdefault(channel, set()).add(listener)
        try:
            while (message := await listener.queue.get()) is not None:
                yield message
        finally:
            with self._lock:
                listeners = self._listeners.get(channel, set())
                listeners.discard(listener)
                if not listeners:
                    self._listeners.pop(channel, None)

    def close(self) -> None:
        """End every listener's iteration."""
        with self._lock:
            listeners = [each for group in self._listeners.values() for each in group]
        for listener in listeners:
            listener.offer(None)
