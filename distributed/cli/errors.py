"""What the CLI tells a user when something goes wrong: one line and an exit code.

``UserError`` is raised by the commands themselves; ``explain`` turns the library's typed
errors (bad settings, unknown ids, unreachable services, malformed blueprints) into the same
one-line form. Anything else is a bug, shown as one line too unless ``--debug`` asks for the
traceback.
"""

from __future__ import annotations

from metrics import MetricsError
from mq import BrokerError, BrokerUnavailable, InvalidBrokerURL
from orchestration import BlueprintValidationError, ProviderError, SignalRefused, UnknownWorkflow
from orchestration.errors import InvalidJSONValue
from store import InvalidStoreURL, StoreError, StoreLocked, StoreUnavailable

from ..errors import (
    ExecutionExists,
    ExecutionFinal,
    ExecutionNotFound,
    InvalidExecutionId,
    InvalidSettings,
    LimitExceeded,
    NotRecoverable,
    WaitTimeout,
)
from .exitcodes import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_TIMED_OUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)

__all__ = ["UserError", "explain", "one_line"]

_BY_TYPE: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidSettings, EXIT_USAGE),
    (InvalidStoreURL, EXIT_USAGE),
    (InvalidBrokerURL, EXIT_USAGE),
    (ExecutionNotFound, EXIT_USAGE),
    (InvalidExecutionId, EXIT_USAGE),  # a NUL, a control character, a '/', too long
    (LimitExceeded, EXIT_USAGE),  # inputs over max_inputs_bytes
    (InvalidJSONValue, EXIT_USAGE),  # --input/--payload with NaN, or nested too deep
    (ExecutionExists, EXIT_USAGE),
    (UnknownWorkflow, EXIT_USAGE),
    (ProviderError, EXIT_USAGE),
    (MetricsError, EXIT_USAGE),  # a port in use, an address not of this machine
    (ExecutionFinal, EXIT_FAILED),
    (NotRecoverable, EXIT_FAILED),
    (SignalRefused, EXIT_FAILED),
    (WaitTimeout, EXIT_TIMED_OUT),
    (StoreLocked, EXIT_UNAVAILABLE),
    (StoreUnavailable, EXIT_UNAVAILABLE),
    (BrokerUnavailable, EXIT_UNAVAILABLE),
    (StoreError, EXIT_UNAVAILABLE),
    (BrokerError, EXIT_UNAVAILABLE),
)


class UserError(Exception):
    """A mistake or a refusal to report as one line, with the exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def explain(error: BaseException) -> UserError:
    """The one-line report of ``error`` and its exit code (``EXIT_INTERNAL`` for a bug)."""
    if isinstance(error, UserError):
        return error
    if isinstance(error, BlueprintValidationError):
        return UserError(_blueprint_line(error), EXIT_USAGE)
    for kind, code in _BY_TYPE:
        if isinstance(error, kind):
            return UserError(one_line(str(error)), code)
    detail = one_line(f"{type(error).__name__}: {error}")
    return UserError(
        f"internal error: {detail} (run with --debug for the traceback)", EXIT_INTERNAL
    )


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become ``; ``, runs of spaces one space."""
    parts = [" ".join(line.split()) for line in text.splitlines()]
    return "; ".join(part.lstrip("- ") for part in parts if part)


def _blueprint_line(error: BlueprintValidationError) -> str:
    problems = "; ".join(str(problem) for problem in error.problems)
    count = len(error.problems)
    return f"blueprint {error.graph_id!r} has {count} problem{'s' * (count != 1)}: {problems}"
