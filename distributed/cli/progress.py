"""Following an execution: steps as they finish (in the order they finished), and on a terminal
a live line with steps done/total, the steps running and for how long, and the time elapsed.

``run --follow`` also reads the execution's event log (``follow_events``): it prints the text an
LLM streams as it arrives (``step.token`` events, one ``▸ step`` line per stretch of a step's
text), the progress messages steps emit, retries, and notes when a newer attempt of a step
supersedes the text its earlier attempt streamed. The reader resumes from the last offset it
printed when a read fails, and ends after the execution's final status; a step's finished line
waits until the reader has passed the step's end, so it comes after the step's last chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TextIO

from ..engine import DistributedEngine
from ..errors import WaitTimeout
from ..events import TOKEN, AttemptTracker, ExecutionEvent
from ..models import ExecutionSnapshot, StepRecord
from .output import finished_order, seconds, short

__all__ = ["Progress", "follow", "follow_events"]

log = logging.getLogger(__name__)

_POLL = 0.1
_READER_GRACE = 5.0  # after the final status: how long the event reader may take to finish
_RETRY_READ = 0.5  # after a failed read of the event log: when to read again
_INDENT = "    "
_ENDS = frozenset({"step.finished", "step.failed", "step.waiting", "step.interrupted"})


class Progress:
    """Prints each finished step once; redraws a status line when ``live`` (a terminal).

    ``outputs``: also print each finished step's output (``--follow``). ``event`` takes the
    execution's events (``follow_events``): streamed text, progress messages and retries are
    printed as they come."""

    def __init__(self, stream: TextIO, *, live: bool, outputs: bool = False) -> None:
        self.stream = stream
        self.live = live
        self.outputs = outputs
        self.started = time.monotonic()
        self._printed: set[str] = set()
        self._status_shown = False
        self._events = False  # fed events: finished lines wait for the step's end event
        self._tracker = AttemptTracker()
        self._ended: set[tuple[str, int]] = set()  # (step, attempt) whose end event was read
        self._streamed: dict[str, int] = {}  # step -> the attempt whose text was printed
        self._open: tuple[str, int] | None = None  # the (step, attempt) of an unended text line

    def update(self, snapshot: ExecutionSnapshot, *, final: bool = False) -> None:
        """Show what changed since the last snapshot (``final``: the event reader is done, so
        no finished step waits for its end event any more)."""
        for step in finished_order(snapshot):
            if step.node_id not in self._printed and (final or not self._awaits_end(step)):
                self._printed.add(step.node_id)
                self._write(self._finished_line(snapshot, step.node_id))
        if self.live and not snapshot.final and self._open is None:
            self._draw_status(snapshot)

    def event(self, event: ExecutionEvent) -> bool:
        """Show one event of the execution's log, read in order; True when it ends a step's
        attempt (the caller then shows a fresh snapshot, so the step's finished line comes
        right after its text)."""
        self._events = True
        step, attempt = event.step_id, event.attempt
        if self._tracker.observe(event) and step in self._streamed:
            earlier = self._streamed.pop(step)
            self._write(
                f"  ↻ {step}: attempt {attempt} started; the text attempt {earlier} "
                "streamed above is superseded"
            )
        if step is None or attempt is None:
            return False
        if event.type == TOKEN:
            if not self._tracker.superseded(event):
                self._text(step, attempt, str(event.data.get("text", "")))
        elif event.type == "step.progress":
            data = {k: v for k, v in event.data.items() if k != "message"}
            details = " ".join(f"{k}={short(v, 40)}" for k, v in data.items())
            self._write(f"  · {step}: {short(event.data.get('message', ''), 60)} {details}")
        elif event.type == "step.retrying":
            error, delay = short(event.data.get("error", ""), 60), event.data.get("delay")
            delay_text = seconds(delay) if isinstance(delay, int | float) else "-"
            self._write(
                f"  retrying  {step:<28} attempt {attempt} failed ({error}); again in {delay_text}"
            )
        elif event.type in _ENDS:
            self._ended.add((step, attempt))
            if self._open == (step, attempt):
                self._end_text()
            return True
        return False

    def close(self) -> None:
        """End an open line of streamed text and clear the live line."""
        self._end_text()
        self._clear_status()

    def _awaits_end(self, step: StepRecord) -> bool:
        """Whether the event reader has yet to pass the end of the step's latest attempt (its
        last chunks of text come before it)."""
        attempt = step.current_attempt
        return self._events and attempt > 0 and (step.node_id, attempt) not in self._ended

    def _text(self, step: str, attempt: int, text: str) -> None:
        if not text:
            return
        if self._open != (step, attempt):
            self._end_text()
            self._clear_status()
            label = step if attempt == 1 else f"{step}#{attempt}"
            self.stream.write(f"  ▸ {label}  ")
            self._open = (step, attempt)
            self._streamed[step] = attempt
        self.stream.write(text.replace("\n", "\n" + _INDENT))
        self.stream.flush()

    def _end_text(self) -> None:
        if self._open is not None:
            self._open = None
            self.stream.write("\n")
            self.stream.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._status_shown = False

    def _finished_line(self, snapshot: ExecutionSnapshot, node_id: str) -> str:
        step = snapshot.steps[node_id]
        took = (step.finished_at or 0) - step.started_at if step.started_at else None
        line = f"  {step.status:<9} {node_id:<28} {seconds(took)}"
        output = step.result.output if step.result is not None else None
        streamed = self._streamed.get(node_id) == step.current_attempt
        if self.outputs and output is not None and not (streamed and isinstance(output, str)):
            line += f"  {short(output, 60)}"
        return line

    def _draw_status(self, snapshot: ExecutionSnapshot) -> None:
        now = time.time()
        running = [s for s in snapshot.steps.values() if s.status in ("running", "waiting")]
        busy = ", ".join(
            f"{s.node_id} {seconds(now - s.started_at) if s.started_at else ''}".strip()
            for s in running
        )
        done = len(self._printed)
        elapsed = seconds(time.monotonic() - self.started)
        doing = f"running: {busy}" if busy else f"{snapshot.status}: waiting for a worker"
        self.stream.write(f"\r\033[K  [{done}/{snapshot.total_steps}] {elapsed} · {doing}")
        self.stream.flush()
        self._status_shown = True

    def _write(self, line: str) -> None:
        self.close()
        self.stream.write(line + "\n")
        self.stream.flush()


async def follow(
    engine: DistributedEngine,
    execution_id: str,
    progress: Progress | None,
    *,
    timeout: float | None,
) -> ExecutionSnapshot:
    """Poll until the execution is final, showing progress; ``WaitTimeout`` after ``timeout``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            snapshot = await engine.get_execution_status(execution_id)
            if progress is not None:
                progress.update(snapshot)
            if snapshot.final:
                return snapshot
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(execution_id, timeout or 0.0)
            await asyncio.sleep(_POLL)
    finally:
        if progress is not None:
            progress.close()


