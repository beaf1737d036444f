"""Workflow definitions for a command: ``APP`` (``module:object``) and/or ``--blueprints DIR``;
the LLM provider; a run's inputs (``--input JSON|@file``) and the inputs a workflow needs.

``APP`` names, like ``dramatiq mod:broker``, an ``Engine`` holding workflows, a ``Workflow``,
a list of them, or a function (no arguments) returning any of these. The current directory is
importable, as it is for ``python -m``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestration import (
    Engine,
    Graph,
    LLMProvider,
    OfflineProvider,
    OpenAIProvider,
    UnknownWorkflow,
    Workflow,
)
from orchestration.state import output_key

from ..settings import Settings
from .errors import UserError, one_line

__all__ = [
    "check_inputs",
    "load_definitions",
    "missing_inputs",
    "parse_inputs",
    "parse_payload",
    "provider",
    "require_workflow",
]

_PLACEHOLDER_NAMES = ("promptTemplate",)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\s*\}\}")  # as in state


def provider(choice: str) -> LLMProvider:
    """The LLM provider: ``openai`` when asked (or ``auto`` with a key), else offline."""
    if choice == "openai" or (choice == "auto" and os.environ.get("OPENAI_API_KEY")):
        return OpenAIProvider()
    return OfflineProvider()


def load_definitions(settings: Settings, provider_choice: str = "auto") -> Engine:
    """The local engine with the workflows of ``settings.app`` and ``settings.blueprints``."""
    engine = _load_app(settings.app, provider_choice) if settings.app else None
    if engine is None:
        engine = Engine(provider=provider(provider_choice))
    if settings.blueprints:
        _load_blueprints(engine, Path(settings.blueprints))
    return engine


def require_workflow(engine: Engine, workflow_id: str) -> Graph:
    """The graph of ``workflow_id``, or a usage error listing the known ids."""
    try:
        return engine.graph(workflow_id)
    except UnknownWorkflow:
        known = ", ".join(sorted(engine.workflows())) or "none"
        hint = "" if engine.workflows() else " (give --app MODULE:OBJECT or --blueprints DIR)"
        raise UserError(
            f"unknown workflow {workflow_id!r}; known workflows: {known}{hint}"
        ) from None


def _load_app(app: str, provider_choice: str) -> Engine:
    module_name, _, attribute = app.partition(":")
    target = _attribute(_import(module_name, app), attribute, app)
    if callable(target) and not isinstance(target, Engine | Workflow):
        target = target()
    if isinstance(target, Engine):
        return target
    engine = Engine(provider=provider(provider_choice))
    for workflow in _workflows(target, app):
        engine.register_workflow(workflow)
    return engine


def _import(module_name: str, app: str) -> Any:
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UserError(f"APP {app!r}: no module named {module_name!r}") from None
        raise UserError(f"APP {app!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        detail = one_line(f"{type(exc).__name__}: {exc}")
        raise UserError(f"APP {app!r}: importing {module_name!r} failed: {detail}") from exc


def _attribute(module: Any, path: str, app: str) -> Any:
    target = module
    for part in path.split("."):
        if not hasattr(target, part):
            raise UserError(f"APP {app!r}: {module.__name__!r} has no attribute {path!r}")
        target = getattr(target, part)
    return target


def _workflows(target: Any, app: str) -> list[Workflow]:
    items = [target] if isinstance(target, Workflow) else target
    if isinstance(items, Iterable) and all(isinstance(w, Workflow) for w in items):
        return list(items)
    raise UserError(
        f"APP {app!r} is a {type(target).__name__}; it must be an Engine, a Workflow, "
        "a list of Workflows, or a function returning one of them"
    )


def _load_blueprints(engine: Engine, folder: Path) -> None:
    if not folder.exists():
        raise UserError(f"blueprints folder {str(folder)!r} does not exist")
    if folder.is_file():
        engine.register_blueprint(folder)
        return
    if not any(folder.glob("*.json")):
        raise UserError(f"blueprints folder {str(folder)!r} holds no *.json blueprint")
    engine.load_blueprints(folder)


# -- inputs ------------------------------------------------------------------------------------


def parse_inputs(text: str | None) -> dict[str, Any]:
    """``--input``: a JSON object, ``@file`` holding one, or ``@-`` for standard input."""
    if text is None:
        return {}
    source = "--input"
    if text.startswith("@"):
        source, text = text[1:], _read(text[1:])
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        kind = {"list": "a list", "str": "a string"}.get(type(value).__name__, "a scalar")
        raise UserError(f'{source} must be a JSON object like {{"topic": "..."}}, not {kind}')
    return value


def parse_payload(text: str | None) -> Any:
    """``--payload``: any JSON value, or ``@file`` holding one (absent: null)."""
    if text is None:
        return None
    source = "--payload"
    if text.startswith("@"):
        source, text = text[1:], _read(text[1:])
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UserError(f"{source} is not valid JSON: {exc}") from None


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"input file {path!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read input file {path!r}: {exc}") from None


def missing_inputs(engine: Engine, graph: Graph, inputs: Mapping[str, Any]) -> list[str]:
    """Names the workflow's templates read from the inputs that ``inputs`` does not give.

    A template name is satisfied by a node of the graph (its output), a state key some node
    writes (``outputKey``, a subflow's ``outputs``), or an input; for a list of candidates,
    by any of them. Code steps read the state through functions, so they need nothing here.
    """
    produced = set(graph.nodes) | _written_keys(graph) | set(inputs)
    missing: list[str] = []
    for node in graph.nodes.values():
        for candidates in _template_sources(node.params):
            if not any(name.partition(".")[0] in produced for name in candidates):
                missing += [c for c in candidates if c not in missing]
    return missing


def check_inputs(
    engine: Engine, graph: Graph, inputs: Mapping[str, Any], *, allow_missing: bool
) -> None:
    """Refuse to start a run whose templates would render missing inputs as empty text."""
    missing = missing_inputs(engine, graph, inputs)
    if missing and not allow_missing:
        names = ", ".join(missing)
        example = json.dumps(dict.fromkeys(missing[:2], "..."))
        raise UserError(
            f"workflow {graph.id!r} needs inputs that were not given: {names} "
            f"(pass --input '{example}', or --allow-missing-inputs to render them empty)"
        )


def _written_keys(graph: Graph) -> set[str]:
    keys: set[str] = set()
    for node in graph.nodes.values():
        key = output_key(node.params)
        if key:
            keys.add(key)
        if node.type == "output" and not key:
            keys.add("final_output")
        outputs = node.params.get("outputs")
        if isinstance(outputs, Mapping):
            keys.update(str(k) for k in outputs)
    return keys


def _template_sources(params: Mapping[str, Any]) -> list[list[str]]:
    """Every name a node's templates read: declared ``inputs`` and bare ``{{name}}``s."""
    declared = params.get("inputs")
    mapping = declared if isinstance(declared, Mapping) else {}
    sources = [
        [c for c in (source if isinstance(source, list) else [source]) if isinstance(c, str)]
        for source in mapping.values()
    ]
    for name in _PLACEHOLDER_NAMES:
        template = params.get(name)
        if isinstance(template, str):
            bare = (m.group(1) for m in _PLACEHOLDER.finditer(template))
            sources += [[n] for n in bare if n.partition(".")[0] not in mapping]
    return [s for s in sources if s]
