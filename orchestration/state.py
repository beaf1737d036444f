"""Execution state: how results land in it, how templates read it, what a run returns.

This module is the one place the state semantics are defined; both engines use it.

* **State** starts as the execution's inputs (a JSON object). When a node completes, its
  ``state_updates`` are merged into the state (``apply_updates``), key by key. Nodes that
  declare ``params["outputKey"]`` (``output`` nodes, code steps with ``output_key``) put
  their output in ``state_updates`` under that key themselves.
* **Outputs**: the output of every completed node is kept apart, by node id.
* **What a step sees** (``upstream``, a ``View``): the inputs with the updates of its
  ancestors (the steps it is downstream of along the edges, ``Graph.ancestors``) applied in
  commit order, and their outputs; its outgoing edges' conditions read that state with its own
  updates. Never a parallel branch: what a branch writes reaches the steps downstream of it
  (a join sees every branch), so a step sees the same whether siblings finished before it
  started or not, in memory and distributed alike.
* **Conflicts**: when parallel branches write the same key, the later commit wins (locally:
  the branch that finishes later; distributed: the later committed step record).
* **Template inputs** (``params["inputs"]``: ``{name: source}`` where source is a name or a
  list of names) resolve each name first as a completed node's output, then as a state key;
  for a list, the first name present (and not ``null``) wins; nothing present renders ``""``.
* **Final outputs** (``final_outputs``): the outputs of the completed terminal nodes, each
  keyed by its ``outputKey`` when it has one (``output`` nodes default to ``final_output``),
  by its node id otherwise. ``state`` is accepted for future rules and not read today.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, NamedTuple

from orchestration.graph import Graph
from orchestration.jsonvalue import JSON
from orchestration.routing import NodeResult

__all__ = [
    "DEFAULT_OUTPUT_KEY",
    "View",
    "apply_updates",
    "final_outputs",
    "output_key",
    "render_template",
    "render_value",
    "resolve_inputs",
    "resolve_name",
    "upstream",
]

DEFAULT_OUTPUT_KEY = "final_output"
"""State key an ``output`` node writes when it declares no ``outputKey``."""

_MISSING: Any = object()
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\s*\}\}")


def apply_updates(state: Mapping[str, JSON], node_id: str, result: NodeResult) -> dict[str, JSON]:
    """Return the state after node ``node_id`` completed with ``result`` (a new dict)."""
    new_state = dict(state)
    new_state.update(result.state_updates)
    return new_state


class View(NamedTuple):
    """What a step sees: the state and the outputs by node id (``upstream``)."""

    state: dict[str, JSON]
    outputs: dict[str, JSON]


def upstream(
    inputs: Mapping[str, JSON],
    commits: Iterable[tuple[str, NodeResult]],
    ancestors: Collection[str],
) -> View:
    """The view of a step whose ancestors are ``ancestors``: ``inputs`` with those of
    ``commits`` (node id and result, in commit order) applied, and their outputs."""
    state: dict[str, JSON] = dict(inputs)
    outputs: dict[str, JSON] = {}
    for node_id, result in commits:
        if node_id in ancestors:
            state = apply_updates(state, node_id, result)
            outputs[node_id] = result.output
    return View(state, outputs)


def output_key(params: Mapping[str, JSON]) -> str | None:
    """The state key a node writes its output to, when it declares one."""
    key = params.get("outputKey")
    return key if isinstance(key, str) and key else None


def final_outputs(
    graph: Graph,
    outputs: Mapping[str, JSON],
    state: Mapping[str, JSON],
    completed: Collection[str],
) -> dict[str, JSON]:
    """What an execution returns: completed terminal nodes' outputs, by outputKey or node id."""
    result: dict[str, JSON] = {}
    for node_id in graph.terminal_nodes():
        if node_id not in completed:
            continue
        node = graph.nodes[node_id]
        key = output_key(node.params) or (DEFAULT_OUTPUT_KEY if node.type == "output" else node_id)
        result[key] = outputs.get(node_id)
    return result


def resolve_name(name: str, state: Mapping[str, JSON], outputs: Mapping[str, JSON]) -> JSON:
    """A completed node's output named ``name``, else the state key, else a missing marker."""
    head, _, rest = name.partition(".")
    value = outputs.get(head, _MISSING)
    if value is _MISSING or value is None:
        value = state.get(head, _MISSING)
    if value is _MISSING or not rest:
        return value
    return _dig(value, rest.split("."))


def _dig(value: JSON, parts: list[str]) -> JSON:
    for part in parts:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _first_present(sources: JSON, state: Mapping[str, JSON], outputs: Mapping[str, JSON]) -> JSON:
    candidates = sources if isinstance(sources, list) else [sources]
    for candidate in candidates:
        if not isinstance(candidate, str):
            continue
        value = resolve_name(candidate, state, outputs)
        if value is not _MISSING and value is not None:
            return value
    return None


def resolve_inputs(
    params: Mapping[str, JSON], state: Mapping[str, JSON], outputs: Mapping[str, JSON]
) -> dict[str, JSON]:
    """Resolve ``params["inputs"]`` to ``{name: value}`` (``None`` when nothing is present)."""
    mapping = params.get("inputs") or {}
    if not isinstance(mapping, Mapping):
        return {}
    return {name: _first_present(src, state, outputs) for name, src in mapping.items()}


def render_value(value: JSON) -> str:
    """Text of a value inside a template: strings as is, ``null`` empty, others as JSON."""
    if value is None or value is _MISSING:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_template(
    template: str,
    params: Mapping[str, JSON],
    state: Mapping[str, JSON],
    outputs: Mapping[str, JSON],
) -> str:
    """Replace each ``{{name}}`` (or ``{{name.path}}``): a declared input, else a node/state."""
    inputs = resolve_inputs(params, state, outputs)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        head, _, rest = name.partition(".")
        if head in inputs:
            value = inputs[head]
            value = _dig(value, rest.split(".")) if rest and value is not None else value
        else:
            value = resolve_name(name, state, outputs)
        return render_value(value)

    return _PLACEHOLDER.sub(substitute, template)
