"""Commands on executions: ``run``, ``status``, ``list``, ``cancel``, ``pause``, ``resume``,
``recover``. Each prints a short text, or JSON with ``--json``, and exits with a documented
code (``exitcodes``): a waited-for execution's code follows its final status."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from orchestration import Engine

from ..errors import ExecutionFinal, WaitTimeout
from ..models import FINAL_STATUSES, ExecutionOptions, ExecutionSnapshot
from ..report import format_snapshot
from ..runtime import Runtime
from ..settings import Settings
from .app import check_inputs, load_definitions, parse_inputs, parse_payload, require_workflow
from .errors import UserError
from .exitcodes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    exit_code_for_status,
)
from .lifecycle import Interrupted, Signals, client, interruptible
from .options import (
    OneLineParser,
    non_negative_int,
    positive_float,
    positive_int,
    settings_from,
)
from .output import emit_json, format_status, human, note, where_settings
from .progress import Progress, follow, follow_events

__all__ = ["register", "submit_and_wait"]

_STATUSES = ("pending", "running", "awaiting", "paused", *sorted(FINAL_STATUSES))


def register(
    commands: Any,
    common: argparse.ArgumentParser,
    connection: argparse.ArgumentParser,
    definitions: argparse.ArgumentParser,
) -> None:
    """Add the execution commands to ``commands`` (argparse subparsers)."""
    run = commands.add_parser(
        "run",
        parents=[common, connection, definitions],
        help="run a workflow",
        description="Submit an execution, print its id, then wait for it (unless --detach).",
    )
    run.add_argument("workflow", help="workflow id")
    run.add_argument(
        "--input",
        "--inputs",
        dest="input",
        metavar="JSON|@FILE",
        help="inputs: a JSON object, @file.json, or @- for standard input",
    )
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--detach", action="store_true", help="print the id and return")
    mode.add_argument("--wait", action="store_true", help="wait for the result (the default)")
    run.add_argument(
        "--follow",
        action="store_true",
        help="print what steps stream (LLM text) as it arrives, and each step's output as it ends",
    )
    run.add_argument("--timeout", type=positive_float, metavar="S", help="stop waiting after S")
    run.add_argument(
        "--deadline",
        type=positive_float,
        metavar="S",
        help="the execution times out after S seconds (status timed_out)",
    )
    run.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="workers in this process (default: 1 on the in-process broker, "
        "else 0: the cluster's workers run it)",
    )
    run.add_argument(
        "--allow-missing-inputs",
        action="store_true",
        help="start even if templates read inputs that were not given",
    )
    run.set_defaults(handler=run_command)
    _add_id_command(
        commands,
        [common, connection],
        "status",
        status_command,
        "show an execution: status, steps in the order they finished, result",
    )
    _add_id_command(commands, [common, connection], "cancel", cancel_command, "cancel")
    _add_id_command(commands, [common, connection], "pause", pause_command, "pause")
    _add_id_command(commands, [common, connection], "resume", resume_command, "resume")
    recover = _add_id_command(
        commands,
        [common, connection],
        "recover",
        recover_command,
        "re-run a failed or timed-out execution from its last checkpoint",
    )
    recover.add_argument("--force", action="store_true", help="also recover a cancelled one")
    signal = _add_id_command(
        commands,
        [common, connection],
        "signal",
        signal_command,
        "complete the wait on EVENT of an execution (a person's decision, an event)",
    )
    signal.add_argument("event", metavar="EVENT", help="the event the wait waits for")
    signal.add_argument("--action", metavar="A", help="routing action, e.g. approve or reject")
    signal.add_argument(
        "--payload", metavar="JSON|@FILE", help="the wait's output: a JSON value or @file"
    )
    listing = commands.add_parser("list", parents=[common, connection], help="list executions")
    listing.add_argument("--status", choices=_STATUSES)
    listing.add_argument("--workflow", metavar="ID")
    listing.add_argument("--limit", type=positive_int, default=20)
    listing.set_defaults(handler=list_command)


def _add_id_command(
    commands: Any, parents: list[argparse.ArgumentParser], name: str, handler: Any, text: str
) -> OneLineParser:
    parser: OneLineParser = commands.add_parser(name, parents=parents, help=text)
    parser.add_argument("execution_id", metavar="ID")
    if name == "status":
        parser.add_argument("--follow", action="store_true", help="wait, showing progress")
        parser.add_argument("--timeout", type=positive_float, metavar="S")
    parser.set_defaults(handler=handler)
    return parser


# -- run ---------------------------------------------------------------------------------------


async def run_command(args: argparse.Namespace) -> int:
    """``flowloom run WORKFLOW``."""
    settings = settings_from(args)
    engine = load_definitions(settings, args.provider)
    graph = require_workflow(engine, args.workflow)
    inputs = parse_inputs(args.input)
    check_inputs(engine, graph, inputs, allow_missing=args.allow_missing_inputs)
    workers = args.workers if args.workers is not None else (1 if settings.embedded else 0)
    if workers:
        settings = settings.replace(workers=workers)
    options = ExecutionOptions(timeout=args.deadline)
    return await submit_and_wait(settings, engine, args, inputs, options, workers=workers > 0)


async def submit_and_wait(
    settings: Settings,
    engine: Engine,
    args: argparse.Namespace,
    inputs: dict[str, Any],
    options: ExecutionOptions | None = None,
    *,
    workers: bool,
) -> int:
    """Submit ``args.workflow``, print the id first, then wait (showing progress)."""
    with Signals("second signal: exiting now") as signals:
        async with _runtime(settings, engine, workers) as runtime:
            eid = await runtime.engine.execute_async(args.workflow, inputs, options)
            _announce(settings, engine, args, eid)
            if args.detach:
                return EXIT_OK
            try:
                snapshot = await interruptible(_wait(runtime, args, eid), signals)
            except (WaitTimeout, Interrupted) as stopped:
                await _stop_workers(runtime)
                return _stopped_waiting(settings, eid, stopped)
    return _report(snapshot, engine, args)


@contextlib.asynccontextmanager
async def _runtime(settings: Settings, engine: Engine, workers: bool) -> AsyncIterator[Runtime]:
    runtime = Runtime.from_settings(engine, settings, workers=workers)
    try:
        await runtime.start()
        yield runtime
    finally:
        await runtime.close(grace_period=0, close_timeout=5.0)


async def _stop_workers(runtime: Runtime) -> None:
    """Stop this process's workers at once: their steps are handed back, not lost."""
    if runtime.pool is not None:
        await runtime.pool.stop(grace_period=0)


