"""Declarative JSON blueprints (pydantic v2 models) compiled to the graph model.

The format is that of the reference use cases, unchanged::

    {"id"?, "name"?, "description"?,
     "nodes": [{"id", "uses", "params"?, "config"?}],
     "edges": [{"source", "target", "action"?, "condition"?}]}

A file without ``id`` takes its file name without ``.json``. ``config`` accepts camelCase
keys and their snake_case aliases; every duration is in MILLISECONDS:

=====================  ============================  ==========================================
camelCase              snake_case                    meaning
=====================  ============================  ==========================================
``maxRetries``         ``max_retries``               total attempts (1 = no retry)
``retryDelay``         ``retry_delay``               fixed delay between attempts (ms)
``timeout``            ``timeout``                   per-attempt timeout (ms)
``fallback``           ``fallback``                  node id that stands in when this one fails
``joinStrategy``       ``join_strategy``             ``all`` (default), ``any`` or ``quorum``
``quorum``             ``quorum``                    k for a ``quorum`` join
``retry``              ``retry``                     full policy (below); wins over the above
=====================  ============================  ==========================================

``retry``: ``maxAttempts``, ``initialInterval`` (ms), ``backoffCoefficient``, ``maxInterval``
(ms), ``jitter`` (fraction), ``nonRetryableErrorTypes`` (class names), or snake_case.

Whatever is wrong with a document -- not a JSON object, a field of the wrong type, NaN or an
infinity, a string that is not Unicode text, nesting deeper than ``MAX_JSON_DEPTH``, an id with
a control character -- is reported in one ``BlueprintValidationError``; nothing else escapes
``load_blueprint``/``parse_blueprint``. Ids follow ``validation.id_problem``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestration.errors import BlueprintValidationError, Problem
from orchestration.graph import Edge, JoinPolicy, Node, RetryPolicy
from orchestration.jsonvalue import JSON, json_problem
from orchestration.validation import (
    CHILD_PARAMETER,
    id_problem,
    reference_cycle,
    reference_cycle_problems,
)

__all__ = [
    "Blueprint",
    "BlueprintEdge",
    "BlueprintNode",
    "NodeConfig",
    "RetryConfig",
    "load_blueprint",
    "load_directory",
]


def _alias(camel: str, snake: str, **constraints: Any) -> Any:
    return Field(default=None, validation_alias=AliasChoices(camel, snake), **constraints)


class RetryConfig(BaseModel):
    """A full retry policy (durations in ms)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_attempts: int | None = _alias("maxAttempts", "max_attempts", ge=1)
    initial_interval: float | None = _alias("initialInterval", "initial_interval", ge=0)
    backoff_coefficient: float | None = _alias("backoffCoefficient", "backoff_coefficient", ge=1)
    max_interval: float | None = _alias("maxInterval", "max_interval", ge=0)
    jitter: float | None = Field(default=None, ge=0, le=1)
    non_retryable_error_types: list[str] | None = _alias(
        "nonRetryableErrorTypes", "non_retryable_error_types"
    )


class NodeConfig(BaseModel):
    """A node's ``config`` (see the module docstring for keys and units)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_retries: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("maxRetries", "max_retries")
    )
    retry_delay: float | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("retryDelay", "retry_delay")
    )
    timeout: float | None = Field(default=None, gt=0)
    fallback: str | None = None
    join_strategy: Literal["all", "any", "quorum"] | None = _alias("joinStrategy", "join_strategy")
    quorum: int | None = None
    retry: RetryConfig | None = None

    def retry_policy(self) -> RetryPolicy:
        """The node's retry policy; the simple keys give a fixed delay."""
        policy = RetryPolicy(
            max_attempts=self.max_retries or 1,
            initial_interval=(self.retry_delay or 0.0) / 1000,
            backoff_coefficient=1.0,
        )
        if self.retry is None:
            return policy
        full = self.retry
        return RetryPolicy(
            max_attempts=full.max_attempts or policy.max_attempts,
            initial_interval=_seconds(full.initial_interval, policy.initial_interval),
            backoff_coefficient=full.backoff_coefficient or 2.0,
            max_interval=_seconds(full.max_interval, 60.0),
            jitter=full.jitter or 0.0,
            non_retryable_error_types=tuple(full.non_retryable_error_types or ()),
        )

    def join_policy(self) -> JoinPolicy:
        """The node's join policy (``quorum`` alone implies a quorum join)."""
        kind = self.join_strategy or ("quorum" if self.quorum is not None else "all")
        return JoinPolicy(kind, self.quorum)


def _seconds(milliseconds: float | None, default: float) -> float:
    return default if milliseconds is None else milliseconds / 1000


