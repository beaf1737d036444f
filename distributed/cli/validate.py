"""``flowloom validate DIR|FILE``: every problem of every blueprint, each with its location
(``file: node/edge path: message``); exit 0 when there is none, 1 otherwise."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestration import Blueprint, BlueprintValidationError, Engine, graph_problems
from orchestration.blueprint import load_blueprint

from ..settings import Settings
from .app import load_definitions
from .errors import UserError
from .exitcodes import EXIT_FAILED, EXIT_OK
from .output import emit_json, human

__all__ = ["Finding", "register", "validate_path"]


@dataclass(frozen=True)
class Finding:
    """One problem: the file, where in it, and what is wrong."""

    file: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.message}"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``validate`` to ``commands`` (argparse subparsers)."""
    validate = commands.add_parser(
        "validate", parents=[common], help="check blueprints: every problem with its location"
    )
    validate.add_argument("path", metavar="DIR|FILE")
    validate.add_argument(
        "--app",
        metavar="MODULE:OBJECT",
        help="an app whose node types and workflows the blueprints use",
    )
    validate.set_defaults(handler=validate_command)


async def validate_command(args: argparse.Namespace) -> int:
    """Print every problem (or that there is none)."""
    engine = load_definitions(Settings(app=args.app)) if args.app else Engine()
    findings, checked = validate_path(Path(args.path), engine)
    if args.json:
        emit_json(
            {"ok": not findings, "blueprints": checked, "problems": [asdict(f) for f in findings]}
        )
    else:
        for finding in findings:
            human(str(finding))
        count = f"{len(checked)} blueprint{'s' * (len(checked) != 1)}"
        human(f"{count}: {len(findings)} problem(s)" if findings else f"{count}: no problems")
    return EXIT_FAILED if findings else EXIT_OK


def validate_path(path: Path, engine: Engine) -> tuple[list[Finding], list[str]]:
    """Problems of the blueprint file ``path`` or of every ``*.json`` in folder ``path``;
    and the ids checked. Subflows may name any blueprint of the folder or of ``engine``."""
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist")
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise UserError(f"folder {str(path)!r} holds no *.json blueprint")
    findings: list[Finding] = []
    parsed: dict[str, tuple[Path, Blueprint]] = {}
    for file in files:
        try:
            blueprint = load_blueprint(file)
        except BlueprintValidationError as error:
            findings += [_finding(file, p.location, p.message) for p in error.problems]
            continue
        parsed[blueprint.graph_id()] = (file, blueprint)
    known = {*engine.workflows(), *parsed}
    for file, blueprint in parsed.values():
        nodes, edges = blueprint.to_nodes_and_edges()
        found = graph_problems(nodes, edges, node_types=engine.node_types, graphs=known)
        findings += [_finding(file, p.location, p.message) for p in found]
    return findings, sorted(parsed)


def _finding(file: Path, location: str, message: str) -> Finding:
    location = "(file)" if location == str(file) else location
    return Finding(str(file), location, message)
