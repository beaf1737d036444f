"""Reading a distributed execution the way a local one reads: one formatter for both."""

from __future__ import annotations

from orchestration import ExecutionResult, Graph, format_result
from orchestration import StepRecord as LocalStep

from .models import ExecutionSnapshot, StepRecord

__all__ = ["as_result", "format_snapshot"]


def as_result(snapshot: ExecutionSnapshot, provider: str) -> ExecutionResult:
    """The snapshot of a final execution as an ``orchestration.ExecutionResult``."""
    if not snapshot.final:
        raise ValueError(f"execution {snapshot.execution_id} is still {snapshot.status}")
    finished = sorted(
        (s for s in snapshot.steps.values() if s.status == "completed"),
        key=lambda s: s.result.seq if s.result else 0,
    )
    return ExecutionResult(
        execution_id=snapshot.execution_id,
        workflow_id=snapshot.workflow_id,
        status=snapshot.status,  # type: ignore[arg-type]  # final, checked above
        outputs=dict(snapshot.outputs),
        state={},
        steps={node: _local_step(step) for node, step in snapshot.steps.items()},
        error=snapshot.error,
        failed_step=snapshot.failed_step,
        provider=provider,
        route=[s.node_id for s in finished],
        node_outputs={s.node_id: s.result.output for s in finished if s.result},
    )


def format_snapshot(snapshot: ExecutionSnapshot, graph: Graph, provider: str) -> str:
    """Text a person reads: route, each step in graph order, final outputs."""
    result = as_result(snapshot, provider)
    result.steps = {n: result.steps[n] for n in graph.nodes if n in result.steps}
    return format_result(result, graph)


def _local_step(step: StepRecord) -> LocalStep:
    status = "pending" if step.status == "waiting" else step.status
    return LocalStep(
        node_id=step.node_id,
        status=status,
        attempts=step.attempts,
        started_at=step.started_at,
        finished_at=step.finished_at,
        output=step.result.output if step.result else None,
        action=step.result.action if step.result else None,
        error=step.error,
    )