class BlueprintNode(BaseModel):
    """``{id, uses, params, config}``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    uses: str = Field(min_length=1)
    params: dict[str, JSON] = Field(default_factory=dict)
    config: NodeConfig = Field(default_factory=NodeConfig)

    @field_validator("params")
    @classmethod
    def _params_are_json(cls, params: dict[str, JSON]) -> dict[str, JSON]:
        found = json_problem(params)
        if found is not None:
            path, message = found
            raise ValueError(f"{path}: {message}" if path else message)
        return params

    def to_node(self) -> Node:
        """This node in the graph model."""
        timeout = self.config.timeout / 1000 if self.config.timeout is not None else None
        return Node(
            id=self.id,
            type=self.uses,
            params=self.params,
            retry=self.config.retry_policy(),
            timeout=timeout,
            fallback=self.config.fallback,
            join=self.config.join_policy(),
        )


class BlueprintEdge(BaseModel):
    """``{source, target, action?, condition?}``."""

    model_config = ConfigDict(extra="forbid")

    source: str
    target: str
    action: str | None = None
    condition: str | None = None

    def to_edge(self) -> Edge:
        """This edge in the graph model."""
        return Edge(self.source, self.target, self.action, self.condition)


class Blueprint(BaseModel):
    """A whole blueprint. ``id`` may be omitted when loading from a file."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    description: str | None = None
    nodes: list[BlueprintNode]
    edges: list[BlueprintEdge] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_an_id(cls, value: str | None) -> str | None:
        problem = None if value is None else id_problem(value)
        if problem is not None:
            raise ValueError(f"blueprint id {problem}")
        return value

    def graph_id(self) -> str:
        """The blueprint id (required by now)."""
        if not self.id:
            raise BlueprintValidationError("?", [Problem("id", "a blueprint needs an id")])
        return self.id

    def to_nodes_and_edges(self) -> tuple[list[Node], list[Edge]]:
        """Nodes and edges of the graph model (not yet validated)."""
        return [n.to_node() for n in self.nodes], [e.to_edge() for e in self.edges]


def _problems(error: ValidationError) -> list[Problem]:
    return [
        Problem(".".join(str(part) for part in item["loc"]) or "blueprint", item["msg"])
        for item in error.errors()
    ]


def _shown_id(data: Mapping[str, Any], default_id: str | None) -> str:
    """The id to name in an error: the document's, if it is a usable string."""
    given = data.get("id")
    if isinstance(given, str) and given and id_problem(given) is None:
        return given
    return default_id or "?"


def parse_blueprint(data: Mapping[str, Any], default_id: str | None = None) -> Blueprint:
    """Validate ``data``; every problem is reported in one ``BlueprintValidationError``.

    ``data`` must be a JSON object as ``json.loads`` gives it: anything else (not a mapping,
    a tuple or a set, NaN, a lone surrogate, deeper than ``MAX_JSON_DEPTH``) is a problem too.
    """
    if not isinstance(data, Mapping):
        found = type(data).__name__
        raise BlueprintValidationError(
            default_id or "?", [Problem("blueprint", f"must be a JSON object, not {found}")]
        )
    graph_id = _shown_id(data, default_id)
    not_json = json_problem(dict(data))
    if not_json is not None:
        path, message = not_json
        raise BlueprintValidationError(graph_id, [Problem(path or "blueprint", message)])
    try:
        model = Blueprint.model_validate(dict(data))
    except ValidationError as exc:
        raise BlueprintValidationError(graph_id, _problems(exc)) from None
    if model.id is None and default_id is not None:
        problem = id_problem(default_id)
        if problem is not None:
            raise BlueprintValidationError("?", [Problem("id", f"blueprint id {problem}")])
        model.id = default_id
    if model.id is not None and model.id in child_blueprints(model):
        raise BlueprintValidationError(model.id, reference_cycle_problems([model.id]))
    return model


def child_blueprints(model: Blueprint) -> set[str]:
    """The blueprints ``model``'s subflow and loop nodes start as child executions."""
    children = (node.params.get(CHILD_PARAMETER.get(node.uses, "")) for node in model.nodes)
    return {child for child in children if isinstance(child, str)}


def _read(path: Path) -> Blueprint:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BlueprintValidationError(path.stem, [Problem(str(path), str(exc))]) from None
    except RecursionError:
        problem = Problem(str(path), "JSON nested too deeply to read")
        raise BlueprintValidationError(path.stem, [problem]) from None
    if not isinstance(data, dict):
        raise BlueprintValidationError(path.stem, [Problem(str(path), "not a JSON object")])
    return parse_blueprint(data, default_id=path.stem)


def load_blueprint(source: Blueprint | Mapping[str, Any] | str | Path) -> Blueprint:
    """A ``Blueprint`` from a model, a mapping or a path to a JSON file; anything else is a
    ``BlueprintValidationError`` too."""
    if isinstance(source, Blueprint):
        return source
    if isinstance(source, str | Path):
        return _read(Path(source))
    return parse_blueprint(source)


def load_directory(directory: str | Path) -> list[Blueprint]:
    """Every ``*.json`` blueprint of ``directory`` (sorted by file name); blueprints starting
    each other in a cycle (``a`` runs ``b`` as a subflow, ``b`` runs ``a``) are refused."""
    models = [_read(path) for path in sorted(Path(directory).glob("*.json"))]
    children = {model.graph_id(): child_blueprints(model) for model in models}
    cycle = reference_cycle(children, lambda graph_id: children.get(graph_id, ()))
    if cycle is not None:
        raise BlueprintValidationError(str(directory), reference_cycle_problems(cycle))
    return models
