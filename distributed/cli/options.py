"""Options shared by the commands, the parser that reports a mistake in one line, and the
``Settings`` a command runs with (flags, then ``FLOWLOOM_*`` and the environment)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from ..settings import Settings
from .exitcodes import EXIT_USAGE

__all__ = [
    "OneLineParser",
    "common_options",
    "connection_options",
    "definition_options",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "settings_from",
]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _number(kind: Callable[[str], Any], rule: str, ok: Callable[[Any], bool]) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return parse


positive_int = _number(int, "at least 1", lambda v: v >= 1)
non_negative_int = _number(int, "0 or more", lambda v: v >= 0)
positive_float = _number(float, "more than 0 seconds", lambda v: v > 0)


def common_options() -> argparse.ArgumentParser:
    """``--json``, ``--debug`` and logging: on every command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("output")
    group.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    group.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    group.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="log level (default: INFO for worker, WARNING otherwise)",
    )
    group.add_argument(
        "--log-format", default="text", choices=["text", "json"], help="log line format"
    )
    return parent


def connection_options() -> argparse.ArgumentParser:
    """Where the executions live: store, broker, namespace (defaults from the environment)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection (default: FLOWLOOM_* environment)")
    group.add_argument(
        "--store", metavar="URL", help="store URL: leveldb://DIR, redis://host:6379/0, memory://"
    )
    group.add_argument(
        "--data", metavar="DIR", help="shorthand for --store leveldb://DIR (embedded)"
    )
    group.add_argument("--broker", metavar="URL", help="broker URL: inproc://, kafka://host:9092")
    group.add_argument(
        "--namespace", help="isolates an application: key prefix, topic and consumer group"
    )
    return parent


def definition_options(*, app_flag: bool) -> argparse.ArgumentParser:
    """Where the workflow definitions come from (``--app`` unless APP is positional)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("workflow definitions (default: FLOWLOOM_APP/_BLUEPRINTS)")
    if app_flag:
        group.add_argument(
            "--app", metavar="MODULE:OBJECT", help="an Engine, Workflow(s) or a factory of them"
        )
    group.add_argument("--blueprints", metavar="DIR", help="a folder of JSON blueprints")
    group.add_argument(
        "--provider",
        choices=["auto", "offline", "openai"],
        default="auto",
        help="LLM provider for --blueprints: auto = openai when OPENAI_API_KEY is set",
    )
    return parent


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """The settings of this command: its flags over the environment (``Settings.from_env``)."""
    store = getattr(args, "store", None)
    data = getattr(args, "data", None)
    if data is not None:
        store = store or f"leveldb://{data}"
    flags = {
        "store_url": store,
        "broker_url": getattr(args, "broker", None),
        "namespace": getattr(args, "namespace", None),
        "app": getattr(args, "app", None),
        "blueprints": getattr(args, "blueprints", None),
        **extra,
    }
    return Settings.from_env(**flags)
