"""``flowloom events ID [--follow] [--after N] [--json]``: an execution's event log.

Prints one line per event (offset, time, type, step#attempt, details), or with ``--json`` one
JSON object per line (JSON Lines), flushed as it comes so a pipe sees events live. ``--after N``
resumes after offset N (the first column of an earlier run); ``--follow`` waits for new events
and ends after the execution's final status; Ctrl-C stops following (exit code 130).
``--no-tokens`` leaves out the ``step.token`` events (an LLM's streamed text).

A ``step.token`` event of an attempt that a newer attempt of its step superseded (a retry, a
re-run after a crash) is marked: ``(superseded)`` at the end of its line, ``"superseded": true``
in its JSON. Without ``--follow`` the whole log is read first, so every such event is marked;
while following, an event is marked only if the newer attempt had started when it was printed
(a newer ``step.started`` line then tells the reader that what came before is superseded).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..events import TOKEN, AttemptTracker, ExecutionEvent
from .exitcodes import EXIT_INTERRUPTED, EXIT_OK
from .lifecycle import Interrupted, Signals, client, interruptible
from .options import non_negative_int, settings_from
from .output import short

__all__ = ["format_event", "register"]


def register(
    commands: Any, common: argparse.ArgumentParser, connection: argparse.ArgumentParser
) -> None:
    """Add the ``events`` command."""
    parser = commands.add_parser(
        "events", parents=[common, connection], help="print an execution's event log"
    )
    parser.add_argument("execution_id", metavar="ID")
    parser.add_argument("--follow", action="store_true", help="wait for new events until final")
    parser.add_argument(
        "--after", type=non_negative_int, default=0, metavar="N", help="start after offset N"
    )
    parser.add_argument(
        "--no-tokens", action="store_true", help="leave out step.token events (streamed text)"
    )
    parser.set_defaults(handler=events_command)


async def events_command(args: argparse.Namespace) -> int:
    """Print the events of ``args.execution_id``."""
    async with client(settings_from(args)) as runtime:
        events = runtime.engine.events(args.execution_id, after=args.after, follow=args.follow)
        tracker = AttemptTracker()

        def printed(event: ExecutionEvent) -> None:
            if not (args.no_tokens and event.type == TOKEN):
                superseded = event.type == TOKEN and tracker.superseded(event)
                _print(event, as_json=args.json, superseded=superseded)

        async def show() -> None:
            if args.follow:
                async for event in events:
                    tracker.observe(event)
                    printed(event)
                return
            read = [event async for event in events]  # all first: every mark is known
            for event in read:
                tracker.observe(event)
            for event in read:
                printed(event)

        with Signals() as signals:
            try:
                await interruptible(show(), signals)
            except Interrupted:
                return EXIT_INTERRUPTED
    return EXIT_OK


def _print(event: ExecutionEvent, *, as_json: bool, superseded: bool = False) -> None:
    if as_json:
        body = event.to_json() | ({"superseded": True} if superseded else {})
        line = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    else:
        line = format_event(event, superseded=superseded)
    print(line, flush=True)


def format_event(event: ExecutionEvent, *, superseded: bool = False) -> str:
    """One line for a person: ``offset  time  type  step#attempt  details``."""
    at = time.strftime("%H:%M:%S", time.localtime(event.at)) + f".{int(event.at % 1 * 1000):03d}"
    step = "" if event.step_id is None else event.step_id
    if event.attempt is not None:
        step += f"#{event.attempt}"
    details = " ".join(f"{k}={short(v, 60)}" for k, v in event.data.items() if v is not None)
    if superseded:
        details += " (superseded)"
    return f"{event.offset:>6}  {at}  {event.type:<20} {step:<16} {details}".rstrip()
