"""Printing: JSON for scripts, short human text otherwise; URLs always masked."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from store.errors import mask_url

from ..models import ExecutionSnapshot, StepRecord
from ..settings import Settings

__all__ = [
    "emit_json",
    "finished_order",
    "format_status",
    "human",
    "seconds",
    "short",
    "where",
]


def emit_json(value: Any) -> None:
    """Print ``value`` as one JSON document on stdout."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def human(line: str = "") -> None:
    """Print a line for a person (stdout)."""
    print(line)


def note(line: str) -> None:
    """A remark on stderr (not part of the command's output)."""
    print(line, file=sys.stderr, flush=True)


def where(store: str, broker: str) -> str:
    """Where the data lives, for a banner: the URLs with every password masked."""
    return f"store {mask_url(store)} · broker {mask_url(broker)}"


def where_settings(settings: Settings) -> str:
    """The banner of ``settings``: store, broker and namespace (passwords masked)."""
    return f"{where(settings.store_url, settings.broker_url)} · namespace {settings.namespace}"


def seconds(value: float | None) -> str:
    """A duration for people: ``0.12s``, ``3.4s``, ``2m05s``."""
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    if value < 120:
        return f"{value:.1f}s"
    return f"{int(value // 60)}m{int(value % 60):02d}s"


def short(value: Any, width: int = 72) -> str:
    """One line of at most ``width`` characters showing ``value``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def finished_order(snapshot: ExecutionSnapshot) -> list[StepRecord]:
    """The finished steps in the order they finished."""
    done = [step for step in snapshot.steps.values() if step.terminal]
    return sorted(done, key=lambda s: (s.finished_at or 0.0, s.result.seq if s.result else 0))


def format_status(snapshot: ExecutionSnapshot) -> str:
    """``flowloom status``: the execution, its steps in the order they finished, its result."""
    now = time.time()
    finished = finished_order(snapshot)
    ended = snapshot.finished_at or now
    lines = [
        f"execution  {snapshot.execution_id}",
        f"workflow   {snapshot.workflow_id} · generation {snapshot.generation}",
        f"status     {snapshot.status} · {seconds(ended - snapshot.created_at)}"
        f"{'' if snapshot.final else ' so far'}",
        f"steps      {len(finished)}/{snapshot.total_steps} finished",
    ]
    if snapshot.awaiting:
        events = ", ".join(snapshot.awaiting)
        lines.append(f"awaiting   {events} (flowloom signal {snapshot.execution_id} EVENT)")
    lines += [_step_line(step, now) for step in finished]
    running = [s for s in snapshot.steps.values() if not s.terminal]
    lines += [_step_line(step, now) for step in running]
    if snapshot.error:
        failed = f" (step {snapshot.failed_step})" if snapshot.failed_step else ""
        lines.append(f"error      {short(snapshot.error, 100)}{failed}")
    for key, value in snapshot.outputs.items():
        lines.append(f"output     {key}: {short(value)}")
    for earlier in snapshot.history:
        lines.append(
            f"history    generation {earlier.generation}: {earlier.status}"
            f"{f' - {short(earlier.error, 80)}' if earlier.error else ''}"
        )
    return "\n".join(lines)


def _step_line(step: StepRecord, now: float) -> str:
    started, ended = step.started_at, step.finished_at
    took = (ended or now) - started if started else None
    attempt = f" · attempt {step.attempts}" if step.attempts > 1 else ""
    return f"  {step.status:<9}  {step.node_id:<28} {seconds(took)}{attempt}"
