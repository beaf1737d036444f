"""The ``flowloom`` command (also ``python -m distributed``).

    flowloom demo [USE_CASE] [SCENARIO]     run an example use case on the embedded default
    flowloom run BLUEPRINTS WORKFLOW_ID     run a blueprint from a folder of blueprint files
    flowloom version

Human output by default, ``--json`` for scripts. The embedded default keeps its data in
``--data`` (LevelDB) and needs no services; ``--store``/``--broker`` URLs point elsewhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from orchestration import Engine, LLMProvider, OfflineProvider, OpenAIProvider
from store.errors import mask_url

from .models import ExecutionSnapshot
from .pool import PoolConfig
from .report import format_snapshot
from .runtime import Runtime

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "main"]

EXIT_OK = 0
EXIT_FAILED = 1  # the execution ended other than completed
EXIT_USAGE = 2

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MAIN_BLUEPRINT = {
    "blog-post": "100",
    "job-application": "200",
    "customer-review": "300",
    "content-moderation": "400",
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"flowloom {_version()}")
        return EXIT_OK
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    local, workflow_id, inputs = _load(args)
    try:
        return asyncio.run(_execute(args, local, workflow_id, inputs))
    except KeyboardInterrupt:
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowloom", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser("demo", help="run an example use case on the embedded default")
    demo.add_argument(
        "use_case", nargs="?", default="job-application", choices=sorted(MAIN_BLUEPRINT)
    )
    demo.add_argument("scenario", nargs="?", help="a file of the use case's scenarios/ (no .json)")
    run = commands.add_parser("run", help="run a workflow from a folder of blueprint files")
    run.add_argument("blueprints", type=Path, help="folder of blueprint JSON files")
    run.add_argument("workflow_id")
    run.add_argument("--inputs", type=Path, help="JSON file with the initial inputs")
    for sub in (demo, run):
        _add_common(sub)
    commands.add_parser("version", help="print the version")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="embedded store directory (default: a temporary one)")
    parser.add_argument("--store", help="store URL, e.g. redis://127.0.0.1:6379/0")
    parser.add_argument("--broker", default="inproc://", help="broker URL, e.g. kafka://host:9092")
    parser.add_argument("--workers", type=int, default=2, help="workers in this process")
    parser.add_argument(
        "--provider",
        choices=["auto", "offline", "openai"],
        default="auto",
        help="LLM provider; auto = openai when OPENAI_API_KEY is set, else the offline rules",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")


def _load(args: argparse.Namespace) -> tuple[Engine, str, dict[str, Any]]:
    """The local engine with the blueprints loaded, the workflow to run and its inputs."""
    if args.command == "demo":
        folder = EXAMPLES / args.use_case
        scenario = folder / "scenarios" / f"{args.scenario}.json"
        blueprints, workflow_id = folder / "blueprints", MAIN_BLUEPRINT[args.use_case]
        inputs_file: Path | None = scenario if args.scenario else folder / "inputs.json"
    else:
        blueprints, workflow_id, inputs_file = args.blueprints, args.workflow_id, args.inputs
    local = Engine(provider=_provider(args.provider))
    local.load_blueprints(blueprints)
    inputs = json.loads(inputs_file.read_text(encoding="utf-8")) if inputs_file else {}
    return local, workflow_id, inputs


async def _execute(
    args: argparse.Namespace, local: Engine, workflow_id: str, inputs: dict[str, Any]
) -> int:
    with tempfile.TemporaryDirectory(prefix="flowloom-") as scratch:
        store = args.store or f"leveldb://{args.data or os.path.join(scratch, 'data')}"
        pool = PoolConfig(worker_count=args.workers)
        async with Runtime.from_urls(
            local, store_url=store, broker_url=args.broker, pool=pool
        ) as rt:
            execution_id = await rt.engine.execute_async(workflow_id, inputs)
            if not args.json:
                print(
                    f"{_where(store, args.broker)} · provider: {local.provider.name}",
                    file=sys.stderr,
                )
            snapshot = await _follow(rt, execution_id, args.timeout, quiet=args.json)
    if args.json:
        print(snapshot.model_dump_json(indent=2))
    else:
        print(format_snapshot(snapshot, local.graph(workflow_id), local.provider.name))
    return EXIT_OK if snapshot.status == "completed" else EXIT_FAILED


async def _follow(
    rt: Runtime, execution_id: str, timeout: float, *, quiet: bool
) -> ExecutionSnapshot:
    """Wait for the final status, printing each step as it finishes (to stderr)."""
    seen: set[str] = set()
    async with asyncio.timeout(timeout):
        while True:
            snapshot = await rt.engine.get_execution_status(execution_id)
            for node, step in snapshot.steps.items():
                if step.terminal and node not in seen:
                    seen.add(node)
                    if not quiet:
                        print(f"  {step.status:<9} {node}", file=sys.stderr)
            if snapshot.final:
                return snapshot
            await asyncio.sleep(0.05)


def _provider(choice: str) -> LLMProvider:
    if choice == "openai" or (choice == "auto" and os.environ.get("OPENAI_API_KEY")):
        return OpenAIProvider()
    return OfflineProvider()


def _where(store: str, broker: str) -> str:
    """Where the run's data lives, for the banner: URLs with every password masked."""
    return f"store {mask_url(store)} · broker {mask_url(broker)}"


def _version() -> str:
    try:
        return version("flowloom")
    except PackageNotFoundError:
        return "0+unknown"