def _announce(settings: Settings, engine: Engine, args: argparse.Namespace, eid: str) -> None:
    if args.json and args.detach:
        emit_json({"execution_id": eid, "workflow_id": args.workflow, "status": "submitted"})
        return
    if args.detach:
        human(eid)
    elif not args.json:
        human(f"execution {eid} · workflow {args.workflow}")
    note(f"{where_settings(settings)} · provider: {engine.provider.name}")
    if args.json and not args.detach:
        note(f"execution {eid} submitted")
    if args.detach and settings.embedded:
        note(
            "the in-process broker runs it only while a worker runs on this store: "
            f"flowloom worker --store {settings.store_url} ..."
        )


async def _wait(runtime: Runtime, args: argparse.Namespace, eid: str) -> ExecutionSnapshot:
    if args.json:
        return await follow(runtime.engine, eid, None, timeout=args.timeout)
    progress = Progress(sys.stderr, live=sys.stderr.isatty(), outputs=args.follow)
    if args.follow:  # streamed text and progress live, from the execution's event log
        return await follow_events(runtime.engine, eid, progress, timeout=args.timeout)
    return await follow(runtime.engine, eid, progress, timeout=args.timeout)


def _stopped_waiting(settings: Settings, eid: str, why: WaitTimeout | Interrupted) -> int:
    timed_out = isinstance(why, WaitTimeout)
    reason = "the --timeout passed" if timed_out else "interrupted"
    if settings.embedded:
        goes_on = (
            "it goes on when a worker runs on this store again: "
            f"flowloom worker --store {settings.store_url} ..."
        )
    else:
        goes_on = "it goes on on the cluster's workers"
    note(
        f"stopped waiting ({reason}): execution {eid} is not finished; {goes_on}. "
        f"Follow it: flowloom status {eid} --follow · cancel it: flowloom cancel {eid}"
    )
    return EXIT_TIMED_OUT if timed_out else EXIT_INTERRUPTED


def _report(snapshot: ExecutionSnapshot, engine: Engine, args: argparse.Namespace) -> int:
    if args.json:
        emit_json(snapshot.model_dump(mode="json"))
    else:
        human(format_snapshot(snapshot, engine.graph(snapshot.workflow_id), engine.provider.name))
    return exit_code_for_status(snapshot.status)


# -- reading and controlling -------------------------------------------------------------------


async def status_command(args: argparse.Namespace) -> int:
    """``flowloom status ID [--follow]``."""
    async with client(settings_from(args)) as runtime:
        if not args.follow:
            snapshot = await runtime.engine.get_execution_status(args.execution_id)
            _show(snapshot, args)
            return EXIT_OK
        progress = None if args.json else Progress(sys.stderr, live=sys.stderr.isatty())
        with Signals() as signals:
            try:
                snapshot = await interruptible(
                    follow(runtime.engine, args.execution_id, progress, timeout=args.timeout),
                    signals,
                )
            except Interrupted:
                return EXIT_INTERRUPTED
        _show(snapshot, args)
        return exit_code_for_status(snapshot.status)


