"""Errors raised by the distributed engine.

DistributedError
├── ExecutionNotFound        no execution with that id
├── ExecutionExists          an execution with that id was already submitted
├── ExecutionFinal           the execution already has a final status (pause/resume refused)
├── WaitTimeout              wait() gave up before the execution reached a final status
├── InvalidExecutionId       an execution id that breaks the id rules (``distributed.ids``)
├── LimitExceeded            a value over its configured size limit (``distributed.limits``)
│   ├── InputsTooLarge       an execution's inputs, at submission (nothing is stored)
│   └── StepResultTooLarge   a step's result or the state it leaves (the execution fails)
├── UndecodableTask          a queue message is not a valid task (sent to the dead-letter topic)
├── LeaseLost                this worker's lease on a step moved to another worker (fenced)
├── SubflowFailed            a subflow's child execution ended other than completed
├── IllegalTransition        a step record was asked for a transition its status does not allow
├── NotRecoverable           recover_failed_execution refused (running, completed, cancelled)
└── InvalidSettings          a settings object was built with a value it cannot run with
"""

from __future__ import annotations

__all__ = [
    "DistributedError",
    "ExecutionExists",
    "ExecutionFinal",
    "ExecutionNotFound",
    "IllegalTransition",
    "InputsTooLarge",
    "InvalidExecutionId",
    "InvalidSettings",
    "LeaseLost",
    "LimitExceeded",
    "NotRecoverable",
    "StepResultTooLarge",
    "SubflowFailed",
    "UndecodableTask",
    "WaitTimeout",
    "format_size",
]


class DistributedError(Exception):
    """Base class of every error raised by ``distributed``."""


class ExecutionNotFound(DistributedError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id {execution_id!r}")
        self.execution_id = execution_id


class ExecutionExists(DistributedError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"an execution with id {execution_id!r} was already submitted")
        self.execution_id = execution_id


class ExecutionFinal(DistributedError):
    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id!r} is already {status}")
        self.execution_id = execution_id
        self.status = status


class WaitTimeout(DistributedError):
    def __init__(self, execution_id: str, timeout: float) -> None:
        super().__init__(f"execution {execution_id!r} did not finish within {timeout}s")
        self.execution_id = execution_id


class InvalidExecutionId(DistributedError, ValueError):
    """An execution id that breaks the rules of ``distributed.ids``; nothing was stored."""

    def __init__(self, execution_id: object, problem: str) -> None:
        shown = repr(execution_id)
        shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
        super().__init__(f"invalid execution id {shown}: {problem}")
        self.execution_id = execution_id
        self.problem = problem


class LimitExceeded(DistributedError, ValueError):
    """A value is larger (as JSON) than its configured limit; ``setting`` names the limit."""

    def __init__(self, message: str, *, size: int, limit: int, setting: str) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
        self.setting = setting


class InputsTooLarge(LimitExceeded):
    """An execution's inputs are over ``Limits.max_inputs_bytes``; nothing was stored."""

    def __init__(self, workflow_id: str, size: int, limit: int, setting: str) -> None:
        super().__init__(
            f"inputs of workflow {workflow_id!r} are {format_size(size)} as JSON, over the "
            f"limit of {format_size(limit)} set by {setting}",
            size=size,
            limit=limit,
            setting=setting,
        )
        self.workflow_id = workflow_id


class StepResultTooLarge(LimitExceeded):
    """A step's result (or the state it leaves) is over its limit; the step fails, never
    retried, and so does the execution (nothing oversized is stored)."""

    def __init__(self, step_id: str, what: str, size: int, limit: int, setting: str) -> None:
        super().__init__(
            f"step {step_id!r} {what} {format_size(size)} as JSON, over the limit of "
            f"{format_size(limit)} set by {setting}",
            size=size,
            limit=limit,
            setting=setting,
        )
        self.step_id = step_id


class UndecodableTask(DistributedError):
    """A queue message that is not a task; it is dead-lettered, never retried."""


class LeaseLost(DistributedError):
    def __init__(self, execution_id: str, step_id: str) -> None:
        super().__init__(f"lease on {execution_id}/{step_id} moved to another worker")


class SubflowFailed(DistributedError):
    """The child execution of a subflow step failed, was cancelled or timed out."""


class IllegalTransition(DistributedError):
    def __init__(self, step_id: str, status: str, transition: str) -> None:
        super().__init__(f"step {step_id!r} is {status}: {transition} is not allowed from there")
        self.step_id = step_id
        self.status = status
        self.transition = transition


class NotRecoverable(DistributedError):
    def __init__(self, execution_id: str, status: str, reason: str) -> None:
        super().__init__(f"execution {execution_id!r} is {status}: {reason}")
        self.execution_id = execution_id
        self.status = status


class InvalidSettings(DistributedError, ValueError):
    """A setting out of range or unparsable; the message names the setting and the rule."""


def format_size(size: int) -> str:
    """``size`` bytes for people: ``812 bytes``, ``512 KiB``, ``2.0 MiB (2097152 bytes)``."""
    if size < 1024:
        return f"{size} bytes"
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale:
            exact = size % scale == 0
            shown = f"{size // scale} {unit}" if exact else f"{size / scale:.1f} {unit}"
            return shown if exact else f"{shown} ({size} bytes)"
    return f"{size} bytes"  # pragma: no cover
