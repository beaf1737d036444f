"""The attempt policy both runtimes share: after a failed attempt, retry, fall back, or give up.

``after_failure`` is a pure decision. The local engine applies it in process (retries through
``retry_with_policy``, the fallback in place of the primary); distributed workers apply it
durably (a retry or a fallback is a pending step that any worker picks up, holding no slot
while it waits). The same node, attempt and error give the same decision in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestration.graph import Node

__all__ = ["AttemptDecision", "FallBack", "GiveUp", "RetryLater", "after_failure"]


@dataclass(frozen=True)
class RetryLater:
    """Run the same node again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True)
class FallBack:
    """The node has no attempts left: run its fallback node ``node_id`` in its place."""

    node_id: str


@dataclass(frozen=True)
class GiveUp:
    """No attempts and no fallback left: the step fails."""


AttemptDecision = RetryLater | FallBack | GiveUp


def after_failure(
    node: Node, attempt: int, error: BaseException, *, is_fallback: bool = False
) -> AttemptDecision:
    """What follows attempt ``attempt`` of ``node`` failing with ``error``. ``is_fallback``:
    ``node`` already stands in for a failed primary (a fallback has no fallback of its own)."""
    if node.retry.should_retry(attempt, error):
        return RetryLater(node.retry.delay_for(attempt))
    if not is_fallback and node.fallback is not None:
        return FallBack(str(node.fallback))
    return GiveUp()
