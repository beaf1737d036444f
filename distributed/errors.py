"""Errors raised by the distributed engine.

DistributedError
├── ExecutionNotFound        no execution with that id
├── ExecutionExists          an execution with that id was already submitted
├── ExecutionFinal           the execution already has a final status (pause/resume refused)
├── WaitTimeout              wait() gave up before the execution reached a final status
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
    "InvalidSettings",
    "LeaseLost",
    "NotRecoverable",
    "SubflowFailed",
    "UndecodableTask",
    "WaitTimeout",
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
