"""What an execution reports: ``StepRecord`` per node and the ``ExecutionResult``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from orchestration.jsonvalue import JSON

__all__ = ["ExecutionResult", "ExecutionStatus", "StepRecord", "StepStatus"]

StepStatus = Literal["completed", "failed", "skipped", "cancelled", "pending", "running", "waiting"]
ExecutionStatus = Literal["completed", "failed", "cancelled", "timed_out", "running"]
"""Final statuses, plus ``running`` (only in ``ExecutionHandle.snapshot()``)."""


@dataclass
class StepRecord:
    """One node of one execution.

    ``attempts`` counts the attempts of the node itself; ``error`` holds the last error (for a
    completed step that used its fallback: the primary's error, ``fallback`` naming the node
    that stood in, ``fallback_attempts`` counting its attempts, as a distributed step record
    does). Timestamps are ``time.time()`` seconds.
    """

    node_id: str
    status: StepStatus = "pending"
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    output: JSON = None
    action: str | None = None
    error: str | None = None
    fallback: str | None = None
    fallback_attempts: int = 0


@dataclass
class ExecutionResult:
    """The outcome of one execution.

    ``outputs`` are the final outputs (``state.final_outputs``); ``state`` the final state;
    ``route`` the ids of the nodes that completed, in completion order; ``provider`` the
    name of the LLM provider the engine used; ``children`` the child executions of
    subflow nodes, by node id. ``error``/``failed_step`` give the root cause of a failure.
    """

    execution_id: str
    workflow_id: str
    status: ExecutionStatus
    outputs: dict[str, JSON]
    state: dict[str, JSON]
    steps: dict[str, StepRecord]
    error: str | None = None
    failed_step: str | None = None
    provider: str = ""
    graph_version: str = ""
    route: list[str] = field(default_factory=list)
    node_outputs: dict[str, JSON] = field(default_factory=dict)
    children: dict[str, ExecutionResult] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether the execution completed."""
        return self.status == "completed"
