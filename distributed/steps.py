"""``StepExecutor``: runs one attempt of one node and says what should happen next.

The node types (the step registry) belong to the local ``Engine``; after a failed attempt the
shared attempt policy (``orchestration.attempts.after_failure``) decides: retry after a delay,
fall back (the fallback node runs next, in place of the primary, as a durable step of its own),
or give up. Steps run at least once: the node gets ``ctx.idempotency_key``
(``execution_id/step_id``) to make side effects idempotent.

A result over the size limits (``distributed.limits``: output, state updates, the state it
leaves) is a failure that is never retried: the step and its execution fail naming the step,
the size and the limit, and nothing oversized is stored.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from orchestration import (
    Engine,
    FunctionStep,
    Graph,
    NodeContext,
    NodeResult,
    RetryPolicy,
    Workflow,
)
from orchestration.attempts import AttemptDecision, GiveUp, after_failure
from orchestration.steps import StepFn

from .limits import DEFAULT_LIMITS, Limits, result_too_large

__all__ = ["StepExecutor", "StepOutcome"]

log = logging.getLogger(__name__)


class StepOutcome(NamedTuple):
    """A result, or an error with the decision about what runs next."""

    result: NodeResult | None = None
    error: BaseException | None = None
    decision: AttemptDecision = GiveUp()

    def describe_error(self) -> str:
        return f"{type(self.error).__name__}: {self.error}" if self.error else "unknown error"


class StepExecutor:
    """Runs nodes through the local engine's node types and applies the attempt policy;
    results over ``limits`` (default ``Limits()``) fail the step for good."""

    def __init__(self, engine: Engine, *, limits: Limits | None = None) -> None:
        self.engine = engine
        self.limits = limits or DEFAULT_LIMITS

    def register_step(
        self,
        name: str,
        fn: StepFn,
        *,
        output_key: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = None,
    ) -> Graph:
        """Register ``fn(state)`` (sync or async) as step ``name`` that runs on the pool.

        It becomes a one-step workflow ``name`` on the local engine: submit it with
        ``engine.execute_async(name, inputs)``, or run it from a local workflow with
        ``RemoteStep(..., engine, name)``. Every process (clients and workers) registers it.
        """
        step = FunctionStep(name, fn, output_key, retry=retry, timeout=timeout)
        workflow = Workflow(name, name, f"the registered step {name!r}").add_step(step)
        return self.engine.register_workflow(workflow)

    async def run(
        self, graph: Graph, ctx: NodeContext, *, is_fallback: bool = False
    ) -> StepOutcome:
        """One attempt of ``ctx.node``; cancellation propagates to the node's code."""
        try:
            result = await self.engine.run_node(graph, ctx.node.id, ctx)
        except Exception as exc:
            log.info("step %s attempt %d failed: %r", ctx.node.id, ctx.attempt, exc)
            decision = after_failure(ctx.node, ctx.attempt, exc, is_fallback=is_fallback)
            return StepOutcome(error=exc, decision=decision)
        too_large = result_too_large(self.limits, ctx.node.id, result, ctx.state)
        if too_large is not None:
            log.warning("step %s of %s failed: %s", ctx.node.id, ctx.execution_id, too_large)
            return StepOutcome(error=too_large, decision=GiveUp())
        return StepOutcome(result)