def _show(snapshot: ExecutionSnapshot, args: argparse.Namespace) -> None:
    if args.json:
        emit_json(snapshot.model_dump(mode="json"))
    else:
        human(format_status(snapshot))


async def list_command(args: argparse.Namespace) -> int:
    """``flowloom list [--status S] [--workflow W] [--limit N]``."""
    found: list[ExecutionSnapshot] = []
    async with client(settings_from(args)) as runtime:
        engine = runtime.engine
        async for eid in engine.persistence.all_executions():
            snapshot = await engine.get_execution_status(eid)
            if _matches(snapshot, args):
                found.append(snapshot)
            if len(found) >= args.limit:
                break
    found.sort(key=lambda s: s.created_at, reverse=True)
    if args.json:
        emit_json([_summary(s) for s in found])
    else:
        _print_table(found)
    return EXIT_OK


def _matches(snapshot: ExecutionSnapshot, args: argparse.Namespace) -> bool:
    if args.status is not None and snapshot.status != args.status:
        return False
    return args.workflow is None or snapshot.workflow_id == args.workflow


def _summary(snapshot: ExecutionSnapshot) -> dict[str, Any]:
    return snapshot.model_dump(
        mode="json",
        include={
            "execution_id",
            "workflow_id",
            "status",
            "generation",
            "created_at",
            "finished_at",
            "error",
            "total_steps",
            "completed_steps",
        },
    )


def _print_table(found: list[ExecutionSnapshot]) -> None:
    if not found:
        human("no executions")
        return
    human(f"{'EXECUTION':<34} {'WORKFLOW':<16} {'STATUS':<10} STEPS")
    for s in found:
        steps = f"{len(s.completed_steps)}/{s.total_steps}"
        human(f"{s.execution_id:<34} {s.workflow_id:<16} {s.status:<10} {steps}")


async def cancel_command(args: argparse.Namespace) -> int:
    """``flowloom cancel ID``: exit 0 if this call cancelled it, 1 if it was already final."""
    async with client(settings_from(args)) as runtime:
        cancelled = await runtime.engine.cancel(args.execution_id)
        snapshot = await runtime.engine.get_execution_status(args.execution_id)
    if args.json:
        emit_json(
            {"execution_id": args.execution_id, "cancelled": cancelled, "status": snapshot.status}
        )
    if not cancelled:
        raise UserError(
            f"execution {args.execution_id!r} is already {snapshot.status}; nothing to cancel",
            EXIT_FAILED,
        )
    if not args.json:
        human(f"cancelled {args.execution_id}")
    return EXIT_OK


async def pause_command(args: argparse.Namespace) -> int:
    """``flowloom pause ID``: no new step starts until ``resume``."""
    return await _control(args, "pause")


async def resume_command(args: argparse.Namespace) -> int:
    """``flowloom resume ID``: the ready steps are scheduled again."""
    return await _control(args, "resume")


async def _control(args: argparse.Namespace, action: str) -> int:
    async with client(settings_from(args)) as runtime:
        engine = runtime.engine
        try:
            await (engine.pause if action == "pause" else engine.resume)(args.execution_id)
        except ExecutionFinal as final:
            if args.json:
                emit_json(
                    {
                        "execution_id": args.execution_id,
                        "action": action,
                        "done": False,
                        "status": final.status,
                    }
                )
            raise UserError(
                f"execution {args.execution_id!r} is already {final.status}; "
                f"there is nothing to {action}",
                EXIT_FAILED,
            ) from None
    done = "paused" if action == "pause" else "resumed"
    if args.json:
        emit_json(
            {
                "execution_id": args.execution_id,
                "action": action,
                "done": True,
                "status": done if action == "pause" else "running",
            }
        )
    else:
        human(f"{done} {args.execution_id}")
    return EXIT_OK


async def recover_command(args: argparse.Namespace) -> int:
    """``flowloom recover ID [--force]``: a new generation from the last checkpoint."""
    async with client(settings_from(args)) as runtime:
        generation = await runtime.recovery.recover_failed_execution(
            args.execution_id, force=args.force
        )
    if args.json:
        emit_json({"execution_id": args.execution_id, "generation": generation})
    else:
        human(f"recovered {args.execution_id} as generation {generation}")
    return EXIT_OK


async def signal_command(args: argparse.Namespace) -> int:
    """``flowloom signal ID EVENT [--action A] [--payload JSON]``: exit 1 when refused."""
    payload = parse_payload(args.payload)
    settings = settings_from(args)
    async with client(settings, load_definitions(settings)) as runtime:
        await runtime.engine.signal(args.execution_id, args.event, payload, args.action)
    if args.json:
        emit_json({"execution_id": args.execution_id, "event": args.event, "action": args.action})
    else:
        routed = f" ({args.action})" if args.action else ""
        human(f"signalled {args.event}{routed} to {args.execution_id}")
    return EXIT_OK
