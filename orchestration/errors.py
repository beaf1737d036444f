"""Errors raised by the orchestration layer.

The tree::

    OrchestrationError
    ├── BlueprintValidationError      every problem of a graph definition, with locations
    ├── UnknownWorkflow               no graph registered under that id (also a LookupError)
    ├── UnknownNodeType               no node type registered under that name (also a LookupError)
    ├── UnroutableAction              an action matches no edge and there is no default route
    ├── ConditionError                an edge condition outside the grammar
    ├── StepTimeout                   one attempt of a step exceeded the node's timeout
    ├── ProviderError                 the LLM call failed (after the client's own retries)
    ├── SubflowFailed                 a child execution did not complete
    ├── SignalRefused                 a signal no open wait can take (unknown, or already used)
    ├── InvalidJSONValue              a value (inputs, a step's result) that is not JSON; also a
    │                                 TypeError and a ValueError, as ``json.dumps`` would raise
    └── NonRetryableError             raise it from a step to fail without retrying
        ├── NotJSONSerializable       a step returned an output or state that is not JSON
        └── WaitTimedOut              a wait without an ``onTimeout`` action timed out

Retry intent lives on the error: ``NonRetryableError`` (and anything derived from it) is never
retried, whatever the retry policy says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BlueprintValidationError",
    "ConditionError",
    "InvalidJSONValue",
    "NonRetryableError",
    "NotJSONSerializable",
    "OrchestrationError",
    "Problem",
    "ProviderError",
    "SignalRefused",
    "StepTimeout",
    "SubflowFailed",
    "UnknownNodeType",
    "UnknownWorkflow",
    "UnroutableAction",
    "WaitTimedOut",
]


class OrchestrationError(Exception):
    """Base class of every error raised by ``orchestration``."""


def _printable(text: str) -> str:
    """``text`` with any lone surrogate written as an escape (``\\ud800``), so that it can be
    encoded -- printed, logged, sent -- as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass(frozen=True)
class Problem:
    """One problem found in a graph definition, located by a readable path (both texts are
    printable: a lone surrogate from the definition is written as an escape)."""

    location: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "location", _printable(str(self.location)))
        object.__setattr__(self, "message", _printable(str(self.message)))

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class BlueprintValidationError(OrchestrationError):
    """A graph definition has one or more problems; ``problems`` lists all of them."""

    def __init__(self, graph_id: str, problems: Sequence[Problem]) -> None:
        self.graph_id = graph_id
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"workflow {graph_id!r} has {len(self.problems)} problem(s):\n{lines}")


class UnknownWorkflow(OrchestrationError, LookupError):
    """No workflow or blueprint is registered under ``workflow_id``."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"unknown workflow {workflow_id!r}")


class UnknownNodeType(OrchestrationError, LookupError):
    """No node type is registered under ``name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown node type {name!r}")


class UnroutableAction(OrchestrationError):
    """Node ``node_id`` returned ``action``, which matches no edge, and it has no default route."""

    def __init__(self, node_id: str, action: str | None) -> None:
        self.node_id = node_id
        self.action = action
        super().__init__(
            f"node {node_id!r} returned action {action!r}, which matches none of its edges, "
            "and it has no default route"
        )


class ConditionError(OrchestrationError):
    """An edge condition is outside the expression grammar (or cannot be evaluated)."""


class InvalidJSONValue(OrchestrationError, TypeError, ValueError):
    """A value is not JSON as both engines keep it (``jsonvalue.to_json_value``): a type JSON
    has no form for, a non-string key, NaN or an infinity, a string that is not Unicode text (a
    lone surrogate), an integer too long to write, or nesting deeper than ``MAX_JSON_DEPTH``.

    It is a ``TypeError`` and a ``ValueError`` too, so code that caught what ``json.dumps``
    raises still catches it."""


class StepTimeout(OrchestrationError):
    """One attempt of step ``node_id`` took longer than ``timeout`` seconds."""

    def __init__(self, node_id: str, timeout: float) -> None:
        self.node_id = node_id
        self.timeout = timeout
        super().__init__(f"step {node_id!r} timed out after {timeout:g}s")


class ProviderError(OrchestrationError):
    """An LLM provider failed to produce a completion."""


class SubflowFailed(OrchestrationError):
    """The child execution of subflow node ``node_id`` ended with ``status``."""

    def __init__(self, node_id: str, status: str, error: str | None) -> None:
        self.node_id = node_id
        self.status = status
        self.error = error
        super().__init__(f"subflow {node_id!r} ended {status}: {error}")


class NonRetryableError(OrchestrationError):
    """Raise from a step to fail it at once: it is never retried (Temporal's ``non_retryable``)."""


class NotJSONSerializable(NonRetryableError):
    """Step ``node_id`` produced a value (``what``) that cannot be encoded as JSON."""

    def __init__(self, node_id: str, what: str, detail: str) -> None:
        self.node_id = node_id
        self.what = what
        super().__init__(
            f"step {node_id!r} returned a {what} that is not JSON-serialisable: {detail}"
        )


class SignalRefused(OrchestrationError):
    """A signal for ``event`` of execution ``execution_id`` that no wait can take."""

    def __init__(self, execution_id: str, event: str, reason: str) -> None:
        self.execution_id = execution_id
        self.event = event
        self.reason = reason
        super().__init__(f"signal {event!r} for execution {execution_id!r} refused: {reason}")


class WaitTimedOut(NonRetryableError):
    """Wait node ``node_id`` got no ``event`` signal within ``timeout`` seconds."""

    def __init__(self, node_id: str, event: str, timeout: float) -> None:
        self.node_id = node_id
        self.event = event
        self.timeout = timeout
        super().__init__(f"wait {node_id!r} got no {event!r} signal within {timeout:g}s")
