"""``Engine``: the local, in-memory engine, and the node-level surface both engines share.

``run_node`` runs one attempt of one node (what a distributed worker calls); ``execute``
runs a whole graph in this process (see ``runner.LocalRun`` for the scheduling rules).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestration.context import NodeContext, Services, current_context, current_node_id
from orchestration.errors import (
    BlueprintValidationError,
    NonRetryableError,
    NotJSONSerializable,
    OrchestrationError,
    SignalRefused,
    UnknownWorkflow,
)
from orchestration.graph import Edge, Graph, Node
from orchestration.jsonvalue import JSON, to_json_value
from orchestration.nodes import builtin_registry
from orchestration.providers.base import LLMProvider
from orchestration.providers.offline import OfflineProvider
from orchestration.registry import NodeTypeRegistry
from orchestration.results import ExecutionResult
from orchestration.routing import NodeResult
from orchestration.runner import LocalRun, _with_timeout
from orchestration.subflow import ChildOutcome, child_inputs, child_result
from orchestration.validation import (
    child_graph_ids,
    graph_problems,
    reference_cycle,
    reference_cycle_problems,
)
from orchestration.waits import Signal

if TYPE_CHECKING:
    from orchestration.blueprint import Blueprint
    from orchestration.workflow import Workflow

__all__ = ["Engine", "ExecutionHandle"]


class ExecutionHandle:
    """A local execution started with ``Engine.start``: await ``result()``, or ``cancel()``."""

    def __init__(self, execution_id: str, run: LocalRun, timeout: float | None) -> None:
        self.execution_id = execution_id
        self._run = run
        self._timeout = timeout
        self._cancel_requested = False
        self._task = asyncio.create_task(self._drive(), name=f"flowloom:{execution_id}")

    async def _drive(self) -> ExecutionResult:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._run.run()
        except TimeoutError:
            return self._run.result("timed_out", f"execution exceeded {self._timeout:g}s")
        except asyncio.CancelledError:
            if not self._cancel_requested:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return self._run.result("cancelled", "cancelled by request")

    def pause(self) -> None:
        """Start no new step until ``resume``; running steps finish."""
        self._run.unpaused.clear()

    def resume(self) -> None:
        """Let steps start again."""
        self._run.unpaused.set()

    def signal(self, event: str, payload: JSON = None, action: str | None = None) -> None:
        """Complete the wait on ``event`` (now, or when it is reached); ``SignalRefused`` when
        no wait of this execution can take it."""
        self._run.signals.deliver(Signal(event, payload, action))

    def cancel(self) -> None:
        """Cancel the execution: running steps are cancelled, the status becomes cancelled."""
        if not self._task.done():
            self._cancel_requested = True
            self._task.cancel()

    def done(self) -> bool:
        """Whether the execution reached a final status."""
        return self._task.done()

    def snapshot(self) -> ExecutionResult:
        """The execution as of now (status ``running`` until it reaches a final status)."""
        if self._task.done() and not self._task.cancelled():
            return self._task.result()
        return self._run.result("cancelled" if self._task.done() else "running")

    async def result(self) -> ExecutionResult:
        """Wait for the final result (cancelling the waiter cancels the execution)."""
        return await self._task


class Engine:
    """The local engine.

    ``provider`` answers every LLM node (default: ``OfflineProvider``, deterministic and
    labelled offline). ``node_types`` is extended with the built-in node types it lacks.
    """

    def __init__(
        self,
        *,
        provider: LLMProvider | None = None,
        node_types: NodeTypeRegistry | None = None,
        default_model: str = "gpt-4o-mini",
        llm_timeout: float | None = 60.0,
    ) -> None:
        self.provider: LLMProvider = provider if provider is not None else OfflineProvider()
        self.node_types = node_types if node_types is not None else NodeTypeRegistry()
        builtins = builtin_registry()
        for name in builtins:
            if name not in self.node_types:
                self.node_types.register(name, builtins.get(name))
        self.services = Services(self.provider, default_model, llm_timeout)
        self._graphs: dict[str, Graph] = {}
        self._active: dict[str, ExecutionHandle] = {}

    # -- definitions ------------------------------------------------------------------

    def graph(self, workflow_id: str) -> Graph:
        """The registered graph ``workflow_id``; raises ``UnknownWorkflow``."""
        try:
            return self._graphs[workflow_id]
        except KeyError:
            raise UnknownWorkflow(workflow_id) from None

    def workflows(self) -> tuple[str, ...]:
        """Ids of every registered workflow and blueprint."""
        return tuple(self._graphs)

    def add_graph(
        self,
        graph_id: str,
        nodes: list[Node],
        edges: list[Edge],
        *,
        name: str = "",
        description: str = "",
    ) -> Graph:
        """Validate and register a graph built from ``nodes``/``edges``; return it.

        Its subflow and loop nodes may name registered graphs, never so that a graph would start
        itself again, directly or through others (``_refuse_child_cycles``).
        """
        problems = graph_problems(
            nodes, edges, node_types=self.node_types, graphs={*self._graphs, graph_id}
        )
        if problems:
            raise BlueprintValidationError(graph_id, problems)
        self._refuse_child_cycles(graph_id, {graph_id: child_graph_ids(nodes)})
        graph = Graph(graph_id, nodes, edges, name=name, description=description)
        self._graphs[graph_id] = graph
        return graph

    def register_workflow(self, workflow: Workflow) -> Graph:
        """Compile a code ``Workflow``, register its step types and its graph."""
        compiled = workflow.compile()
        for name, node_type in compiled.node_types.items():
            self.node_types.register(name, node_type)
        return self.add_graph(
            workflow.id,
            compiled.nodes,
            compiled.edges,
            name=workflow.name,
            description=workflow.description,
        )

    def register_blueprint(self, blueprint: Blueprint | Mapping[str, Any] | str | Path) -> Graph:
        """Validate and register one JSON blueprint (a model, a mapping or a file path).

        Subflows may only name blueprints registered before (and not in a cycle); use
        ``load_blueprints`` for a directory whose blueprints refer to each other.
        """
        from orchestration.blueprint import load_blueprint

        model = load_blueprint(blueprint)
        nodes, edges = model.to_nodes_and_edges()
        return self.add_graph(
            model.graph_id(),
            nodes,
            edges,
            name=model.name or "",
            description=model.description or "",
        )

    def load_blueprints(self, directory: str | Path) -> list[Graph]:
        """Register every ``*.json`` blueprint of ``directory`` (validated together)."""
        from orchestration.blueprint import load_directory

        models = load_directory(directory)
        batch = {model.graph_id() for model in models}
        graphs: list[Graph] = []
        problems = []
        for model in models:
            nodes, edges = model.to_nodes_and_edges()
            found = graph_problems(
                nodes, edges, node_types=self.node_types, graphs={*self._graphs, *batch}
            )
            problems += [p.__class__(f"{model.graph_id()}: {p.location}", p.message) for p in found]
            graphs.append(
                Graph(
                    model.graph_id(),
                    nodes,
                    edges,
                    name=model.name or "",
                    description=model.description or "",
                )
            )
        if problems:
            raise BlueprintValidationError(str(directory), problems)
        children = {graph.id: child_graph_ids(graph.nodes.values()) for graph in graphs}
        self._refuse_child_cycles(str(directory), children)
        self._graphs.update({graph.id: graph for graph in graphs})
        return graphs

    def _refuse_child_cycles(self, where: str, new: Mapping[str, Collection[str]]) -> None:
        """Raise ``BlueprintValidationError`` (for ``where``) when graphs about to be registered
        -- ``new``, each with the graphs it starts as children -- would start themselves again
        through subflow or loop nodes, with the registered graphs (re-registering one can close
        a cycle) or alone. Such a run starts child executions without end, faster than its
        timeout can cancel them, so it is refused before anything is registered."""

        def children_of(graph_id: str) -> Collection[str]:
            if graph_id in new:
                return new[graph_id]
            graph = self._graphs.get(graph_id)
            return () if graph is None else child_graph_ids(graph.nodes.values())

        cycle = reference_cycle(new, children_of)
        if cycle is not None:
            raise BlueprintValidationError(where, reference_cycle_problems(cycle))

    # -- one node -----------------------------------------------------------------------

    async def run_node(self, graph: Graph, node_id: str, ctx: NodeContext) -> NodeResult:
        """Run ONE attempt of ONE node (not a subflow node) under its timeout.

        Raises ``StepTimeout`` on timeout, ``NotJSONSerializable`` when the output or state
        updates are not JSON, and whatever the node raised. The result is in JSON normal form.
        """
        node = graph.nodes[node_id]
        if node.type == "subflow":
            raise OrchestrationError(f"subflow node {node_id!r} runs as a child execution")
        node_type = self.node_types.get(node.type)
        token, ctx_token = current_node_id.set(node_id), current_context.set(ctx)
        try:
            result = await _with_timeout(
                node.timeout, node_id, node_type.run(node, ctx, self.services)
            )
        finally:
            current_node_id.reset(token)
            current_context.reset(ctx_token)
        return self.check_result(node_id, result)

    @staticmethod
    def check_result(node_id: str, result: object) -> NodeResult:
        """``result`` in JSON normal form; raises ``NotJSONSerializable`` naming the node."""
        if not isinstance(result, NodeResult):
            raise NonRetryableError(
                f"step {node_id!r} returned {type(result).__name__}, expected NodeResult"
            )
        if result.action is not None and not isinstance(result.action, str):
            raise NonRetryableError(f"step {node_id!r} returned a non-string action")
        return NodeResult(
            output=_json(node_id, "output", result.output),
            action=result.action,
            state_updates=_json(node_id, "state update", dict(result.state_updates)),
        )

    def subflow_inputs(self, node: Node, ctx: NodeContext) -> dict[str, JSON]:
        """Initial inputs of the child execution of subflow ``node`` (DESIGN §4)."""
        return child_inputs(node, ctx.state, ctx.outputs)

    def subflow_result(self, node: Node, child: ChildOutcome) -> NodeResult:
        """The subflow node's result from its completed child (DESIGN §4)."""
        return self.check_result(node.id, child_result(node, child))

    # -- whole executions -----------------------------------------------------------------

    def start(
        self,
        workflow_id: str,
        inputs: Mapping[str, JSON],
        *,
        timeout: float | None = None,
        execution_id: str | None = None,
    ) -> ExecutionHandle:
        """Start a local execution in the background and return its handle."""
        graph = self.graph(workflow_id)
        execution_id = execution_id or uuid.uuid4().hex
        run = LocalRun(self, graph, execution_id, to_json_value(dict(inputs)))
        handle = ExecutionHandle(execution_id, run, timeout)
        self._active[execution_id] = handle
        handle._task.add_done_callback(lambda _: self._active.pop(execution_id, None))
        return handle

    async def execute(
        self,
        workflow_id: str,
        inputs: Mapping[str, JSON],
        *,
        timeout: float | None = None,
        execution_id: str | None = None,
    ) -> ExecutionResult:
        """Run ``workflow_id`` with ``inputs`` in memory and return its result."""
        handle = self.start(workflow_id, inputs, timeout=timeout, execution_id=execution_id)
        return await handle.result()

    def handle(self, execution_id: str) -> ExecutionHandle | None:
        """The handle of a local execution running here, if any."""
        return self._active.get(execution_id)

    def signal(
        self, execution_id: str, event: str, payload: JSON = None, action: str | None = None
    ) -> None:
        """Signal a local execution running here (see ``ExecutionHandle.signal``)."""
        handle = self._active.get(execution_id)
        if handle is None:
            raise SignalRefused(execution_id, event, "no such execution is running here")
        handle.signal(event, payload, action)

    def cancel(self, execution_id: str) -> bool:
        """Cancel a running local execution; False when it is not running here."""
        handle = self._active.get(execution_id)
        if handle is None:
            return False
        handle.cancel()
        return True


def _json(node_id: str, what: str, value: object) -> Any:
    try:
        return to_json_value(value)
    except (TypeError, ValueError) as exc:
        raise NotJSONSerializable(node_id, what, str(exc)) from None
