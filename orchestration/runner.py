"""``LocalRun``: one in-memory execution of a graph (the local engine's scheduler).

Ready nodes run concurrently as asyncio tasks. When a node completes, its result lands in
the state (``state.apply_updates``), ``routing.route`` resolves its outgoing edges in the
edge ledger, and each target is offered to ``routing.join_decision``: FIRE starts it, SKIP
marks it skipped and resolves its own outgoing edges as skipped (dead-path elimination).
A step that fails after its retries (and its fallback, if any) fails the run: running
siblings are cancelled and nothing downstream starts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from orchestration.context import NodeContext
from orchestration.errors import StepTimeout, SubflowFailed, UnroutableAction
from orchestration.graph import Edge, Graph, Node
from orchestration.jsonvalue import JSON
from orchestration.loops import LOOP, LoopSpec, iteration_id, next_iteration
from orchestration.results import ExecutionResult, ExecutionStatus, StepRecord, StepStatus
from orchestration.retry import retry_with_policy
from orchestration.routing import JoinDecision, NodeResult, join_decision, route
from orchestration.state import View, apply_updates, final_outputs, upstream
from orchestration.subflow import child_execution_id, child_inputs, child_result
from orchestration.waits import WAIT, SignalBox, WaitSpec, timed_out_result

if TYPE_CHECKING:
    from orchestration.engine import Engine

__all__ = ["LocalRun", "StepFailed"]

logger = logging.getLogger(__name__)


class StepFailed(Exception):
    """Internal: step ``node_id`` failed for good with ``cause``."""

    def __init__(self, node_id: str, cause: BaseException) -> None:
        super().__init__(node_id, cause)
        self.node_id = node_id
        self.cause = cause


def describe(error: BaseException) -> str:
    """``Type: message`` for step records and results."""
    return f"{type(error).__name__}: {error}"


async def _with_timeout(
    timeout: float | None, node_id: str, coro: Awaitable[NodeResult]
) -> NodeResult:
    """Await ``coro`` under ``timeout`` seconds, turning expiry into ``StepTimeout``."""
    if timeout is None:
        return await coro
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await coro
    except TimeoutError:
        if scope.expired():
            raise StepTimeout(node_id, timeout) from None
        raise


class LocalRun:
    """One execution of ``graph`` with ``inputs`` on ``engine`` (in memory)."""

    def __init__(self, engine: Engine, graph: Graph, execution_id: str, inputs: Mapping[str, JSON]):
        self.engine = engine
        self.graph = graph
        self.execution_id = execution_id
        self.inputs: dict[str, JSON] = dict(inputs)
        self.state: dict[str, JSON] = dict(inputs)
        self.outputs: dict[str, JSON] = {}
        self.commits: list[tuple[str, NodeResult]] = []  # completed steps, in commit order
        self.views: dict[str, View] = {}  # what each started step sees (``_view``)
        self.resolved: dict[str, bool] = {}
        self.decided: set[str] = set()
        self.route: list[str] = []
        self.children: dict[str, ExecutionResult] = {}
        self.tasks: dict[asyncio.Task[NodeResult], str] = {}
        self.unpaused = asyncio.Event()  # cleared while paused: no new step starts
        self.unpaused.set()
        self.signals = SignalBox(execution_id, graph)
        self.fallback_only = graph.fallback_only_nodes()
        self.steps = {n: StepRecord(n) for n in graph.nodes if n not in self.fallback_only}

    async def run(self) -> ExecutionResult:
        """Run to a final status; on cancellation, cancel running steps and re-raise."""
        try:
            for node_id in self.graph.start_nodes():
                self._start(node_id)
            while self.tasks:
                done, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    self._finish(task, self.tasks.pop(task))
        except StepFailed as failure:
            await self._cancel_running()
            return self.result("failed", describe(failure.cause), failure.node_id)
        except BaseException:
            await self._cancel_running()
            raise
        return self.result("completed")

    def result(
        self, status: ExecutionStatus, error: str | None = None, failed_step: str | None = None
    ) -> ExecutionResult:
        """The execution's result as of now, with ``status``."""
        completed = set(self.route)
        return ExecutionResult(
            execution_id=self.execution_id,
            workflow_id=self.graph.id,
            status=status,
            outputs=final_outputs(self.graph, self.outputs, self.state, completed),
            state=dict(self.state),
            steps=self.steps,
            error=error,
            failed_step=failed_step,
            provider=self.engine.provider.name,
            graph_version=self.graph.version,
            route=list(self.route),
            node_outputs=dict(self.outputs),
            children=dict(self.children),
        )

    # -- scheduling -------------------------------------------------------------------

    def _start(self, node_id: str) -> None:
        self.decided.add(node_id)
        task = asyncio.create_task(self._step(node_id), name=f"{self.execution_id}/{node_id}")
        self.tasks[task] = node_id

    def _finish(self, task: asyncio.Task[NodeResult], node_id: str) -> None:
        record = self.steps[node_id]
        record.finished_at = time.time()
        error = (
            StepFailed(node_id, asyncio.CancelledError()) if task.cancelled() else task.exception()
        )
        if error is not None:
            record.status, record.error = "failed", describe(_cause(error))
            raise StepFailed(node_id, _cause(error))
        result = task.result()
        record.status, record.output, record.action = "completed", result.output, result.action
        self.state = apply_updates(self.state, node_id, result)
        self.outputs[node_id] = result.output
        self.commits.append((node_id, result))
        self.route.append(node_id)
        seen = apply_updates(self.views.pop(node_id).state, node_id, result)
        try:
            routing = route(self.graph, node_id, result, seen)
        except UnroutableAction as exc:
            raise StepFailed(node_id, exc) from exc
        self._resolve(routing.taken, taken=True)
        self._resolve(routing.skipped, taken=False)

    def _resolve(self, edges: Sequence[Edge], *, taken: bool) -> None:
        for edge in edges:
            self.resolved[edge.key] = taken
        for edge in edges:
            self._consider(edge.target)

    def _consider(self, node_id: str) -> None:
        if node_id in self.decided:
            return
        node = self.graph.nodes[node_id]
        decision = join_decision(node, self.graph.incoming(node_id), self.resolved)
        if decision is JoinDecision.FIRE:
            self._start(node_id)
        elif decision is JoinDecision.SKIP:
            self.decided.add(node_id)
            self.steps[node_id].status = "skipped"
            self._resolve(self.graph.outgoing(node_id), taken=False)

    async def _cancel_running(self) -> None:
        for task, node_id in self.tasks.items():
            task.cancel()
            self.steps[node_id].status = "cancelled"
            self.steps[node_id].finished_at = time.time()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    # -- one step: retries, fallback, subflows ----------------------------------------------

    async def _step(self, node_id: str) -> NodeResult:
        await self.unpaused.wait()  # pause acts at step boundaries
        node = self.graph.nodes[node_id]
        record = self.steps[node_id]
        record.status, record.started_at = "running", time.time()
        view = self.views[node_id] = self._view(node_id)
        try:
            return await self._attempts(node, record, view)
        except Exception as primary_error:
            if node.fallback is None:
                raise StepFailed(node_id, primary_error) from primary_error
            record.error, record.fallback = describe(primary_error), node.fallback
            return await self._run_fallback(node, record, primary_error, view)

    def _view(self, node_id: str) -> View:
        """What step ``node_id`` sees: the inputs and its ancestors' commits, in commit order
        (``state.upstream``), the same as in a distributed run."""
        return upstream(self.inputs, self.commits, self.graph.ancestors(node_id))

    async def _run_fallback(
        self, node: Node, record: StepRecord, primary_error: Exception, view: View
    ) -> NodeResult:
        """Run ``node``'s fallback in its place: its result, or its error, is the step's
        (``record``, the primary's), which counts its attempts in ``fallback_attempts``.

        The fallback's own progress goes on a record of its own: the fallback node's, when it
        is fallback-only (its only record); a detached one when it is also a node of the graph,
        whose record and output of its own run must stay as they are. Either way it is closed
        (completed, failed or cancelled) however the fallback ends.
        """
        fallback = self.graph.nodes[str(node.fallback)]
        standby = self._fallback_record(fallback.id)
        standby.status, standby.started_at = "running", time.time()
        logger.info(
            "step failed, running its fallback",
            extra={"execution_id": self.execution_id, "step_id": node.id},
        )
        try:
            result = await self._attempts(fallback, standby, view)
        except asyncio.CancelledError:
            _close(standby, "cancelled")
            raise
        except Exception as exc:
            _close(standby, "failed", describe(exc))
            raise StepFailed(node.id, exc) from primary_error
        finally:
            record.fallback_attempts = standby.attempts
        _close(standby, "completed")
        standby.output, standby.action = result.output, result.action
        if fallback.id in self.fallback_only:
            self.outputs[fallback.id] = result.output
        return result

    def _fallback_record(self, node_id: str) -> StepRecord:
        """The record a fallback runs on (see ``_run_fallback``)."""
        if node_id in self.fallback_only:
            return self.steps.setdefault(node_id, StepRecord(node_id))
        return StepRecord(node_id)

    async def _attempts(self, node: Node, record: StepRecord, view: View) -> NodeResult:
        """Run ``node`` under its retry policy; ``record`` counts attempts, keeps the last error."""
        numbers = itertools.count(1)

        def attempt() -> Awaitable[NodeResult]:
            record.attempts = next(numbers)
            return self._attempt(node, record, view)

        def on_retry(_attempt: int, error: BaseException, _delay: float) -> None:
            record.error = describe(error)
            logger.info(
                "retrying step after %s",
                record.error,
                extra={"execution_id": self.execution_id, "step_id": node.id},
            )

        return await retry_with_policy(node.retry, attempt, on_retry=on_retry)

    def _context(self, node: Node, attempt: int, view: View) -> NodeContext:
        return NodeContext(
            execution_id=self.execution_id,
            node=node,
            state=MappingProxyType(dict(view.state)),
            outputs=MappingProxyType(dict(view.outputs)),
            attempt=attempt,
        )

    async def _attempt(self, node: Node, record: StepRecord, view: View) -> NodeResult:
        ctx = self._context(node, record.attempts, view)
        if node.type == "subflow":
            return await _with_timeout(node.timeout, node.id, self._subflow(node, ctx))
        if node.type == WAIT:
            return await self._wait(node, record)
        if node.type == LOOP:
            return await _with_timeout(node.timeout, node.id, self._loop(node, ctx))
        return await self.engine.run_node(self.graph, node.id, ctx)

    async def _wait(self, node: Node, record: StepRecord) -> NodeResult:
        """Park the branch until the wait's signal, or its timeout (``record`` waiting)."""
        spec = WaitSpec.of(node)
        record.status = "waiting"
        signal = await self.signals.receive(spec)
        record.status = "running"
        return signal.result(spec) if signal else timed_out_result(node.id, spec)

    async def _loop(self, node: Node, ctx: NodeContext) -> NodeResult:
        """Run the body once per iteration, while the loop's condition holds (bounded)."""
        body = self.engine.graph(LoopSpec.of(node).body)
        carried: dict[str, JSON] = {}
        number = 0
        while True:
            number += 1
            state = {**ctx.state, **carried}
            inputs = child_inputs(node, state, ctx.outputs)
            child_id = iteration_id(self.execution_id, node.id, number)
            child = await LocalRun(self.engine, body, child_id, inputs).run()
            self.children[node.id] = child
            if child.status != "completed":
                raise SubflowFailed(node.id, child.status, child.error)
            step = next_iteration(node, ctx.state, carried, child, number)
            if not step.again:
                return self.engine.check_result(node.id, step.result)
            carried = step.carried

    async def _subflow(self, node: Node, ctx: NodeContext) -> NodeResult:
        child_graph = self.engine.graph(str(node.params.get("blueprintId")))
        inputs = child_inputs(node, ctx.state, ctx.outputs)
        child_id = child_execution_id(self.execution_id, node.id)
        child = await LocalRun(self.engine, child_graph, child_id, inputs).run()
        self.children[node.id] = child
        if child.status != "completed":
            raise SubflowFailed(node.id, child.status, child.error)
        return self.engine.check_result(node.id, child_result(node, child))


def _close(record: StepRecord, status: StepStatus, error: str | None = None) -> None:
    record.status, record.finished_at = status, time.time()
    if error is not None:
        record.error = error


def _cause(error: BaseException) -> BaseException:
    return error.cause if isinstance(error, StepFailed) else error