async def follow_events(
    engine: DistributedEngine,
    execution_id: str,
    progress: Progress,
    *,
    timeout: float | None,
) -> ExecutionSnapshot:
    """Like ``follow``, also printing the execution's events as they are appended (streamed
    text first of all); returns once the execution is final and its log read to the end."""
    deadline = None if timeout is None else time.monotonic() + timeout
    reader = asyncio.create_task(_read_events(engine, execution_id, progress))
    try:
        while True:
            snapshot = await engine.get_execution_status(execution_id)
            if snapshot.final:
                left = _READER_GRACE if deadline is None else deadline - time.monotonic()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reader), max(min(left, _READER_GRACE), 0))
                progress.update(snapshot, final=True)
                return snapshot
            progress.update(snapshot)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(execution_id, timeout or 0.0)
            await asyncio.sleep(_POLL)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        progress.close()


async def _read_events(engine: DistributedEngine, execution_id: str, progress: Progress) -> None:
    """Feed the execution's events to ``progress`` until the log ends after the final status;
    a failed read is retried from the last offset shown (nothing missed, nothing twice)."""
    after = 0
    while True:
        try:
            async for event in engine.events(execution_id, after=after, follow=True):
                after = event.offset
                if progress.event(event):
                    progress.update(await engine.get_execution_status(execution_id))
            return
        except Exception as exc:
            log.warning("reading the event log failed (%s); reading on after offset %d", exc, after)
            await asyncio.sleep(_RETRY_READ)
