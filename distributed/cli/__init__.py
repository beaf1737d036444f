"""The ``flowloom`` command (also ``python -m distributed``): one module per command group.

    flowloom worker APP [--blueprints DIR] [--concurrency N] [--processes N] [--check]
    flowloom run WORKFLOW [--input JSON|@file] [--detach | --wait] [--timeout S] [--follow]
    flowloom status ID [--follow] · list [--status S] [--workflow W] [--limit N]
    flowloom events ID [--follow] [--after N]
    flowloom cancel ID · pause ID · resume ID · recover ID [--force]
    flowloom dlq list | show ID | replay ID|--all | purge
    flowloom validate DIR|FILE · demo [USE_CASE] [SCENARIO] · version (or --version)

Settings come from the flags, then ``FLOWLOOM_*`` (and ``REDIS_URL``, ``KAFKA_BOOTSTRAP``);
see ``distributed.settings``. Every command prints JSON with ``--json``. A mistake is one line
on stderr and a documented exit code (``distributed.cli.exitcodes``); ``--debug`` shows the
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version

from . import demo, dlq, events, executions, validate, worker
from .app import provider as _provider
from .errors import UserError, explain
from .exitcodes import (
    EXIT_CANCELLED,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TIMED_OUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from .logs import setup_logging
from .options import (
    OneLineParser,
    common_options,
    connection_options,
    definition_options,
)
from .output import where as _where

__all__ = [
    "EXIT_CANCELLED",
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TIMED_OUT",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "UserError",
    "build_parser",
    "main",
]

_ = (_provider, _where)  # kept importable for older callers: distributed.cli._provider/_where


def main(argv: list[str] | None = None) -> int:
    """Run ``flowloom`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help(sys.stderr)
        return EXIT_USAGE
    args.argv = argv
    default_level = getattr(args, "default_log_level", "WARNING")
    setup_logging(
        getattr(args, "log_level", None) or default_level, getattr(args, "log_format", "text")
    )
    try:
        return int(asyncio.run(args.handler(args)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`| head`): nothing left to say
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115  (no flush error at exit)
        return EXIT_OK
    except Exception as exc:
        return _report(exc, debug=getattr(args, "debug", False))


def _report(error: Exception, *, debug: bool) -> int:
    """One line on stderr (the traceback too with ``--debug``); return the exit code."""
    problem = explain(error)
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    sys.stderr.write(f"flowloom: {problem}\n")
    if problem.code == EXIT_INTERNAL:
        logging.getLogger(__name__).debug("internal error", exc_info=error)
    return problem.code


def build_parser() -> OneLineParser:
    """The argument parser of every command."""
    parser = OneLineParser(
        prog="flowloom",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=_exit_codes_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"flowloom {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common, connection = common_options(), connection_options()
    worker.register(commands, common, connection, definition_options(app_flag=False))
    executions.register(commands, common, connection, definition_options(app_flag=True))
    events.register(commands, common, connection)
    dlq.register(commands, common, connection)
    validate.register(commands, common)
    demo.register(commands, common)
    commands.add_parser("version", help="print the version").set_defaults(handler=_print_version)
    return parser


def _exit_codes_text() -> str:
    lines = [f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES.items()]
    return "exit codes:\n" + "\n".join(lines)


async def _print_version(args: argparse.Namespace) -> int:
    print(f"flowloom {_version()}")
    return EXIT_OK


def _version() -> str:
    try:
        return version("flowloom")
    except PackageNotFoundError:
        return "0+unknown"
