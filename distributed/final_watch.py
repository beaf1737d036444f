"""``FinalWatch``: wakes ``DistributedEngine.wait`` as soon as an execution's final status is
told, in this process or in another one that shares the store.

``wait`` polls the store, backing off from ``EngineConfig.poll_interval`` to
``max_poll_interval``. The write that stores a final status also publishes the execution's id
as a notice (``WorkflowPersistence.set_final``: a ``Publish`` in its batch, pub/sub on Redis),
and the process that tells the status calls the ``execution_final`` hook, which sets the events
of the waiters of its own process. A process with waiters listens for those notices
(``finals_told``, from its first ``wait`` until ``close``) and sets its waiters' events too, so
``wait`` returns within a round trip of the status being stored instead of at its next poll.
Polling stays the fallback: a notice only ever wakes a waiter early, never answers in the
store's place, and one lost (the listener was connecting, or the connection dropped) costs at most
a poll interval.

Once the listener has heard a notice (``hearing``: its subscription is live), every status stored
from then on reaches it, so ``wait`` polls only every ``max_poll_interval``, as a safety net for
a notice lost with a connection. Under load that saves most of a waiter's reads; a lone waiter in
a quiet system polls as before until a first notice comes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from .hooks import ExecutionFinished, Hooks
from .listening import listen_until_closed
from .persistence import WorkflowPersistence

__all__ = ["FinalWatch", "sleep_unless_set"]


class FinalWatch(Hooks):
    """The events of the ``wait`` calls of this process, by execution id, and the notices that
    set them from other processes (none without ``persistence``)."""

    def __init__(self, persistence: WorkflowPersistence | None = None) -> None:
        self._persistence = persistence
        self._events: dict[str, list[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self.hearing = False  # the listener heard a notice since it (re)subscribed

    @contextlib.contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set once the execution's final status is told (here or elsewhere)."""
        self._listen()
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
        self._wake(event.execution_id)

    async def close(self) -> None:
        """Stop listening."""
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        self._listener = None
        self.hearing = False

    def _wake(self, execution_id: str) -> None:
        for waiting in self._events.get(execution_id, ()):
            waiting.set()

    def _listen(self) -> None:
        running = self._listener is not None and not self._listener.done()
        if self._persistence is not None and not running:
            self._listener = asyncio.get_running_loop().create_task(
                self._hear(self._persistence), name="flowloom-finals-told"
            )

    async def _hear(self, persistence: WorkflowPersistence) -> None:
        """Wake the waiters of every execution told final, until the store closes (waiters
        poll meanwhile when the store fails)."""

        def hear(execution_id: str) -> None:
            self.hearing = True
            self._wake(execution_id)

        await listen_until_closed(
            persistence.finals_told, hear, "final statuses", lapsed=self._lapse
        )

    def _lapse(self) -> None:
        self.hearing = False


async def sleep_unless_set(event: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``event`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
