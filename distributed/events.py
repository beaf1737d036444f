"""The per-execution event log: what happened to an execution, in order, readable live.

``EventRecorder`` is a lifecycle hook (DESIGN §9) that every ``RuntimeContext`` built with
``RuntimeContext.build`` installs (so it is always on: in the engine's process, in every worker
and in the recovery sweep). It turns hook calls into ``ExecutionEvent`` records and appends them
to the execution's log in the store (``Keys.events``; a store log, see ``store.base``), whose
offsets the store assigns atomically, so several processes append to one log safely.

Hooks are synchronous and must not block, so the recorder only queues an event; a background
task appends the queue ``flush_interval`` (50 ms) after the first event queued, in batches (one
``log_append`` per execution and batch, all sent at once, which a Redis store pipelines into one
round trip), so a busy worker pays one round trip per interval instead of one per event; events
queued while a batch is being appended wait for the next interval. A store error is logged and
the batch dropped: the log observes execution, it never breaks it. Events a process queued but
had not appended when it was SIGKILLed are lost; ``flush`` (called by
``DistributedEngine.close``) appends what is queued.

Event types::

    execution.submitted   execution.final (status, error, failed_step)
    execution.paused      execution.resumed      execution.recovered
    step.started (attempt, worker)   step.finished (outcome completed|fallback, duration)
    step.failed           step.waiting           step.retrying (delay, error)
    step.interrupted (outcome cancelled|lease_lost|released)      step.lease_expired
    step.skipped          (no attempt: the step never ran)
    step.progress (message, and the data a step passed to ``ctx.emit(message, **data)``)
    step.token (text: a chunk of what an LLM streamed during the attempt)

``ctx.emit`` reaches the log through ``orchestration.context.current_emitter``, and an LLM's
streamed text through ``current_token_emitter``: the recorder sets both in ``step_started``,
which the worker calls in the task that then runs the attempt, and resets them in
``step_finished`` (the slot's next step begins in the context the slot began with). Token
events are on unless the recorder was built with ``tokens=False`` (every execution it records),
the step's ``StepStarted.tokens`` is False (the execution turned them off) or the node did
(``params.streamTokens: false``); with them off the provider is not even asked to stream.
Chunks queued back to back for one attempt are merged into one ``step.token`` event (up to
``token_chars`` characters), and a batch holding only tokens is appended ``token_interval``
(200 ms) after its first chunk rather than 50 ms, so a stream costs one event and one append per
execution every 200 ms, however fast its chunks come.

Every step event carries the attempt, so events of an attempt that was retried or re-run after a
crash can be told apart from the final attempt's. ``AttemptTracker`` (and ``drop_superseded``,
``streamed_text``) applies the rule readers use for tokens: a step's tokens are superseded once
a newer attempt of the step started (see ``docs/events.md``). The log keeps the newest
``max_len`` events, drops the events older than ``max_age`` (24 h) as it appends, and expires
with the execution's retention once the execution is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic_core import to_json

from orchestration.context import Emitter, TokenEmitter, current_emitter, current_token_emitter
from store import KVStore

from .hooks import (
    ExecutionControl,
    ExecutionFinished,
    ExecutionSubmitted,
    Hooks,
    LeaseExpired,
    RetryScheduled,
    StepFinished,
    StepSkipped,
    StepStarted,
)
from .keys import Keys
from .roots import root_ended

__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_EVENTS",
    "TOKEN",
    "AttemptTracker",
    "EventRecorder",
    "ExecutionEvent",
    "drop_superseded",
    "read_events",
    "streamed_text",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_AGE = 24 * 3600.0
TOKEN = "step.token"
_BATCH = 200
_STEP_TYPES = {
    "completed": "step.finished",
    "fallback": "step.finished",
    "failed": "step.failed",
    "waiting": "step.waiting",
    "cancelled": "step.interrupted",
    "lease_lost": "step.interrupted",
    "released": "step.interrupted",
}  # "retry" is left to retry_scheduled (step.retrying), which says when and why


class _Entry(NamedTuple):
    """An event at rest, without its offset (the log assigns it): what the recorder queues, as
    a tuple (a step queues two: a frozen dataclass costs three times as much to make)."""

    type: str
    execution_id: str
    at: float
    step_id: str | None
    attempt: int | None
    data: dict[str, Any]

    def encode(self) -> bytes:
        return to_json(self._asdict(), fallback=repr)  # pydantic's: 4x json's speed


@dataclass(frozen=True, kw_only=True)
class ExecutionEvent:
    """One entry of an execution's event log (JSON at rest; ``offset`` is the log's)."""

    type: str
    execution_id: str
    at: float
    step_id: str | None = None
    attempt: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    offset: int = 0

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {"offset": self.offset, **self._at_rest()._asdict()}

    def encode(self) -> bytes:
        """The entry at rest: ``to_json`` without the offset (the store assigns it)."""
        return self._at_rest().encode()

    def _at_rest(self) -> _Entry:
        data = dict(self.data)
        return _Entry(self.type, self.execution_id, self.at, self.step_id, self.attempt, data)

    @classmethod
    def decode(cls, offset: int, raw: bytes) -> ExecutionEvent:
        body = json.loads(raw)
        return cls(
            type=str(body["type"]),
            execution_id=str(body["execution_id"]),
            at=float(body["at"]),
            step_id=body.get("step_id"),
            attempt=body.get("attempt"),
            data=body.get("data") or {},
            offset=offset,
        )


class EventRecorder(Hooks):
    """Appends lifecycle events to each execution's log in ``store`` (queued, batched)."""

    def __init__(
        self,
        store: KVStore,
        keys: Keys,
        *,
        max_len: int = DEFAULT_MAX_EVENTS,
        max_age: float | None = DEFAULT_MAX_AGE,
        retention: float | None = None,
        clock: Callable[[], float] = time.time,
        flush_interval: float = 0.05,
        tokens: bool = True,
        token_interval: float = 0.2,
        token_chars: int = 4096,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.token_interval = token_interval
        self.keys = keys
        self.max_len = max_len
        self.max_age = max_age
        self.retention = retention
        self.tokens = tokens
        self.token_chars = token_chars
        self.clock = clock
        self._queue: list[_Entry] = []
        self._token_tail: dict[tuple[str, str], int] = {}  # a step's last queued token event
        self._bound: dict[tuple[str, str, int], tuple[Token[Any], Token[Any]]] = {}  # emitters
        # finished executions: the generation that ended, and a child's parent
        self._expire: dict[str, tuple[int, str | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_for_tokens = False  # the drain ``_timer`` runs was set by a token event
        self._lock = asyncio.Lock()

    # -- hooks ---------------------------------------------------------------------------------

    def execution_submitted(self, event: ExecutionSubmitted) -> None:
        data = {"workflow_id": event.workflow_id, "generation": event.generation}
        self.record(event.execution_id, "execution.submitted", data=data)

    def step_started(self, event: StepStarted) -> None:
        eid, step, attempt = event.execution_id, event.step_id, event.attempt
        self.record(eid, "step.started", step, attempt, {"worker_id": event.worker_id})
        tokens = self.tokens and event.tokens
        token_emitter = self._token_emitter(eid, step, attempt) if tokens else None
        self._bound[eid, step, attempt] = (
            current_emitter.set(self._emitter(eid, step, attempt)),
            current_token_emitter.set(token_emitter),
        )

    def _emitter(self, execution_id: str, step_id: str, attempt: int) -> Emitter:
        def emit(message: str, data: Mapping[str, Any]) -> None:
            body = {"message": message, **data}
            self.record(execution_id, "step.progress", step_id, attempt, body)

        return emit

    def _token_emitter(self, execution_id: str, step_id: str, attempt: int) -> TokenEmitter:
        def emit(text: str) -> None:
            self.record_token(execution_id, step_id, attempt, text)

        return emit

    def step_finished(self, event: StepFinished) -> None:
        self._unbind(event.execution_id, event.step_id, event.attempt)
        kind = _STEP_TYPES.get(event.outcome)
        if kind is not None:
            data = {"outcome": event.outcome, "duration": round(event.duration, 6)}
            self.record(event.execution_id, kind, event.step_id, event.attempt, data)

    def _unbind(self, execution_id: str, step_id: str, attempt: int) -> None:
        """Reset the emitters ``step_started`` set for an attempt (to None if it was started
        in another context, as by a duplicate run of the attempt in this process)."""
        bound = self._bound.pop((execution_id, step_id, attempt), None)
        if bound is not None:
            with contextlib.suppress(ValueError):  # a token of another context
                current_token_emitter.reset(bound[1])
                current_emitter.reset(bound[0])
                return
        current_emitter.set(None)
        current_token_emitter.set(None)

    def step_skipped(self, event: StepSkipped) -> None:
        self.record(event.execution_id, "step.skipped", event.step_id)

    def retry_scheduled(self, event: RetryScheduled) -> None:
        data = {"delay": event.delay, "error": event.error}
        self.record(event.execution_id, "step.retrying", event.step_id, event.attempt, data)

    def lease_expired(self, event: LeaseExpired) -> None:
        data = {"owner": event.owner, "expiries": event.expiries}
        self.record(event.execution_id, "step.lease_expired", event.step_id, data=data)

    def execution_control(self, event: ExecutionControl) -> None:
        data = {"generation": event.generation}
        self.record(event.execution_id, f"execution.{event.action}", data=data)

    def execution_final(self, event: ExecutionFinished) -> None:
        data = {
            "status": event.status,
            "error": event.error,
            "failed_step": event.failed_step,
            "generation": event.generation,
        }
        self.record(event.execution_id, "execution.final", data=data)
        if self.retention is not None:
            self._expire[event.execution_id] = (event.generation, event.parent_id)

    # -- queue and flush -----------------------------------------------------------------------

    def record(
        self,
        execution_id: str,
        type: str,
        step_id: str | None = None,
        attempt: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue an event for the log of ``execution_id``; appended by a background task."""
        entry = _Entry(type, execution_id, self.clock(), step_id, attempt, dict(data or {}))
        self._queue.append(entry)
        token = type == TOKEN
        if step_id is not None:  # where a step's next chunk of text may go
            if token:
                self._token_tail[(execution_id, step_id)] = len(self._queue) - 1
            else:
                self._token_tail.pop((execution_id, step_id), None)
        if self._timer is None or (self._timer_for_tokens and not token):
            self._schedule(token)  # else a drain at least as soon is due already

    def _schedule(self, token: bool) -> None:
        """Drain ``token_interval`` (a token) or ``flush_interval`` seconds from now, unless
        a drain is due sooner already."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: flush() appends it later
            return
        due = loop.time() + (self.token_interval if token else self.flush_interval)
        timer = self._timer
        if timer is not None:
            if timer.when() <= due:
                return
            timer.cancel()  # a token drain, and now an event that should go sooner
        # drains take turns (a lock), so one may start while one runs
        self._timer = loop.call_at(due, self._start_drain)
        self._timer_for_tokens = token

    def record_token(self, execution_id: str, step_id: str, attempt: int, text: str) -> None:
        """Queue a chunk of streamed text of an attempt as a ``step.token`` event, appended to
        the attempt's last queued token event when nothing else of that step was queued after
        it (up to ``token_chars`` characters per event)."""
        if not isinstance(text, str) or not text:
            return
        index = self._token_tail.get((execution_id, step_id))
        if index is not None:
            queued = self._queue[index]
            data = queued.data
            if queued.attempt == attempt and len(data["text"]) + len(text) <= self.token_chars:
                data["text"] += text
                return
        self.record(execution_id, TOKEN, step_id, attempt, {"text": text})

    def _start_drain(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._drain(until_empty=False))

    async def flush(self) -> None:
        """Append every queued event now (and wait for the background append in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        await self._drain()

    async def _drain(self, *, until_empty: bool = True) -> None:
        """Append the queued events. A background drain appends what was queued when it began,
        in one turn however much that is (the executions' logs side by side, each in pieces of
        ``_BATCH``), so it keeps up with any rate of events; what comes meanwhile waits for the
        next one (whose timer runs from the first such event), so a busy process appends about
        once per ``flush_interval`` however slow the store, and a stream's chunks merge over
        that long. ``flush`` drains until nothing is left."""
        async with self._lock:  # one drain at a time keeps each process's events in order
            while self._queue:
                taken, self._queue = self._queue, []
                self._token_tail.clear()  # its indexes pointed into the queue taken
                await self._append(taken)
                if not until_empty:
                    break
            expire, self._expire = self._expire, {}
            if expire and self.retention is not None:
                await self._guard(self._expire_logs(expire, self.retention))

    async def _append(self, taken: list[_Entry]) -> None:
        by_execution: dict[str, list[bytes]] = {}
        for event in taken:
            by_execution.setdefault(event.execution_id, []).append(event.encode())
        # side by side: a Redis store sends the appends of one turn in one round trip
        await asyncio.gather(*(self._append_log(eid, ns) for eid, ns in by_execution.items()))

    async def _append_log(self, execution_id: str, entries: list[bytes]) -> None:
        key = self.keys.events(execution_id)
        for start in range(0, len(entries), _BATCH):  # in order: one piece after the other
            piece = entries[start : start + _BATCH]
            append = self.store.log_append(key, piece, max_len=self.max_len, max_age=self.max_age)
            await self._guard(append)

    async def _expire_logs(self, ended: Mapping[str, tuple[int, str | None]], ttl: float) -> None:
        """Give the logs of the executions that ``ended`` (generation and parent by id) their
        expiry, unless one was recovered since: a new generation took the expiry back
        (``start_generation``), and this drain may come after it (up to a flush interval after
        the final status, in whichever process told it). A child's log expires with its
        root's, unless that root ended already (``KVPersistence`` expires its records then)."""
        keys = [self.keys.generation(execution_id) for execution_id in ended]
        current = await self.store.get_many(keys)
        still = [  # a generation key that is absent: gone, or a record older than the key
            (eid, parent)
            for (eid, (gen, parent)), raw in zip(ended.items(), current, strict=True)
            if raw is None or raw == b"%d" % gen
        ]
        children = {eid: parent for eid, parent in still if parent is not None}
        roots = (root_ended(self.store, self.keys, parent) for parent in children.values())
        ended_roots = await asyncio.gather(*roots)
        kept = {eid for eid, done in zip(children, ended_roots, strict=True) if not done}
        expiring = [eid for eid, _ in still if eid not in kept]
        await asyncio.gather(*(self.store.log_expire(self.keys.events(e), ttl) for e in expiring))

    @staticmethod
    async def _guard(call: Any) -> None:
        try:
            await call
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("could not write to the event log; events dropped", exc_info=True)


async def read_events(
    store: KVStore,
    keys: Keys,
    execution_id: str,
    *,
    after: int = 0,
    follow: bool = False,
    is_final: Callable[[], Awaitable[bool]] | None = None,
    poll_interval: float = 0.02,
    max_poll_interval: float = 0.5,
    linger: float = 0.25,
    final_grace: float = 2.0,
) -> AsyncIterator[ExecutionEvent]:
    """Yield the events of ``execution_id`` with offsets above ``after``, in order.

    Without ``follow`` it stops at the end of the log. With ``follow`` it polls (backing off from
    ``poll_interval`` to ``max_poll_interval``) until the execution is over: ``linger`` seconds
    with no new event after an ``execution.final`` event while ``is_final()`` holds (the last
    step's own ``step.finished`` follows its execution's final status), or ``final_grace``
    seconds with no event once ``is_final()`` holds (the final event was lost with a killed
    process). A recovered execution goes on past an earlier generation's final event."""
    key, interval = keys.events(execution_id), poll_interval
    final_seen = quiet_since = None
    while True:
        page = await store.log_read(key, after=after)
        for offset, raw in page:
            event = ExecutionEvent.decode(offset, raw)
            after = offset
            yield event
            if event.type == "execution.final":
                final_seen = True
        if page:
            interval, quiet_since = poll_interval, None
            continue
        if not follow:
            return
        if is_final is None or await is_final():
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= (linger if final_seen else final_grace):
                return
        else:  # not final (again: a recovered execution goes on)
            final_seen = quiet_since = None
        await asyncio.sleep(min(interval, linger) if final_seen else interval)
        interval = min(interval * 1.5, max_poll_interval)


# -- superseded attempts --------------------------------------------------------------------------


class AttemptTracker:
    """Which attempt of each step is current, from the events seen so far, in log order.

    Feed it every event (``observe``); ``superseded(event)`` then tells whether a step event
    belongs to an attempt that a newer one replaced: a newer ``step.started`` of the same step
    came later in the log (a retry, a re-run after a crash, a recovered execution's new
    generation, whose attempts count from 1 again), or the step's latest ``step.started`` has a
    higher attempt (the late events of a hung worker whose lease was taken over). Readers apply
    it to ``step.token`` events: only the current attempt's text is the step's output. While
    following, an event can be found superseded only later, when the newer attempt starts."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, int]] = {}  # step -> (offset, attempt) last started

    def observe(self, event: ExecutionEvent) -> bool:
        """Take ``event`` into account; True if it starts a newer attempt of a step that
        had started before (so that step's earlier events are superseded from here on)."""
        if event.type != "step.started" or event.step_id is None or event.attempt is None:
            return False
        again = event.step_id in self._latest
        self._latest[event.step_id] = (event.offset, event.attempt)
        return again

    def superseded(self, event: ExecutionEvent) -> bool:
        """Whether ``event`` (of a step, with an attempt) belongs to a superseded attempt."""
        if event.step_id is None or event.attempt is None:
            return False
        latest = self._latest.get(event.step_id)
        if latest is None:
            return False
        offset, attempt = latest
        return offset > event.offset or attempt > event.attempt


def drop_superseded(events: Iterable[ExecutionEvent]) -> list[ExecutionEvent]:
    """``events`` (in log order) without the ``step.token`` events of superseded attempts."""
    kept, tracker = list(events), AttemptTracker()
    for event in kept:
        tracker.observe(event)
    return [e for e in kept if not (e.type == TOKEN and tracker.superseded(e))]


def streamed_text(events: Iterable[ExecutionEvent]) -> dict[str, str]:
    """What each step's current attempt streamed: its ``step.token`` texts joined, by step."""
    text: dict[str, list[str]] = {}
    for event in drop_superseded(events):
        if event.type == TOKEN and event.step_id is not None:
            text.setdefault(event.step_id, []).append(str(event.data.get("text", "")))
    return {step: "".join(parts) for step, parts in text.items()}
