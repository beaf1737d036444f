"""``StepExecutor``: runs one attempt of one node and says what should happen next.

The node types (the step registry) belong to the local ``Engine``; the executor adds the policy
around one attempt: the node's retry policy decides between *retry after a delay* and *failed*,
and a node with a ``fallback`` runs the fallback node once the primary has no attempts left.
Steps run at least once: the node gets ``ctx.idempotency_key`` (``execution_id/step_id``) to make
side effects idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

from orchestration import Engine, Graph, NodeContext, NodeResult

__all__ = ["StepExecutor", "StepOutcome"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepOutcome:
    """A result, or an error with ``retry_in`` seconds when the step should run again."""

    result: NodeResult | None = None
    error: BaseException | None = None
    retry_in: float | None = None

    def describe_error(self) -> str:
        return f"{type(self.error).__name__}: {self.error}" if self.error else "unknown error"


class StepExecutor:
    """Runs nodes through the local engine's node types, with retry and fallback policy."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def run(self, graph: Graph, ctx: NodeContext) -> StepOutcome:
        """One attempt of ``ctx.node``; cancellation propagates to the node's code."""
        try:
            return StepOutcome(await self.engine.run_node(graph, ctx.node.id, ctx))
        except Exception as exc:
            return await self._after_failure(graph, ctx, exc)

    async def _after_failure(self, graph: Graph, ctx: NodeContext, exc: Exception) -> StepOutcome:
        node = ctx.node
        log.info("step %s attempt %d failed: %r", node.id, ctx.attempt, exc)
        if node.retry.should_retry(ctx.attempt, exc):
            return StepOutcome(error=exc, retry_in=node.retry.delay_for(ctx.attempt))
        if node.fallback is None:
            return StepOutcome(error=exc)
        return await self._fallback(graph, ctx, exc)

    async def _fallback(self, graph: Graph, ctx: NodeContext, primary: Exception) -> StepOutcome:
        """Run the fallback node in place of the primary, with the fallback's own retries."""
        fallback = graph.nodes[str(ctx.node.fallback)]
        attempt = 0
        while True:
            attempt += 1
            try:
                fallback_ctx = replace(ctx, node=fallback, attempt=attempt)
                return StepOutcome(await self.engine.run_node(graph, fallback.id, fallback_ctx))
            except Exception as exc:
                if not fallback.retry.should_retry(attempt, exc):
                    exc.__cause__ = primary
                    return StepOutcome(error=exc)
                await asyncio.sleep(fallback.retry.delay_for(attempt))
