"""Following an execution: steps as they finish (in the order they finished), and on a terminal
a live line with steps done/total, the steps running and for how long, and the time elapsed."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from ..engine import DistributedEngine
from ..errors import WaitTimeout
from ..models import ExecutionSnapshot
from .output import finished_order, seconds, short

__all__ = ["Progress", "follow"]

_POLL = 0.1


class Progress:
    """Prints each finished step once; redraws a status line when ``live`` (a terminal).

    ``outputs``: also print each finished step's output (``--follow``)."""

    def __init__(self, stream: TextIO, *, live: bool, outputs: bool = False) -> None:
        self.stream = stream
        self.live = live
        self.outputs = outputs
        self.started = time.monotonic()
        self._printed: set[str] = set()
        self._status_shown = False

    def update(self, snapshot: ExecutionSnapshot) -> None:
        """Show what changed since the last snapshot."""
        for step in finished_order(snapshot):
            if step.node_id not in self._printed:
                self._printed.add(step.node_id)
                self._write(self._finished_line(snapshot, step.node_id))
        if self.live and not snapshot.final:
            self._draw_status(snapshot)

    def close(self) -> None:
        """Clear the live line."""
        if self._status_shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._status_shown = False

    def _finished_line(self, snapshot: ExecutionSnapshot, node_id: str) -> str:
        step = snapshot.steps[node_id]
        took = (step.finished_at or 0) - step.started_at if step.started_at else None
        line = f"  {step.status:<9} {node_id:<28} {seconds(took)}"
        if self.outputs and step.result is not None and step.result.output is not None:
            line += f"  {short(step.result.output, 60)}"
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
