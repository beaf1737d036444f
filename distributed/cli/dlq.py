"""``flowloom dlq list | show ID | replay ID|--all | purge``: the dead-letter topic.

Workers dead-letter a message that cannot run (undecodable, an unknown execution or step, past
its delivery limit) to ``{topic}.dlq`` with the reason in ``x-dead-letter-reason``. These
commands browse that topic without a consumer group, so listing changes nothing. A dead letter
is named by ``partition:offset``. ``replay`` publishes the task again to the topic it came from
and marks the dead letter handled; ``purge`` marks every listed one handled. The marks live in
the store under ``{key_prefix}dlq/handled/{topic}/{id}`` (the log itself is left to Kafka's
retention); ``list --all`` shows handled ones too.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from mq import DEAD_LETTER_REASON, ORIGINAL_DELIVERY_COUNT, ORIGINAL_TOPIC, dead_letter_topic
from mq.browse import StoredMessage, browse

from ..errors import UndecodableTask
from ..queue import MQTaskQueue, decode_task
from ..runtime import Runtime
from ..settings import Settings
from .errors import UserError
from .exitcodes import EXIT_OK
from .lifecycle import client
from .options import settings_from
from .output import emit_json, human, short

__all__ = ["register"]


def register(
    commands: Any, common: argparse.ArgumentParser, connection: argparse.ArgumentParser
) -> None:
    """Add ``dlq`` and its subcommands to ``commands`` (argparse subparsers)."""
    dlq = commands.add_parser("dlq", help="list, show, replay or purge dead letters")
    actions = dlq.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common, connection], help="list dead letters")
    listing.add_argument("--all", action="store_true", help="also those replayed or purged")
    show = actions.add_parser("show", parents=[common, connection], help="one dead letter")
    show.add_argument("id", metavar="ID", help="partition:offset, as dlq list shows it")
    replay = actions.add_parser(
        "replay", parents=[common, connection], help="publish a dead letter's task again"
    )
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("id", nargs="?", metavar="ID")
    target.add_argument("--all", action="store_true", help="every unhandled dead letter")
    actions.add_parser("purge", parents=[common, connection], help="mark every dead letter handled")
    dlq.set_defaults(handler=dlq_command)


async def dlq_command(args: argparse.Namespace) -> int:
    """Run the ``dlq`` action ``args.dlq_action``."""
    settings = settings_from(args)
    if settings.embedded:
        raise UserError(
            "dlq needs the cluster broker (--broker kafka://host:9092): the "
            "in-process broker keeps dead letters only in the process that made them"
        )
    async with client(settings) as runtime:
        letters = await _letters(runtime, settings)
        action = {"list": _list, "show": _show, "replay": _replay, "purge": _purge}
        return await action[args.dlq_action](runtime, settings, letters, args)


async def _letters(runtime: Runtime, settings: Settings) -> list[tuple[StoredMessage, str | None]]:
    """Every dead letter of the namespace's topic, with how it was handled (or None)."""
    topic = dead_letter_topic(settings.topic or "")
    messages = await browse(runtime.broker, topic)
    marks = await runtime.store.get_many([_mark_key(settings, m) for m in messages])
    return [
        (m, json.loads(raw)["action"] if raw else None)
        for m, raw in zip(messages, marks, strict=True)
    ]


def _mark_key(settings: Settings, message: StoredMessage) -> str:
    return f"{settings.key_prefix}dlq/handled/{message.topic}/{message.id}"


async def _mark(runtime: Runtime, settings: Settings, message: StoredMessage, action: str) -> None:
    value = json.dumps({"action": action, "at": time.time()}).encode()
    await runtime.store.put(_mark_key(settings, message), value)


def _describe(message: StoredMessage, handled: str | None) -> dict[str, Any]:
    try:
        task: dict[str, Any] | None = decode_task(message.payload).as_dict()
    except UndecodableTask:
        task = None
    headers = message.headers
    return {
        "id": message.id,
        "reason": headers.get(DEAD_LETTER_REASON, ""),
        "original_topic": headers.get(ORIGINAL_TOPIC),
        "deliveries": headers.get(ORIGINAL_DELIVERY_COUNT),
        "dead_lettered_at": message.timestamp,
        "task": task,
        "handled": handled,
    }


async def _list(runtime: Runtime, settings: Settings, letters: Any, args: Any) -> int:
    shown = [_describe(m, h) for m, h in letters if args.all or h is None]
    if args.json:
        emit_json(shown)
        return EXIT_OK
    if not shown:
        human(f"no dead letters in {dead_letter_topic(settings.topic or '')}")
    for item in shown:
        task = item["task"]
        what = f"{task['execution_id']}/{task['node_id']}" if task else "(not a task)"
        handled = f" [{item['handled']}]" if item["handled"] else ""
        human(f"{item['id']:<8} {what:<48} {short(item['reason'], 60)}{handled}")
    return EXIT_OK


def _find(
    letters: list[tuple[StoredMessage, str | None]], wanted: str
) -> tuple[StoredMessage, str | None]:
    for message, handled in letters:
        if message.id == wanted:
            return message, handled
    known = ", ".join(m.id for m, _ in letters[-10:]) or "none"
    raise UserError(f"no dead letter {wanted!r} (ids are partition:offset; latest: {known})")


async def _show(runtime: Runtime, settings: Settings, letters: Any, args: Any) -> int:
    message, handled = _find(letters, args.id)
    item = _describe(message, handled)
    if args.json:
        emit_json({**item, "payload": message.payload.decode("utf-8", "replace")})
        return EXIT_OK
    for key, value in item.items():
        if key != "task":
            human(f"{key:<17}{value}")
    human(f"{'task':<17}{json.dumps(item['task']) if item['task'] else '(not a task)'}")
    human(f"{'payload':<17}{short(message.payload.decode('utf-8', 'replace'), 200)}")
    return EXIT_OK


async def _replay(runtime: Runtime, settings: Settings, letters: Any, args: Any) -> int:
    chosen = [(m, h) for m, h in letters if h is None] if args.all else [_find(letters, args.id)]
    replayed = []
    for message, _ in chosen:
        try:
            task = decode_task(message.payload)
        except UndecodableTask:
            if args.all:
                continue
            raise UserError(
                f"dead letter {message.id} is not a task and cannot be replayed; "
                "flowloom dlq purge marks it handled"
            ) from None
        topic = message.headers.get(ORIGINAL_TOPIC) or settings.topic or ""
        await MQTaskQueue(runtime.broker, topic=topic).enqueue(task)
        await _mark(runtime, settings, message, "replayed")
        replayed.append(
            {
                "id": message.id,
                "execution_id": task.execution_id,
                "step_id": task.node_id,
                "topic": topic,
            }
        )
    if args.json:
        emit_json({"replayed": replayed})
    for item in [] if args.json else replayed:
        human(f"replayed {item['id']}: {item['execution_id']}/{item['step_id']} to {item['topic']}")
    return EXIT_OK


async def _purge(runtime: Runtime, settings: Settings, letters: Any, args: Any) -> int:
    purged = [m for m, h in letters if h is None]
    for message in purged:
        await _mark(runtime, settings, message, "purged")
    if args.json:
        emit_json({"purged": [m.id for m in purged]})
    else:
        human(f"purged {len(purged)} dead letter(s)")
    return EXIT_OK
