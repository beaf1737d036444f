"""``flowloom demo [USE_CASE] [SCENARIO]``: a reference use case on the embedded default.

No service and no key: LevelDB in ``--data`` (default ``./flowloom-data``, named in the
banner, kept between runs) and the in-process broker; the offline provider unless
``OPENAI_API_KEY`` is set. The four use cases ship inside the package (``usecases/``), so
the demo works from an installed wheel. The environment's store and broker are ignored:
``--store``/``--broker`` choose others.
"""

from __future__ import annotations

import argparse
import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

from orchestration import Engine

from ..settings import Settings
from .app import provider
from .errors import UserError
from .executions import submit_and_wait
from .options import non_negative_int, positive_float

__all__ = ["USE_CASES", "register", "use_case_folder"]

USE_CASES = {
    "blog-post": "100",
    "job-application": "200",
    "customer-review": "300",
    "content-moderation": "400",
}
"""Each use case and the id of its main blueprint."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``demo`` to ``commands`` (argparse subparsers)."""
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="run an example use case",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("use_case", nargs="?", default="job-application", choices=sorted(USE_CASES))
    demo.add_argument("scenario", nargs="?", help="a scenario of the use case (default: inputs)")
    demo.add_argument(
        "--data",
        default="./flowloom-data",
        metavar="DIR",
        help="LevelDB directory (default ./flowloom-data)",
    )
    demo.add_argument("--store", metavar="URL", help="another store (instead of --data)")
    demo.add_argument("--broker", default="inproc://", metavar="URL")
    demo.add_argument("--workers", type=non_negative_int, default=2, help="workers here")
    demo.add_argument("--provider", choices=["auto", "offline", "openai"], default="auto")
    demo.add_argument("--timeout", type=positive_float, default=300.0, metavar="S")
    demo.set_defaults(handler=demo_command, detach=False, follow=False)


def use_case_folder(name: str) -> Traversable:
    """The packaged folder of use case ``name`` (blueprints/, inputs.json, scenarios/)."""
    return files("distributed.cli") / "usecases" / name


async def demo_command(args: argparse.Namespace) -> int:
    """Load the use case, run its main blueprint, print the result."""
    folder = use_case_folder(args.use_case)
    engine = Engine(provider=provider(args.provider))
    _load(engine, folder / "blueprints")
    inputs = _inputs(folder, args.use_case, args.scenario)
    settings = Settings(
        store_url=args.store or f"leveldb://{args.data}",
        broker_url=args.broker,
        workers=max(args.workers, 1),
    )
    args.workflow = USE_CASES[args.use_case]
    return await submit_and_wait(settings, engine, args, inputs, workers=args.workers > 0)


def _load(engine: Engine, blueprints: Traversable) -> None:
    documents = {
        entry.name.removesuffix(".json"): json.loads(entry.read_text(encoding="utf-8"))
        for entry in sorted(blueprints.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".json")
    }
    pending = dict(documents)
    while pending:  # subflows must be registered before the blueprints naming them
        ready = [k for k, doc in pending.items() if _children(doc) <= set(engine.workflows())]
        for key in ready or list(pending):
            engine.register_blueprint({"id": key, **pending.pop(key)})


def _children(document: dict[str, Any]) -> set[str]:
    nodes = document.get("nodes", [])
    return {n["params"]["blueprintId"] for n in nodes if n.get("uses") == "subflow"}


def _inputs(folder: Traversable, use_case: str, scenario: str | None) -> dict[str, Any]:
    if scenario is None:
        return dict(json.loads((folder / "inputs.json").read_text(encoding="utf-8")))
    scenarios = folder / "scenarios"
    names = (
        sorted(e.name.removesuffix(".json") for e in scenarios.iterdir())
        if scenarios.is_dir()
        else []
    )
    if scenario not in names:
        raise UserError(
            f"use case {use_case!r} has no scenario {scenario!r}; "
            f"scenarios: {', '.join(names) or 'none'}"
        )
    return dict(json.loads((scenarios / f"{scenario}.json").read_text(encoding="utf-8")))
