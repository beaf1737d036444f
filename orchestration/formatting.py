"""``format_result``: an execution result as text a person reads (the CLI prints it)."""

from __future__ import annotations

from orchestration.graph import Graph
from orchestration.jsonvalue import JSON
from orchestration.results import ExecutionResult, StepRecord
from orchestration.state import render_value

__all__ = ["format_result", "shorten"]

_MARKS = {
    "completed": "ok",
    "failed": "FAILED",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "pending": "pending",
    "running": "running",
    "waiting": "waiting",
}


def shorten(value: JSON, width: int = 72) -> str:
    """One line of at most ``width`` characters for ``value``."""
    text = " ".join(render_value(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(result: ExecutionResult) -> str:
    starts = [s.started_at for s in result.steps.values() if s.started_at is not None]
    ends = [s.finished_at for s in result.steps.values() if s.finished_at is not None]
    return f" in {max(ends) - min(starts):.2f}s" if starts and ends else ""


def _step_line(record: StepRecord, name_width: int) -> str:
    mark = _MARKS.get(record.status, str(record.status))
    line = f"  {record.node_id:<{name_width}}  {mark:<9}"
    if record.attempts > 1:
        line += f" ({record.attempts} attempts)"
    if record.action is not None:
        line += f" action={record.action}"
    if record.fallback:
        line += f" via fallback {record.fallback}"
    if record.status == "completed":
        line += f"  {shorten(record.output, 60)}"
    elif record.error:
        line += f"  {shorten(record.error, 60)}"
    return line.rstrip()


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (empty)"


def format_result(result: ExecutionResult, graph: Graph) -> str:
    """Status, provider, route taken, each step (status + short output), final outputs."""
    title = f"{graph.name} ({graph.id})" if graph.name != graph.id else graph.id
    lines = [
        f"Workflow {title}: {result.status}{_duration(result)}",
        f"Execution {result.execution_id} · LLM provider: {result.provider or 'none'}",
        f"Route: {' -> '.join(result.route) or '(nothing ran)'}",
        "Steps:",
    ]
    width = max((len(node_id) for node_id in result.steps), default=4)
    lines += [_step_line(record, width) for record in result.steps.values()]
    if result.error:
        lines.append(f"Error in {result.failed_step or 'execution'}: {result.error}")
    lines.append("Output:")
    for key, value in result.outputs.items():
        lines += [f"  {key}:", _indent(render_value(value))]
    if not result.outputs:
        lines.append("  (none)")
    return "\n".join(lines)
